"""A deployment's concurrency limit as its server states it (max_concurrency: auto).

llama.cpp's llama-server says how many requests it serves at once: `total_slots` in GET /props, or one entry
per slot in GET /slots (when started with --slots). Both live at the server's root, beside /v1. vLLM's metrics
give what runs now, not the most it runs (its --max-num-seqs): set that as the deployment's max_concurrency.
Each answer is read up to MAX_PROBE_ANSWER (upstream/answer_bounds.py).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from argoproxy.config.routing_settings import MOST_CONCURRENCY
from argoproxy.jsonfast import loads
from argoproxy.upstream.answer_bounds import MAX_PROBE_ANSWER, read_capped

log = logging.getLogger("cot_proxy")
ASK_TIMEOUT = 5.0


def server_root(base_url: str) -> str:
    """http://host:8080/v1/ -> http://host:8080/ (where llama-server serves /props and /slots)."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/") + "/", "", ""))


def server_slots(session: Any, base_url: str, headers: dict[str, str] | None = None) -> int | None:
    """The server's slots, or None when it does not say (or cannot be reached)."""
    root = server_root(base_url)
    for path, read in (("props", _from_props), ("slots", _from_slots)):
        try:
            response = session.get(root + path, headers=headers or {}, timeout=ASK_TIMEOUT, stream=True)
            if response.status_code != 200:
                response.close()
                continue
            found = read(loads(read_capped(response, MAX_PROBE_ANSWER)))  # a longer answer says nothing
        except Exception:  # noqa: BLE001 - a server that cannot say leaves the limit unknown
            continue
        if found:
            return found
    return None


def _from_props(body: Any) -> int | None:
    slots = body.get("total_slots") if isinstance(body, dict) else None
    if not isinstance(slots, int) or isinstance(slots, bool) or slots <= 0:
        return None
    return min(slots, MOST_CONCURRENCY)  # a server's say, bounded as a setting is


def _from_slots(body: Any) -> int | None:
    return len(body) if isinstance(body, list) and body else None
