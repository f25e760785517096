"""The typed routing settings: `models` (MODELS), `fallbacks` (FALLBACKS) and `key_limits` (KEY_LIMITS).

Each comes from config.yaml as YAML or from its environment variable as JSON. A bad entry raises ValueError
whose message starts with its position ("[2].base_url: ...", ".TEAM_A_KEY.rpm: ..."), so that the settings
loader's one-line error reads "models[2].base_url: ..." or "KEY_LIMITS.TEAM_A_KEY.rpm: ...".

Keys are never held here: an entry names the environment variable that holds its key (`api_key_env`), and
the key itself is read from the environment when the deployment is built. So --show and logs print names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from argoproxy.config import provider_registry as providers
from argoproxy.config.llm_params import CONTROL_KEYS, THINK_MODES, ModelRule, convert_value
from argoproxy.config.model_families import parse_fields

ENTRY_KEYS = ("name", "backend", "base_url", "api_key_env", "upstream_model", "params", "weight", "developer_role",
              "capabilities", "max_concurrency", "self_hosted")
DEVELOPER_ROLES = ("auto", "keep", "system")
GLOB_CHARS = frozenset("*?[")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ModelEntry:
    """One deployment: where requests for `name` may go."""

    name: str  # what clients ask for: an exact name or a glob (argo:*)
    backend: str
    base_url: str = ""  # empty: the backend's configured URL (argo, dashscope)
    api_key_env: str = ""  # the environment variable holding the upstream key
    upstream_model: str = ""  # empty: the name the client asked for
    params: ModelRule | None = None  # LLM_PARAMS vocabulary, applied on top of LLM_PARAMS' own rule
    weight: float = 1.0
    developer_role: str = ""  # empty: DEVELOPER_ROLE's value
    capabilities: tuple[tuple[str, Any], ...] = ()  # capability fields over the table, for every model it serves
    max_concurrency: int = 0  # requests sent to it at once (docs/admission.md); 0: MAX_CONCURRENCY's; AUTO: asked
    self_hosted: bool = False  # a server of one's own: its models cost nothing unless `prices` names them

    @property
    def is_glob(self) -> bool:
        return any(ch in GLOB_CHARS for ch in self.name)

    def __repr__(self) -> str:  # --show and logs: URL credentials masked, the key only by its variable's name
        from argoproxy.redaction import mask_url
        shown = {f: getattr(self, f) for f in ENTRY_KEYS if getattr(self, f) not in ("", None)}
        if not self.self_hosted:
            shown.pop("self_hosted")
        if self.max_concurrency <= 0:  # none (0) is not shown; auto by its name
            shown.pop("max_concurrency")
            if self.max_concurrency == AUTO:
                shown["max_concurrency"] = "auto"
        if self.base_url:
            shown["base_url"] = mask_url(self.base_url)
        if self.capabilities:
            shown["capabilities"] = dict(self.capabilities)
        if self.params is not None:
            shown["params"] = {**self.params.params, **{k: v for k, v in vars(self.params).items()
                                                        if k not in ("model", "params") and v is not None}}
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in shown.items()) + "}"


def entry_url(settings: providers.TargetSettings, entry: ModelEntry) -> str:
    """Where a deployment's requests go: its base_url, else its backend's configured or default URL."""
    if entry.base_url:
        return entry.base_url
    provider = providers.get(entry.backend)
    if not provider.uses_target_url:
        return provider.url(settings)
    if entry.backend == settings.backend and settings.target_base_url:
        return settings.target_base_url
    return provider.default_target_url or settings.target_base_url


def declared_self_hosted(self_hosted: bool, backend: str, entry: ModelEntry) -> bool:
    """A deployment declared a server of one's own: by its entry, or by SELF_HOSTED (`self_hosted`, the setting
    for TARGET_BASE_URL) for an entry sent there (no base_url of its own, the top-level backend)."""
    return entry.self_hosted or (self_hosted and not entry.base_url and entry.backend == backend)


@dataclass(frozen=True)
class KeyLimit:
    """Budgets of one client key, named by the environment variable that holds it."""

    key_env: str
    rpm: int = 0  # 0: no request budget
    tpm: int = 0  # 0: no token budget
    max_parallel: int = 0  # 0: no cap on requests in flight


# ---------------------------------------------------------------- models
def parse_models(value: Any) -> tuple[ModelEntry, ...]:
    """The `models` list (YAML list, or JSON text from MODELS)."""
    items = _decoded(value, list, "a list of model entries")
    return tuple(_entry(i, item) for i, item in enumerate(items))


def _entry(i: int, item: Any) -> ModelEntry:
    at = f"[{i}]"
    if not isinstance(item, dict):
        raise ValueError(f"{at}: expected an object with name and backend, got {type(item).__name__}")
    unknown = sorted(set(item) - set(ENTRY_KEYS))
    if unknown:
        raise ValueError(f"{at}.{unknown[0]}: unknown key (known: {', '.join(ENTRY_KEYS)})")
    name = _text(item.get("name"), f"{at}.name")
    if not name:
        raise ValueError(f"{at}.name: required (the model name clients ask for, or a glob such as argo:*)")
    backend = _text(item.get("backend"), f"{at}.backend").lower()
    if not backend:
        raise ValueError(f"{at}.backend: required ({', '.join(providers.names())})")
    if not _BACKEND_NAME.match(backend):
        raise ValueError(f"{at}.backend: not a backend name: {backend!r}")
    base_url = _base_url(item.get("base_url"), f"{at}.base_url")
    if not base_url and backend in providers.names() and providers.get(backend).base_url_required:
        # No silent default: a forgotten base_url must not send prompts to api.openai.com.
        raise ValueError(f"{at}.base_url: required for the {backend} backend")
    key_env = _text(item.get("api_key_env"), f"{at}.api_key_env")
    if key_env and not _ENV_NAME.match(key_env):
        raise ValueError(f"{at}.api_key_env: must be the name of an environment variable, not its value")
    upstream_model = _text(item.get("upstream_model"), f"{at}.upstream_model")
    developer_role = _text(item.get("developer_role"), f"{at}.developer_role").lower()
    if developer_role and developer_role not in DEVELOPER_ROLES:
        raise ValueError(f"{at}.developer_role: must be one of {', '.join(DEVELOPER_ROLES)}, got {developer_role!r}")
    return ModelEntry(name=name, backend=backend, base_url=base_url, api_key_env=key_env,
                      upstream_model=upstream_model, params=_params(item.get("params"), name, f"{at}.params"),
                      weight=_weight(item.get("weight", 1), f"{at}.weight"), developer_role=developer_role,
                      capabilities=_capabilities(item.get("capabilities"), f"{at}.capabilities"),
                      max_concurrency=as_concurrency(item.get("max_concurrency"), f"{at}.max_concurrency"),
                      self_hosted=_flag(item.get("self_hosted", False), f"{at}.self_hosted"))


AUTO = -1  # a concurrency limit asked of the server (llama.cpp's /props or /slots)
MOST_CONCURRENCY = 100_000  # a limit the workers' shared cells hold (int64), far past any server's slots


def as_concurrency(value: Any, at: str = "") -> int:
    """A concurrency limit: a positive integer, `auto` (AUTO), or nothing (0: none)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, str) and value.strip().lower() == "auto":
        return AUTO
    text = str(value).strip()
    # ASCII digits only: str.isdigit() also passes '²', which int() then refuses with a message of its own
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not (text.isascii() and text.isdigit()):
        raise ValueError(f"{at + ': ' if at else ''}expected a positive integer or auto, got {value!r}")
    if int(value) > MOST_CONCURRENCY:
        raise ValueError(f"{at + ': ' if at else ''}max_concurrency is at most {MOST_CONCURRENCY}, got {value!r}")
    return int(value)


def _capabilities(value: Any, at: str) -> tuple[tuple[str, Any], ...]:
    """An entry's `capabilities`: the fields of model_capabilities (docs/capabilities.md), for this deployment."""
    if value is None:
        return ()
    return tuple(parse_fields(value, at).items())


def _base_url(value: Any, at: str) -> str:
    url = _text(value, at)
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{at}: must be an http(s) URL")  # the value is not echoed: it may hold credentials
    try:
        parts.port
    except ValueError:
        raise ValueError(f"{at}: the port is not a number") from None
    head, _, query = url.split("#", 1)[0].partition("?")  # as argoproxy/upstream/url.py's split_query
    head = head if head.endswith("/") else head + "/"
    return f"{head}?{query}" if query else head  # the query stays the upstream's (argoproxy/upstream/url.py)


def _weight(value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{at}: expected a positive number, got {value!r}")
    try:
        weight = float(value)
    except ValueError:
        raise ValueError(f"{at}: expected a positive number, got {value!r}") from None
    if not 0 < weight < float("inf"):
        raise ValueError(f"{at}: must be greater than 0, got {value!r}")
    return weight


def _params(value: Any, name: str, at: str) -> ModelRule | None:
    """An entry's `params`: forced request parameters plus LLM_PARAMS' control keys, typed as a ModelRule."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{at}: expected an object of parameters, got {type(value).__name__}")
    control: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{at}: parameter names must be strings")
        if key in CONTROL_KEYS:
            control[key] = raw
        else:
            try:  # strings in the LLM_PARAMS vocabulary ("0.6", "true") are typed the same way
                params[key] = convert_value(key, raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                raise ValueError(f"{at}.{key}: {exc}") from None
    mode = control.get("think_mode")
    if mode is not None and mode not in THINK_MODES:
        raise ValueError(f"{at}.think_mode: must be one of {', '.join(THINK_MODES)}, got {mode!r}")
    if mode is None and "enable_think_tag_filtering" in control:
        mode = "strip" if _flag(control["enable_think_tag_filtering"], f"{at}.enable_think_tag_filtering") else "keep"
    inside = control.get("think_starts_inside")
    return ModelRule(
        model=name, params=params,
        think_tag_start=_text(control.get("think_tag_start"), f"{at}.think_tag_start") or None,
        think_tag_end=_text(control.get("think_tag_end"), f"{at}.think_tag_end") or None,
        think_mode=mode,
        think_starts_inside=None if inside is None else _flag(inside, f"{at}.think_starts_inside"),
        upstream_model_name=_text(control.get("upstream_model_name"), f"{at}.upstream_model_name") or None,
        append_to_last_user_message=_raw_text(control.get("append_to_last_user_message"),
                                              f"{at}.append_to_last_user_message") or None)


# ---------------------------------------------------------------- fallbacks
def parse_fallbacks(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`fallbacks`: (model name, the models to try in order when its pool fails) pairs."""
    mapping = _decoded(value, dict, "an object mapping a model name to a list of models")
    out: dict[str, tuple[str, ...]] = {}
    for name, targets in mapping.items():
        at = f".{name}"
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{at}: model names must be non-empty strings")
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets:
            raise ValueError(f"{at}: expected a list of model names")
        names = tuple(_text(t, f"{at}[{i}]") for i, t in enumerate(targets))
        if not all(names):
            raise ValueError(f"{at}: empty model name in the list")
        out[name.strip()] = names
    return tuple(out.items())


# ---------------------------------------------------------------- key limits
def parse_key_limits(value: Any) -> tuple[KeyLimit, ...]:
    """`key_limits`: name of the environment variable holding a client key -> {rpm, tpm, max_parallel}."""
    mapping = _decoded(value, dict, "an object mapping a key's environment variable to {rpm, tpm}")
    out: dict[str, KeyLimit] = {}
    for env_name, budget in mapping.items():
        at = f".{env_name}"
        if not isinstance(env_name, str) or not _ENV_NAME.match(env_name):
            raise ValueError(f"{at}: must be the name of an environment variable holding a client key")
        if not isinstance(budget, dict) or not budget:
            raise ValueError(f"{at}: expected an object with rpm and/or tpm")
        unknown = sorted(set(budget) - {"rpm", "tpm", "max_parallel"})
        if unknown:
            raise ValueError(f"{at}.{unknown[0]}: unknown key (known: rpm, tpm, max_parallel)")
        out[env_name] = KeyLimit(env_name, rpm=_count(budget.get("rpm"), f"{at}.rpm"),
                                 tpm=_count(budget.get("tpm"), f"{at}.tpm"),
                                 max_parallel=_count(budget.get("max_parallel"), f"{at}.max_parallel"))
    return tuple(out.values())


def _count(value: Any, at: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() \
            or int(value) < 1:
        raise ValueError(f"{at}: expected a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- admission weights
def parse_weights(value: Any) -> tuple[tuple[str, float], ...]:
    """`admission_weights`: a key's name (a team key's, or key_limits' environment variable) -> its weight."""
    mapping = _decoded(value, dict, "an object mapping a key's name to its weight")
    out = []
    for name, weight in mapping.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f".{name}: key names must be non-empty strings")
        out.append((name.strip(), _weight(weight, f".{name}")))
    return tuple(out)


# ---------------------------------------------------------------- checks against each other and the environment
def check_routing(models: tuple[ModelEntry, ...], fallbacks: tuple[tuple[str, tuple[str, ...]], ...],
                  key_limits: tuple[KeyLimit, ...], known_backends: tuple[str, ...],
                  environ: Mapping[str, str]) -> None:
    """Rules across settings; raises ValueError("models[1].backend: ...") naming the key."""
    for i, entry in enumerate(models):
        if entry.backend not in known_backends:
            raise ValueError(f"models[{i}].backend: unknown backend {entry.backend!r} "
                             f"(known: {', '.join(known_backends)})")
        if entry.api_key_env and not environ.get(entry.api_key_env):
            raise ValueError(f"models[{i}].api_key_env: the environment variable {entry.api_key_env} is not set")
    if models:
        for name, targets in fallbacks:
            for j, target in enumerate(targets):
                if not any(matches(e, target) for e in models):
                    raise ValueError(f"fallbacks.{name}[{j}]: no entry of models serves {target!r}")
    for limit in key_limits:
        if not environ.get(limit.key_env):
            raise ValueError(f"key_limits.{limit.key_env}: the environment variable {limit.key_env} is not set")


def matches(entry: ModelEntry, model: str) -> bool:
    from fnmatch import fnmatchcase
    return fnmatchcase(model, entry.name) if entry.is_glob else model == entry.name


# ---------------------------------------------------------------- small parsers
def _decoded(value: Any, kind: type, what: str) -> Any:
    """A YAML value as it is, or JSON text from an environment variable, checked to be `kind`."""
    if value is None or value == "":
        return kind()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc.args[0].split(':')[0]}); expected {what}") from None
    if not isinstance(value, kind):
        raise ValueError(f"expected {what}, got {type(value).__name__}")
    return value


def _text(value: Any, at: str) -> str:
    return _raw_text(value, at).strip()


def _raw_text(value: Any, at: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, bool)):
        raise ValueError(f"{at}: expected a string, got {type(value).__name__}")
    return str(value)


def _flag(value: Any, at: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{at}: expected true or false, got {value!r}")
