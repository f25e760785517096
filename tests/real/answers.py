"""What tests/real compare between an answer made directly by a real server and the same call through the
proxy: the shape (which fields, nested, with which JSON types) and the content; ids and timestamps differ."""

from __future__ import annotations

import json
from typing import Any

import requests

VOLATILE = frozenset({"id", "created", "system_fingerprint"})


def shape(value: Any) -> Any:
    """The structure of a JSON value: dict keys, list lengths and scalar types, not the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without the fields that differ between two calls (ids, timestamps)."""
    return {k: v for k, v in answer.items() if k not in VOLATILE}


def sse_events(response: requests.Response) -> list[Any]:
    """The data of every event of an SSE response, JSON-decoded ("[DONE]" kept as the string)."""
    events = []
    for line in response.iter_lines():
        if line.startswith(b"data:"):
            data = line[5:].strip()
            events.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return events


def stream_content(events: list[Any], field: str = "content") -> str:
    """The text of one delta field over a chat stream's events."""
    return "".join(e["choices"][0]["delta"].get(field) or "" for e in events
                   if isinstance(e, dict) and e.get("choices"))


def header_values(response: requests.Response, name: str) -> list[str]:
    """Every value the response carried for a header name, as separate lines on the wire, any case."""
    return response.raw.headers.getlist(name)
