"""The proxy's model list as Anthropic's model list (one page)."""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

from argoproxy.fronts.model_entries import context_length


def model_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI model list entry as an Anthropic ModelInfo (Claude Code's gateway model discovery reads `id` and
    `display_name`)."""
    name = str(entry.get("id") or "")
    created = entry.get("created")
    when = created if isinstance(created, int) and not isinstance(created, bool) and 0 <= created < 2**33 else 0
    # capabilities and the output limit are not in an OpenAI list: null, as the API says of what it does not know
    return {"type": "model", "id": name, "display_name": name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)), "capabilities": None,
            "max_input_tokens": context_length(entry), "max_tokens": None}


def model_list(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A whole model list in Anthropic's page shape (one page: the proxy's list is not paged)."""
    models = [model_entry(m) for m in data if isinstance(m, Mapping) and m.get("id")]
    return {"data": models, "has_more": False, "first_id": models[0]["id"] if models else None,
            "last_id": models[-1]["id"] if models else None}
