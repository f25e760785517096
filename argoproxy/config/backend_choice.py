"""Which backend a start-up runs and why, and what to say about settings given for another backend.

One set of rules for every entry point (run_app.sh, `python cot_proxy.py`, gunicorn.conf.py, the Docker
image, the console scripts), applied by the loader (argoproxy/config/settings.py):

- `backend` given anywhere (config file, BACKEND, --backend) decides, with the usual precedence.
- Else a provider is inferred from its own settings (the fields of its settings fragment): given in the
  config file or as flags (an argo-openai-proxy config.yaml has ARGO's keys and no `backend:`; `--user`,
  `--native-openai`), or its switch (`Provider.switch`) true in the environment (USE_NATIVE_OPENAI=true,
  seed 000's way to choose ARGO's native mode). Keys of two providers without a backend stop start-up.
- Else the default, openai.
- A provider's settings given with an explicit other backend stop start-up when they come from the config
  file or the flags (the sources contradict each other: one line names both); from the environment they are a
  warning (environments carry variables meant for other tools).
- A provider's switch (USE_NATIVE_OPENAI=true) chooses a backend as BACKEND does: beside an explicit other
  backend it stops start-up from the environment too.
- TARGET_BASE_URL / OPENAI_BASE_URL with a backend that does not use it (one with URL settings of its own:
  argo) stops start-up when the backend was inferred (the user meant one upstream, the file another: never a
  silent choice of either) and is a warning when the backend was given explicitly. OPENAI_API_KEY, which only
  the backends whose key it is send (`Provider.key_setting`), is a warning with the others.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Sequence

from argoproxy.config import provider_registry as providers

DEFAULT_BACKEND = "openai"
_TARGET_FIELDS = frozenset({"target_base_url"})
_CORE_KEY = "openai_api_key"  # the core key setting: only the providers whose key_setting it is send it


def target_unused_by(backend: str) -> bool:
    """Does this backend never send to TARGET_BASE_URL (it has URL settings of its own, as ARGO has)?"""
    return backend in providers.names() and not providers.get(backend).uses_target_url


def _key_unused_by(name: str, backend: str) -> bool:
    return name == _CORE_KEY and backend in providers.names() and providers.get(backend).key_setting != _CORE_KEY


def _is_switch(name: str) -> bool:
    """A provider's own boolean setting that chooses its backend (USE_NATIVE_OPENAI)."""
    return any(p.switch == name for p in providers.all_providers())


@dataclass(frozen=True)
class Given:
    """One setting as the user gave it."""

    name: str  # the Settings field
    label: str  # the YAML key, environment variable or flag, as written
    source: str  # "file", "env" or "flag"
    value: Any = None


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    reason: str = ""  # why this backend, when nobody named it (for the start-up line)
    warnings: tuple[str, ...] = ()


class BackendConflict(ValueError):
    """Settings that contradict the backend: the message is one line naming both."""


def owner(name: str) -> str | None:
    """The provider whose settings fragment declares this field (None for core settings)."""
    for provider_name in providers.names():
        fragment = providers.get(provider_name).settings
        if fragment is not None and any(f.name == name for f in dataclasses.fields(fragment)):
            return provider_name
    return None


def choose_backend(given: Sequence[Given], config_path: str, truthy: Any) -> BackendChoice:
    """The backend for these settings (given in precedence order: file, env, flags); `truthy` parses a
    boolean as the loader does. Raises BackendConflict."""
    explicit = [g for g in given if g.name == "backend"]
    if explicit:
        chosen = explicit[-1]
        backend = str(chosen.value).strip().lower()
        return BackendChoice(backend, "", _check_against(backend, chosen, given, config_path, inferred=False))
    backend, reason = _inferred(given, config_path, truthy)
    chosen = Given("backend", reason, "inferred", backend)
    return BackendChoice(backend, reason,
                         _check_against(backend, chosen, given, config_path, inferred=bool(reason)))


def _inferred(given: Sequence[Given], config_path: str, truthy: Any) -> tuple[str, str]:
    evidence: dict[str, list[Given]] = {}
    for g in given:
        provider = owner(g.name)
        if provider is None:
            continue
        if g.source in ("file", "flag") or (_is_switch(g.name) and _is_true(truthy, g.value)):
            evidence.setdefault(provider, []).append(g)
    if not evidence:
        return DEFAULT_BACKEND, ""
    if len(evidence) > 1:
        named = "; ".join(f"{p}: {', '.join(g.label for g in gs[:3])}" for p, gs in evidence.items())
        raise BackendConflict(f"backend: settings of more than one backend are given ({named}): set backend")
    provider, items = next(iter(evidence.items()))
    from_file = [g.label for g in items if g.source == "file"]
    if from_file:
        keys = ", ".join(from_file[:3]) + (", ..." if len(from_file) > 3 else "")
        return provider, f"{config_path} has its keys ({keys}) and no backend: key"
    chooser = next((g for g in items if _is_switch(g.name)), items[-1])  # seed 000's USE_NATIVE_OPENAI
    return provider, f"{chooser.label} implies it"


def _is_true(truthy: Any, value: Any) -> bool:
    try:
        return bool(truthy(value))
    except ValueError:
        return False


def _check_against(backend: str, chosen: Given, given: Sequence[Given], config_path: str,
                   inferred: bool) -> tuple[str, ...]:
    warnings: list[str] = []
    where = _where(chosen, config_path)
    routed = any(g.name == "models" for g in given)  # `models` entries may use any backend's settings
    entry_backends = _entry_backends(given)
    for g in given:
        provider = owner(g.name)
        foreign = provider is not None and provider != backend and provider not in entry_backends
        unused_target = g.name in _TARGET_FIELDS and target_unused_by(backend)
        if _key_unused_by(g.name, backend) and not routed:
            if str(g.value or "").strip():  # an empty one (a Secret's placeholder) says nothing
                warnings.append(f"{g.label} is set{_in(g)}, but the {backend} backend does not use it")
            continue
        if not (foreign or unused_target):
            continue
        chooses_backend = _is_switch(g.name)  # USE_NATIVE_OPENAI=true is seed 000's BACKEND=argo
        if chooses_backend and not _truthy_label(g):
            continue
        what = f"{provider}'s setting" if foreign else f"the upstream of the {_target_users()} backends"
        if g.source == "env" and not (unused_target and inferred) and not chooses_backend:
            warnings.append(f"{g.label} is set in the environment, but the {backend} backend does not use it")
            continue
        raise BackendConflict(f"{g.label}: {what} ({_from(g, config_path)}), but the backend is {backend} ({where}): "
                              f"remove one of them{_hint(g, provider, backend)}")
    return tuple(warnings)


def _entry_backends(given: Sequence[Given]) -> frozenset[str]:
    """The backends the entries of a `models` list name: their providers' settings serve those entries (ARGO's
    user for an `argo:*` entry). A list that does not parse names none; the loader reports it."""
    entries: Any = next((g.value for g in reversed(given) if g.name == "models"), None)
    if isinstance(entries, str):
        try:
            entries = json.loads(entries)
        except ValueError:
            return frozenset()
    if not isinstance(entries, list):
        return frozenset()
    return frozenset(str(e["backend"]).strip().lower() for e in entries if isinstance(e, dict) and "backend" in e)


def _target_users() -> str:
    """"openai and dashscope": the backends that send to TARGET_BASE_URL."""
    names = sorted((p.name for p in providers.all_providers() if p.uses_target_url), key=lambda n: n != DEFAULT_BACKEND)
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def _in(g: Given) -> str:
    return {"env": " in the environment", "file": " in the config file", "flag": " on the command line"}.get(g.source, "")


def _truthy_label(g: Given) -> bool:
    return str(g.value).strip().lower() not in ("0", "false", "f", "no", "n", "off", "")


def _where(chosen: Given, config_path: str) -> str:
    if chosen.source == "inferred":
        return chosen.label or "the default"
    return _from(chosen, config_path)


def _from(g: Given, config_path: str) -> str:
    return {"file": f"in {config_path}", "env": "in the environment", "flag": "on the command line"}.get(
        g.source, g.source)


def _hint(g: Given, provider: str | None, backend: str) -> str:
    if g.name in _TARGET_FIELDS:
        return ", or set BACKEND=openai to send requests to it"
    return f", or set backend {provider}" if provider else ""
