"""The provider registry: the `Provider` record each provider package fills and registers by name, and
`discover()`, which finds the provider packages by name and imports them.

Configuration reads this data (which backends exist, their defaults, their start-up rules, their settings
fragments) without importing any provider: a provider package imports `register` from here (through
argoproxy.providers) and registers itself when `discover()` imports it by its name. The packages searched:
every package under argoproxy/providers/, then every top-level package on the import path whose name starts
with `cot_proxy_provider_` (installed with pip, or in a directory on PYTHONPATH), so adding a provider
touches nothing outside its own package. argoproxy/config/settings.py calls `discover()` when it is first
imported, before it composes the Settings class from the fragments. Registration is light: the backend module
(requests, urllib3, Pillow...) is imported only when a worker builds the backend, after gevent has patched it,
never in the Gunicorn master.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator, Mapping
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping as MappingType, Protocol

class TargetSettings(Protocol):
    """The settings read here about where requests go, typed (Settings has them; config/settings.py, which
    imports this module, cannot be imported back): a misspelt one is an error where Settings is passed in."""

    @property
    def backend(self) -> str: ...
    @property
    def target_base_url(self) -> str: ...


def no_problem(settings: Any) -> str | None:
    return None


def default_startup_line(settings: TargetSettings) -> str:
    from argoproxy.redaction import mask_url
    return f"{settings.backend} backend -> {mask_url(settings.target_base_url)}"


def target_url_only(base_url: str) -> dict[str, str]:
    return {"target_base_url": base_url}


# A setting read only when a rule over the settings allows it: field -> (is it read, why not).
UsedOnlyWhen = MappingType[str, tuple[Callable[[Any], bool], str]]

EXTERNAL_PREFIX = "cot_proxy_provider_"  # top-level packages on the import path that are providers


@dataclass(frozen=True)
class Provider:
    """What the proxy knows of a provider before any backend is built: everything the rest asks about it."""

    name: str  # the value of BACKEND that selects it
    backend: str | type  # the Backend subclass, or "package.module:Class" (imported when first built)
    settings: type | None = None  # its settings fragment, composed into Settings
    default_target_url: str = ""  # TARGET_BASE_URL when none is configured
    check_settings: Callable[[Any], str | None] = no_problem  # a broken multi-setting rule: one line naming the key
    startup_line: Callable[[Any], str] = default_startup_line  # where requests go (URL credentials masked)
    summary: str = ""  # what kind of server it talks to, in a few words (for --help)
    # The setting a routing entry's `api_key_env` fills with its key ("": the provider takes no key).
    key_setting: str = "openai_api_key"
    # The settings a routing entry's `base_url` sets (default: TARGET_BASE_URL).
    entry_urls: Callable[[str], dict[str, str]] = target_url_only
    # Where requests go when the provider has URL settings of its own; None: it sends to TARGET_BASE_URL (and
    # then a TARGET_BASE_URL that is the proxy itself stops start-up: the loop check).
    own_url: Callable[[Any], str] | None = None
    base_url_required: bool = False  # a routing entry must name its base_url (no silent default upstream)
    # Its servers may be local ones that say what they are (llama.cpp's /props, vLLM's /version, Ollama's
    # /api/version): asked for the price rule, argoproxy/upstream/local_server.py (docs/spend.md).
    local_servers: bool = False
    switch: str = ""  # a boolean setting of its own that chooses this backend when true (USE_NATIVE_OPENAI)
    used_only_when: UsedOnlyWhen = dataclasses.field(default_factory=dict)  # its settings that other settings turn off
    first_run: str = ""  # "package.module:NAME" of its FirstRun (argoproxy/config/first_run.py), imported only by the first run
    # Which backend these settings select, for a provider with more than one (ARGO standard and native mode);
    # None: always `backend`.
    backend_for: Callable[[Any], str | type] | None = None
    # Its own model families (a capabilities.yaml of the shared table's shape, argoproxy/config/model_families.py):
    # what models accept on this backend only, tried before the shared families. None: the shared ones alone.
    capabilities: Path | None = None

    @property
    def uses_target_url(self) -> bool:
        return self.own_url is None

    def url(self, settings: TargetSettings) -> str:
        """Where its requests go with these settings."""
        return settings.target_base_url if self.own_url is None else self.own_url(settings)

    def backend_class(self, settings: Any = None) -> type:
        """The Backend subclass (for these settings, when the provider has several)."""
        spec = self.backend_for(settings) if self.backend_for is not None and settings is not None else self.backend
        if isinstance(spec, str):
            module, _, name = spec.partition(":")
            cls: type = getattr(importlib.import_module(module), name)
            return cls
        return spec


_REGISTRY: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    """Make a provider selectable as BACKEND=<provider.name>."""
    if _REGISTRY.get(provider.name, provider) != provider:
        raise ValueError(f"two providers are registered as {provider.name!r}")
    _REGISTRY[provider.name] = provider
    return provider


PACKAGE = "argoproxy.providers"  # the proxy's own providers: each subpackage of it


def discover() -> None:
    """Import every provider package (each registers itself): those under argoproxy/providers/, then the
    top-level packages named cot_proxy_provider_* on the import path, by name."""
    for info in pkgutil.iter_modules(importlib.import_module(PACKAGE).__path__):
        if info.ispkg:
            importlib.import_module(f"{PACKAGE}.{info.name}")
    for name in external_packages():
        importlib.import_module(name)


def external_packages() -> list[str]:
    """Directories named cot_proxy_provider_* in the import path's directories. A directory listing, not
    pkgutil.iter_modules() over sys.path, which costs 50 ms or more at every start."""
    found: set[str] = set()
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as listing:
                found.update(e.name for e in listing if e.name.startswith(EXTERNAL_PREFIX) and e.name.isidentifier()
                             and e.is_dir())
        except OSError:  # a zip file, or a directory that is not there
            continue
    return sorted(found)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Provider:
    return _REGISTRY[name]


def all_providers() -> tuple[Provider, ...]:
    return tuple(_REGISTRY.values())


def settings_fragments() -> tuple[type, ...]:
    """Every provider's settings dataclass, in registration order, each once."""
    fragments: list[type] = []
    for provider in _REGISTRY.values():
        if provider.settings is not None and provider.settings not in fragments:
            fragments.append(provider.settings)
    return tuple(fragments)


class _DefaultTargetUrls(Mapping[str, str]):
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

