"""Providers: one package per upstream wire protocol (openai, argo, dashscope).

A provider package holds its backend (a `Backend` subclass, backend.py), its translation functions, its
settings fragment (a frozen dataclass of `setting(...)` fields, composed into the one Settings object) and
everything the rest of the proxy asks about it, in its `Provider` record: which setting a routing entry's
`api_key_env` and `base_url` fill, where its requests go, its start-up rule and line, its first-run
questions, the model families that apply only on it. Its `__init__.py` registers it by name with
`register(Provider(...))`. The registry itself is configuration's (argoproxy/config/provider_registry.py, re-exported
here for provider packages): configuration reads it and imports no provider.

Rule: providers import configuration (their settings fragment's declarations, the registry), shared helpers
(argoproxy/upstream/, errors) and the call's phases (pipeline/call.py); never the sequence, the door, the
front doors or routing.

May import: the shared modules, config, meter, upstream, edge, pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from argoproxy.config.provider_registry import (  # noqa: F401  (the names provider packages use)
    _REGISTRY, DEFAULT_TARGET_URLS, EXTERNAL_PREFIX, Provider, UsedOnlyWhen, all_providers, default_startup_line,
    discover, external_packages, get, names, no_problem, register, settings_fragments, target_url_only)

__all__ = ["DEFAULT_TARGET_URLS", "EXTERNAL_PREFIX", "Provider", "UsedOnlyWhen", "all_providers", "create_backend",
           "default_startup_line", "discover", "external_packages", "get", "names", "no_problem", "register",
           "settings_fragments", "target_url_only"]

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.pipeline.backend import Backend
    from argoproxy.upstream.client import Upstream


def create_backend(settings: Settings, upstream: Upstream) -> Backend:
    backend: Backend = get(settings.backend).backend_class(settings)(settings, upstream)
    return backend
