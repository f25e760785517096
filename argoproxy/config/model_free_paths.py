"""MODEL_FREE_PATHS: the forwarded paths that name no model, which the guard (argoproxy/pipeline/guard.py) lets
through while ALLOWED_MODELS or a team key's globs are in force; any other forwarded request must name an allowed
model (docs/edge.md)."""

from __future__ import annotations

from typing import Any

from argoproxy.config.setting_fields import as_csv

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Paths that name no model, so that no upstream picks one for them: listing, reading back and deleting files,
# batches, stored responses and completions, conversations, vector stores, assistants, threads, fine-tuning jobs
# and videos; uploads (a batch file's lines are read all the same); cancelling work already admitted; Ollama's and
# llama.cpp's listings. What creates work without naming a model (POST /v1/videos, /v1/images/generations,
# /v1/vector_stores, a thread's run) is not here: the upstream's default model would serve it.
DEFAULT_MODEL_FREE = (
    "GET /v1/models", "GET /v1/models/*",
    "GET /v1/files", "GET /v1/files/*", "DELETE /v1/files/*", "POST /v1/files",
    "POST /v1/uploads", "POST /v1/uploads/*",
    "GET /v1/batches", "GET /v1/batches/*", "POST /v1/batches/*/cancel",
    "GET /v1/responses/*", "DELETE /v1/responses/*", "POST /v1/responses/*/cancel",
    "GET /v1/chat/completions", "GET /v1/chat/completions/*", "DELETE /v1/chat/completions/*",
    "GET /v1/messages/batches", "GET /v1/messages/batches/*", "DELETE /v1/messages/batches/*",
    "POST /v1/messages/batches/*/cancel",
    "GET /v1/conversations/*", "DELETE /v1/conversations/*",
    "GET /v1/vector_stores", "GET /v1/vector_stores/*", "DELETE /v1/vector_stores/*",
    "GET /v1/assistants", "GET /v1/assistants/*", "DELETE /v1/assistants/*",
    "GET /v1/threads/*", "DELETE /v1/threads/*",
    "GET /v1/fine_tuning/*", "POST /v1/fine_tuning/jobs/*/cancel",
    "GET /v1/videos", "GET /v1/videos/*", "DELETE /v1/videos/*",
    "GET /api/tags", "GET /api/version", "GET /api/ps", "HEAD /api/blobs/*", "POST /api/blobs/*",
    "GET /props", "GET /slots",
)


def route_globs(value: Any) -> tuple[str, ...]:
    """MODEL_FREE_PATHS: comma-separated `METHOD /path-glob` or `/path-glob` (any method); checked at start-up."""
    items = as_csv(value)
    for item in items:
        method, _, path = item.rpartition(" ")
        if not path.startswith("/") or (method and method.strip().upper() not in METHODS | {"*"}):
            raise ValueError(f"entries must be `METHOD /path` or `/path` (globs), got {item!r}")
    return items


