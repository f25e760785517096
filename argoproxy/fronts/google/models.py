"""The proxy's model list as Google Models (GET /v1beta/models[/{model}]).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def model_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI model list entry as a Google Model."""
    name = str(entry.get("id") or "")
    methods = ["embedContent", "batchEmbedContents"] if "embed" in name.lower() else \
        ["generateContent", "streamGenerateContent", "countTokens"]  # a model whose name says it embeds
    return {"name": f"models/{name}", "baseModelId": name, "version": "001", "displayName": name,
            "description": f"{name}, served by cot_proxy ({entry.get('owned_by') or 'upstream'})",
            "supportedGenerationMethods": methods}


def model_list(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"models": [model_entry(m) for m in data if isinstance(m, Mapping) and m.get("id")]}
