"""What an upstream's model list entry says of a model beyond its name, in the spellings servers use: its context
length and its input modalities (the doors' model answers report them where their APIs have a field)."""

from __future__ import annotations

from typing import Any, Mapping


def context_length(entry: Mapping[str, Any]) -> int | None:
    """The model's context in tokens as its server lists it: vLLM's `max_model_len`, llama.cpp's `meta.n_ctx`
    (the context it serves; else `meta.n_ctx_train`), or a `context_length`/`context_window` field."""
    listed = entry.get("meta")
    meta: Mapping[str, Any] = listed if isinstance(listed, Mapping) else {}
    found = [entry.get("max_model_len"), meta.get("n_ctx"), meta.get("n_ctx_train"), entry.get("context_length"),
             entry.get("context_window")]
    return next((v for v in found if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**40), None)


def input_modalities(entry: Mapping[str, Any]) -> list[Any]:
    architecture = entry.get("architecture")
    found = architecture.get("input_modalities") if isinstance(architecture, Mapping) else None
    return found if isinstance(found, list) else []
