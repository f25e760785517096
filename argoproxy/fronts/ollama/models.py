"""The proxy's model list (OpenAI entries: the upstream's, routing entries, pseudo models, filtered by the
allow-list and a team key's globs) as Ollama's `/api/tags`, `/api/ps` and `/api/show` answers; and an Ollama
upstream's own /api/tags and /api/ps (FRONTS_PASSTHROUGH=ollama) filtered the same way.

A gateway knows a model's name, not its file: `size` is 0, `details` are empty strings, and `digest` is the
SHA-256 of the name (stable, so clients that key models by digest tell them apart). Every model the proxy serves
is ready to answer, so `/api/ps` lists them all. `/api/show` says `completion` and `tools` (`embedding` for a
model whose name says it embeds), which is what editor plug-ins check before offering a model, and the context
length when the upstream lists one.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Iterable, Mapping

from argoproxy.errors import ProxyError
from argoproxy.fronts.model_entries import context_length, input_modalities
from argoproxy.fronts.ollama.answer import rfc3339

KEEP_ALIVE = 300  # seconds `expires_at` lies ahead in /api/ps (Ollama's default keep_alive)
DETAILS = {"parent_model": "", "format": "", "family": "", "families": (), "parameter_size": "",
           "quantization_level": ""}


def created(entry: Mapping[str, Any]) -> float:
    value = entry.get("created")
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**33 else 0


def tag(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI model entry as one of /api/tags' models."""
    name = str(entry.get("id") or "")
    return {"name": name, "model": name, "modified_at": rfc3339(created(entry)), "size": 0,
            "digest": hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest(), "details": dict(DETAILS)}


def tags(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"models": [tag(m) for m in data if isinstance(m, Mapping) and m.get("id")]}


def running(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """/api/ps: the models that answer without a load, here every one the proxy serves."""
    expires = rfc3339(time.time() + KEEP_ALIVE)
    return {"models": [{**tag(m), "expires_at": expires, "size_vram": 0}
                       for m in data if isinstance(m, Mapping) and m.get("id")]}


def show(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One model as /api/show's answer. The context length, where the upstream's list gives it, is where
    clients read it: `num_ctx` in `parameters` (Continue) and `<general.architecture>.context_length` in
    `model_info` (VS Code's Ollama provider; the architecture is not known here, so the key is
    `.context_length`). Without it they assume a small context (VS Code: 4,096) and cut agents' history."""
    name = str(entry.get("id") or "")
    capabilities = ["embedding"] if "embed" in name.lower() else ["completion", "tools"]
    if "image" in input_modalities(entry):
        capabilities.append("vision")  # llama.cpp lists a model's modalities (a multimodal projector loaded)
    info: dict[str, Any] = {"general.architecture": "", "general.basename": name}
    context = context_length(entry)
    if context is not None:
        info[".context_length"] = context
    return {"modelfile": "", "parameters": f"num_ctx {context}" if context is not None else "", "template": "",
            "details": dict(DETAILS), "model_info": info, "capabilities": capabilities,
            "modified_at": rfc3339(created(entry))}


def kept(answer: Any, keep: Callable[[Any], bool]) -> dict[str, Any]:
    """An Ollama server's /api/tags or /api/ps answer with the models `keep` takes. An entry is known by its
    `name` and `model`, each also without Ollama's default tag (`llama3` is `llama3:latest`, so a key given
    `llama3` sees the model it may use)."""
    listed = answer.get("models") if isinstance(answer, dict) else None
    if not isinstance(listed, list):
        raise ProxyError(502, "The upstream's model list is not Ollama's (no `models` list).",
                         code="upstream_bad_response")
    return {**answer, "models": [m for m in listed if isinstance(m, dict) and any(keep(n) for n in names(m))]}


def names(entry: Mapping[str, Any]) -> list[str]:
    found = [n for n in (entry.get("name"), entry.get("model")) if isinstance(n, str) and n]
    return found + [n.removesuffix(":latest") for n in found if n.endswith(":latest")]
