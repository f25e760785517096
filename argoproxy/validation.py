"""Request validation before anything goes upstream, and the model allow-list."""

from __future__ import annotations

import fnmatch
from typing import Any

from argoproxy.errors import ProxyError


def _bad(message: str, param: str) -> ProxyError:
    return ProxyError(400, message, param=param, code="invalid_value")


def validate(kind: str, body: dict[str, Any]) -> None:
    """Raise a 400 naming the offending parameter; unknown extra fields are left alone."""
    model = body.get("model")
    if "model" in body and (not isinstance(model, str) or not model.strip()):
        raise _bad("`model` must be a non-empty string.", "model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("`stream` must be true or false.", "stream")


def check_allowed_model(patterns: tuple[str, ...], model: str | None) -> None:
    """403 model_not_allowed when an allow-list is set and the (resolved) model is not on it."""
    if patterns and not model_allowed(patterns, model):
        raise ProxyError(403, f"The model `{model}` is not allowed on this proxy.", param="model",
                         code="model_not_allowed")


def model_allowed(patterns: tuple[str, ...], model: str | None) -> bool:
    return bool(model) and any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns)
