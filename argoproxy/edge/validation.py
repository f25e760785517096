"""The model allow-list (ALLOWED_MODELS, a team key's globs), and the model a backend cannot do without.

(What a request's body may hold is checked by the sequence, in the internal chat format: pipeline/request_shape.py.)
"""

from __future__ import annotations

import fnmatch
from typing import Any

from argoproxy.errors import ProxyError


def require_model(model: Any) -> str:
    """The model of a request for a backend that cannot do without one: a 400 naming `model` otherwise."""
    if not isinstance(model, str) or not model.strip():
        raise ProxyError(400, "You must provide a model parameter.", param="model", code="missing_required_parameter")
    return model


def check_allowed_model(patterns: tuple[str, ...], model: str | None) -> None:
    """403 model_not_allowed when an allow-list is set and the (resolved) model is not on it; with an
    allow-list a request must name a model (the upstream's default is not on any list)."""
    if patterns and model is None:
        require_model(model)
    if patterns and not model_allowed(patterns, model):
        raise ProxyError(403, f"The model `{model}` is not allowed on this proxy.", param="model",
                         code="model_not_allowed")


def model_allowed(patterns: tuple[str, ...], model: str | None) -> bool:
    """`model` matches one of `patterns` (and one of their `within`: a team key's globs within its team's,
    teamkeys/records.py's WithinTeam)."""
    within = getattr(patterns, "within", None)
    return isinstance(model, str) and bool(model) and any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns) \
        and (within is None or model_allowed(within, model))
