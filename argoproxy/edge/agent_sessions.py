"""The agent session a request belongs to: the id a coding agent sends with each request, read once at the edge
and kept on the call's records (usage rows, journal lines, spans; never a /metrics label).

Read from, first found: Claude Code's `X-Claude-Code-Session-Id`, the generic `X-Session-Id` (what `cot-proxy
run` sets for agents that send none), and `Session-Id`. Codex sends its conversation id as `session_id`
(codex-rs/codex-api/src/requests/headers.rs, build_conversation_headers); Gunicorn drops header names with an
underscore (its header_map setting, "drop" by default), so behind Gunicorn Codex's own id never arrives and
`cot-proxy run -- codex` sets X-Session-Id instead (argoproxy/launch/agents.py).

A session id is the client's word: cut to MAX_SESSION characters, then every character but letters, digits and
`-_.:/` replaced by `_`, and a leading `-` too, so that a control character, a line break, non-ASCII text or a
spreadsheet formula (`=`, `+`, `@`, `-` first) never reaches a journal, a CSV or a span as it came. An empty value is
no session.
"""

from __future__ import annotations

import re
from typing import Mapping

MAX_SESSION = 128
SESSION_HEADERS = ("X-Claude-Code-Session-Id", "X-Session-Id", "Session-Id")
SESSION_ENVIRON = tuple("HTTP_" + name.upper().replace("-", "_") for name in SESSION_HEADERS)  # their WSGI names
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]|^-")


def session_id(value: object) -> str:
    """A header's value as a session id: bounded and sanitized ("" for none)."""
    if not isinstance(value, str) or not value:
        return ""
    value = value[:MAX_SESSION]
    return value if value.isascii() and value.isalnum() else _UNSAFE.sub("_", value)


def session_in(headers: Mapping[str, str]) -> str:
    """The session id among headers given by name (in-process requests), any case."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in SESSION_HEADERS:
        value = lowered.get(name.lower())
        if value:
            return session_id(value)
    return ""
