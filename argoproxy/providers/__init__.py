"""Providers: one package per upstream wire protocol (openai, argo, dashscope), and the registry of them.

A provider package holds its backend (a `Backend` subclass, backend.py), its translation functions, its
settings fragment (a frozen dataclass of `setting(...)` fields, composed into the one Settings object) and
its start-up line, and its `__init__.py` registers it by name with `register(Provider(...))`.
`discover()` imports every package in this directory, so adding a provider touches nothing outside its own
package. Registration is light: the backend module (requests, urllib3, Pillow...) is imported only when a
worker builds the backend, after gevent has patched it, never in the Gunicorn master.
Providers import shared helpers (argoproxy/relay.py, upstream, sse, errors), never the pipeline.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from argoproxy.providers.base import Backend
    from argoproxy.settings import Settings
    from argoproxy.upstream import Upstream


def no_problem(settings: Any) -> str | None:
    return None


def default_startup_line(settings: Any) -> str:
    from argoproxy.redaction import mask_url
    return f"{settings.backend} backend -> {mask_url(settings.target_base_url)}"


@dataclass(frozen=True)
class Provider:
    """What the proxy knows of a provider before any backend is built."""

    name: str  # the value of BACKEND that selects it
    backend: str | type  # the Backend subclass, or "package.module:Class" (imported when first built)
    settings: type | None = None  # its settings fragment, composed into Settings
    default_target_url: str = ""  # TARGET_BASE_URL when none is configured
    check_settings: Callable[[Any], str | None] = no_problem  # a broken multi-setting rule: one line naming the key
    startup_line: Callable[[Any], str] = default_startup_line  # where requests go (URL credentials masked)
    summary: str = ""  # what kind of server it talks to, in a few words (for --help)

    def backend_class(self) -> type[Backend]:
        if isinstance(self.backend, str):
            module, _, name = self.backend.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.backend


_REGISTRY: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    """Make a provider selectable as BACKEND=<provider.name>."""
    if _REGISTRY.get(provider.name, provider) != provider:
        raise ValueError(f"two providers are registered as {provider.name!r}")
    _REGISTRY[provider.name] = provider
    return provider


def discover() -> None:
    """Import every provider package under argoproxy/providers/ (each registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Provider:
    return _REGISTRY[name]


def settings_fragments() -> tuple[type, ...]:
    """Every provider's settings dataclass, in registration order, each once."""
    fragments: list[type] = []
    for provider in _REGISTRY.values():
        if provider.settings is not None and provider.settings not in fragments:
            fragments.append(provider.settings)
    return tuple(fragments)


class _DefaultTargetUrls(Mapping):
    """TARGET_BASE_URL's default for each registered provider that has one (a live view of the registry)."""

    def __getitem__(self, name: str) -> str:
        url = _REGISTRY[name].default_target_url
        if not url:
            raise KeyError(name)
        return url

    def __iter__(self) -> Iterator[str]:
        return (name for name, provider in _REGISTRY.items() if provider.default_target_url)

    def __len__(self) -> int:
        return sum(1 for _ in self)


DEFAULT_TARGET_URLS: Mapping[str, str] = _DefaultTargetUrls()


def create_backend(settings: Settings, upstream: Upstream) -> Backend:
    return get(settings.backend).backend_class()(settings, upstream)
