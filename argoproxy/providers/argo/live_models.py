"""ARGO's own model list (GET .../api/v1/models/): the models ARGO serves today, added to the built-in table.

The built-in table (models.py) is what this release knew; ARGO adds models every few weeks (`claudeopus5`,
`gpt54nano`), and a name the table lacks was a 404 although ARGO serves it. The list is read when a name is not
in the table (and for /v1/models), at most once per REFRESH seconds (RETRY after a failure), never at start-up:
a proxy that only uses known models makes no extra call. A list that cannot be read leaves the table as it was,
with one warning.

Two shapes, as argo-proxy reads them: the old `{"id": internal id, "model_name": display name}` and the new
`{"id": display name, "internal_id": internal id}`. Each model gets argo-proxy's aliases: `argo:<display name
lower-cased, spaces as dashes>`, for the o-series also `argo:gpt-<that>`, for Claude also
`argo:claude-<generation>-<codename>[-<version>]` ("Claude Opus 4" -> argo:claude-opus-4 and
argo:claude-4-opus); the internal id itself always resolves.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import loads
from argoproxy.providers.argo import models
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, read_chunks

log = logging.getLogger("cot_proxy")

REFRESH = 3600.0  # seconds a list read is trusted
RETRY = 300.0  # seconds before a failed read is tried again
TIMEOUT = 10.0  # seconds for reading the list (a request waits on it)
MAX_MODELS = 1000
MAX_LIST_BYTES = 2 * 1024 * 1024  # ARGO's list is a few kilobytes; a bigger one is not read (parsed, 55 MB took 1.4 GB)
MAX_NAME = 100
_INTERNAL_ID = re.compile(r"[a-z][a-z0-9]{1,63}")


def parse_model_list(payload: Any) -> dict[str, tuple[str, ...]]:
    """internal id -> aliases of the chat models in a model list body (embedding models are the built-in
    table's: ARGO's list does not tell them apart). Entries it cannot read are skipped."""
    data = payload.get("data") if isinstance(payload, dict) else None
    found: dict[str, tuple[str, ...]] = {}
    for entry in data[:MAX_MODELS] if isinstance(data, list) else ():
        named = _entry(entry)
        if named is not None and named[0] not in models.EMBED_MODELS:
            found.setdefault(*named)
    return found


def _entry(entry: Any) -> tuple[str, tuple[str, ...]] | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("internal_id"), str):  # the new shape
        internal, display = entry["internal_id"], entry.get("id")
    else:
        internal, display = entry.get("id"), entry.get("model_name")
    if not isinstance(internal, str) or not _INTERNAL_ID.fullmatch(internal):
        return None
    name = display.strip().replace(" ", "-").lower() if isinstance(display, str) else ""
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return internal, ()
    aliases = [f"argo:{name}"]
    if internal.startswith("gpto"):
        aliases.insert(0, f"argo:gpt-{name}")
    if internal.startswith("claude"):
        parts = name.split("-")
        if len(parts) >= 3:  # claude, codename, generation, version...
            swapped = f"argo:claude-{parts[2]}-{parts[1]}" + (f"-{parts[3]}" if len(parts) > 3 else "")
            aliases.append(swapped)
    return internal, tuple(dict.fromkeys(aliases))


class LiveModels:
    """One ARGO backend's reading of ARGO's list, merged into the built-in table."""

    def __init__(self, url: str, send: Callable[[UpstreamRequest], UpstreamResponse]) -> None:
        self.url = url
        self.send = send
        self.current = models.BUILTIN
        self._lock = threading.Lock()
        self._due = 0.0  # monotonic time of the next read
        self._warned = False

    def table(self, name: str | None = None, kind: models.Kind = "chat") -> models.ModelTable:
        """The table to resolve `name` with (to list every model, without a name): read again first when the
        name is not in it, or for a listing, and a read is due."""
        if name is not None and (not str(name).strip() or self.current.lookup(str(name), kind) is not None):
            return self.current
        if time.monotonic() >= self._due:
            with self._lock:  # one read at a time; the others then find it done
                if time.monotonic() >= self._due:
                    read = self._read()
                    self._due = time.monotonic() + (REFRESH if read is not None else RETRY)
                    if read is not None:
                        self.current = models.BUILTIN.with_chat_models(read)
        return self.current

    def _read(self) -> dict[str, tuple[str, ...]] | None:
        try:
            with self.send(UpstreamRequest("GET", self.url, {"Accept": "application/json"}, None, TIMEOUT)) as resp:
                if resp.status_code == 200:
                    return parse_model_list(loads(_bounded(resp)))
                why = f"it answered {resp.status_code}"
        except ProxyError as err:  # the upstream client's words: the host, never the URL's credentials
            why = err.message
        except ValueError as exc:
            why = str(exc) if isinstance(exc, ListTooLong) else "not JSON"
        except Exception as exc:  # noqa: BLE001 - a broken read (a reset, a stall) is a list not read
            why = type(exc).__name__
        if not self._warned:  # the table stays as it was; said once
            self._warned = True
            log.warning("ARGO's model list could not be read (%s): the built-in model table is used", why)
        return None


class ListTooLong(ValueError):
    pass


def _bounded(resp: UpstreamResponse) -> bytes:
    """The list's bytes, at most MAX_LIST_BYTES, read within TIMEOUT in all (a request may be waiting on it)."""
    deadline, parts, size = time.monotonic() + TIMEOUT, [], 0
    for data in read_chunks(resp):
        size += len(data)
        if size > MAX_LIST_BYTES:
            raise ListTooLong(f"longer than {MAX_LIST_BYTES} bytes")
        if time.monotonic() > deadline:
            raise ListTooLong(f"not read within {TIMEOUT:g}s")
        parts.append(data)
    return b"".join(parts)
