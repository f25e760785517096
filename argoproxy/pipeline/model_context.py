"""A model's context as its server lists it: read from a model list entry (`context_length`: Ollama's /api/show
gives it to clients) and, for reservations, kept per worker from the model list (ModelContexts: read again after
CONTEXT_SECONDS, asked only for a request no output-length field bounds)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping

log = logging.getLogger("cot_proxy")

CONTEXT_SECONDS = 300.0  # the model list is read again after this (a server restarted with another context)
FAILED_SECONDS = 30.0  # a list that could not be read is not asked for again before this
MODELS_KEPT = 4096  # entries kept from one list (a list is the upstream's: bounded here)


def context_length(entry: Mapping[str, Any]) -> int | None:
    """The model's context in tokens as its server lists it: `context_length` first (what the openai backend
    writes for llama.cpp: one slot's context, providers/openai/backend.py; OpenRouter's field), vLLM's
    `max_model_len`, llama.cpp's `meta.n_ctx` (the context it serves; else `meta.n_ctx_train`), or a
    `context_window` field."""
    listed = entry.get("meta")
    meta: Mapping[str, Any] = listed if isinstance(listed, Mapping) else {}
    found = [entry.get("context_length"), entry.get("max_model_len"), meta.get("n_ctx"), meta.get("n_ctx_train"),
             entry.get("context_window")]
    return next((v for v in found if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**40), None)


class ModelContexts:
    """Each listed model's context, from `listing()` (the model list's entries), kept for CONTEXT_SECONDS."""

    def __init__(self, listing: Callable[[], Iterable[Any]], clock: Callable[[], float] = time.monotonic) -> None:
        self.listing = listing
        self.clock = clock
        self.known: dict[str, int] = {}
        self.until = 0.0
        self.lock = threading.Lock()

    def __call__(self, model: str | None) -> int | None:
        if not model:
            return None
        if self.clock() >= self.until:
            self.refresh()
        return self.known.get(model)

    def refresh(self) -> None:
        with self.lock:
            if self.clock() < self.until:
                return  # another request read it meanwhile
            try:
                known: dict[str, int] = {}
                for entry in self.listing():
                    if len(known) >= MODELS_KEPT:
                        break
                    if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                        context = context_length(entry)
                        if context is not None:
                            known[entry["id"]] = context
                self.known, self.until = known, self.clock() + CONTEXT_SECONDS
            except Exception as exc:  # noqa: BLE001 - what it said last stands (nothing: the default is reserved)
                log.warning("reservations: the model list could not be read for the models' contexts (%s)",
                            type(exc).__name__)
                self.until = self.clock() + FAILED_SECONDS
