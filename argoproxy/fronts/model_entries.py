"""What an upstream's model list entry says of a model beyond its name, in the spellings servers use: its context
length (read where reservations read it: pipeline/model_context.py) and its input modalities (the doors' model
answers report them where their APIs have a field)."""

from __future__ import annotations

from typing import Any, Mapping

from argoproxy.pipeline.model_context import context_length as context_length  # the reservations read it too


def input_modalities(entry: Mapping[str, Any]) -> list[Any]:
    architecture = entry.get("architecture")
    found = architecture.get("input_modalities") if isinstance(architecture, Mapping) else None
    return found if isinstance(found, list) else []
