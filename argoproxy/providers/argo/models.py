"""ARGO model names: the built-in alias tables, name resolution, model families and the /v1/models listing.

ARGO knows models by short internal ids (`gpt4o`, `claudesonnet4`, `v3small`); OpenAI clients send
names like `argo:gpt-4o`, `argo/gpt-4o`, `GPT-4o` or `claude-sonnet-4-5-20250929`. Resolution accepts all
of those and answers an unknown name with a 404 that suggests close matches, instead of silently
falling back to another model (the original's worst surprise, issues #67 and #89) - unless the caller
explicitly configures a fallback.

The built-in tables are the union of argo-proxy v2.7.9's list and the models its later versions added.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from argoproxy.errors import ProxyError

Kind = Literal["chat", "embed"]

ALIAS_PREFIX = "argo:"

# internal id -> aliases, in listing order. Retired models stay: old configs and scripts name them,
# and ARGO answers for itself whether a model is still served.
CHAT_MODELS: dict[str, tuple[str, ...]] = {
    "gpt35": ("argo:gpt-3.5-turbo",),
    "gpt35large": ("argo:gpt-3.5-turbo-16k",),
    "gpt4": ("argo:gpt-4",),
    "gpt4large": ("argo:gpt-4-32k",),
    # the seed README (Flask/Sanic era) named it -turbo-preview, v2.7.9 -turbo: keep both
    "gpt4turbo": ("argo:gpt-4-turbo", "argo:gpt-4-turbo-preview"),
    "gpt4o": ("argo:gpt-4o",),
    "gpt4olatest": ("argo:gpt-4o-latest",),
    "gpto1preview": ("argo:gpt-o1-preview", "argo:o1-preview"),
    "gpto1mini": ("argo:gpt-o1-mini", "argo:o1-mini"),
    "gpto1": ("argo:gpt-o1", "argo:o1"),
    "gpto3mini": ("argo:gpt-o3-mini", "argo:o3-mini"),
    "gpto3": ("argo:gpt-o3", "argo:o3"),
    "gpto4mini": ("argo:gpt-o4-mini", "argo:o4-mini"),
    "gpt41": ("argo:gpt-4.1",),
    "gpt41mini": ("argo:gpt-4.1-mini",),
    "gpt41nano": ("argo:gpt-4.1-nano",),
    "gpt5": ("argo:gpt-5",),
    "gpt5mini": ("argo:gpt-5-mini",),
    "gpt5nano": ("argo:gpt-5-nano",),
    "gpt51": ("argo:gpt-5.1",),
    "gpt52": ("argo:gpt-5.2",),
    "gpt54": ("argo:gpt-5.4",),
    "gpt55": ("argo:gpt-5.5",),
    "gemini25pro": ("argo:gemini-2.5-pro",),
    "gemini25flash": ("argo:gemini-2.5-flash",),
    "gemini35flash": ("argo:gemini-3.5-flash",),
    "gemini31flashlite": ("argo:gemini-3.1-flash-lite",),
    "claudeopus47": ("argo:claude-opus-4.7", "argo:claude-4.7-opus"),
    "claudeopus46": ("argo:claude-opus-4.6", "argo:claude-4.6-opus"),
    "claudeopus45": ("argo:claude-opus-4.5", "argo:claude-4.5-opus"),
    "claudeopus41": ("argo:claude-opus-4.1", "argo:claude-4.1-opus"),
    "claudeopus4": ("argo:claude-opus-4", "argo:claude-4-opus"),
    "claudesonnet46": ("argo:claude-sonnet-4.6", "argo:claude-4.6-sonnet"),
    "claudesonnet45": ("argo:claude-sonnet-4.5", "argo:claude-4.5-sonnet"),
    "claudesonnet4": ("argo:claude-sonnet-4", "argo:claude-4-sonnet"),
    "claudesonnet37": ("argo:claude-sonnet-3.7", "argo:claude-3.7-sonnet"),
    # v2.7.9's code said -v2, its README table said plain 3.5: accept both spellings
    "claudesonnet35v2": (
        "argo:claude-sonnet-3.5-v2",
        "argo:claude-3.5-sonnet-v2",
        "argo:claude-sonnet-3.5",
        "argo:claude-3.5-sonnet",
    ),
    "claudehaiku45": ("argo:claude-haiku-4.5", "argo:claude-4.5-haiku"),
}

EMBED_MODELS: dict[str, tuple[str, ...]] = {
    "ada002": ("argo:text-embedding-ada-002",),
    "v3small": ("argo:text-embedding-3-small",),
    "v3large": ("argo:text-embedding-3-large",),
}

EMBEDDING_DIMENSIONS: dict[str, int] = {"ada002": 1536, "v3small": 1536, "v3large": 3072}

# ARGO's own docs: o1-preview and o1-mini take only the user role (v2.7.x NO_SYS_MSG_MODELS).
NO_SYSTEM_PATTERNS = ("*o1preview", "*o1mini")

# Fixed at import so that /v1/models answers the same on every call of a worker.
CREATED = int(time.time())

_DATE_SUFFIX = re.compile(r"-\d{8}$")
_NON_ALNUM = re.compile(r"[^a-z0-9]")


def model_family(model_id: str) -> str:
    """'openai', 'anthropic', 'google' or 'unknown', from an internal id (or any name containing one)."""
    name = model_id.lower()
    if "claude" in name:
        return "anthropic"
    if "gemini" in name:
        return "google"
    if "gpt" in name or "embedding" in name or name.startswith(("ada", "v3")):
        return "openai"
    return "unknown"


def accepts_system_messages(model_id: str) -> bool:
    """False for models that take only the user role (o1-preview, o1-mini)."""
    name = model_id.lower()
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in NO_SYSTEM_PATTERNS)


def _squash(name: str) -> str:
    return _NON_ALNUM.sub("", name)


def _bare(name: str) -> str:
    return name[len(ALIAS_PREFIX):] if name.startswith(ALIAS_PREFIX) else name


class _Index:
    """Lookup structures for one kind of model (chat or embed)."""

    def __init__(self, models: Mapping[str, Sequence[str]]) -> None:
        self.models = {model_id: tuple(aliases) for model_id, aliases in models.items()}
        self.ids = {model_id.lower(): model_id for model_id in self.models}
        self.aliases = {
            alias.lower(): model_id for model_id, aliases in self.models.items() for alias in aliases
        }
        self.squashed = self._squashed_names()

    def _squashed_names(self) -> dict[str, str]:
        # 'claude-3-5-sonnet-v2' and 'argo:claude-3.5-sonnet-v2' squash to the same key; a key
        # claimed by two different models is ambiguous and dropped.
        seen: dict[str, str | None] = {}
        for low, model_id in [*self.ids.items(), *self.aliases.items()]:
            key = _squash(_bare(low))
            if seen.get(key, model_id) != model_id:
                seen[key] = None
            else:
                seen[key] = model_id
        return {key: model_id for key, model_id in seen.items() if model_id}

    def lookup(self, name: str) -> str | None:
        low = name.strip().lower().replace("/", ":", 1)
        bare = _bare(low)
        for candidate in (low, bare, ALIAS_PREFIX + bare):
            if candidate in self.ids:
                return self.ids[candidate]
            if candidate in self.aliases:
                return self.aliases[candidate]
        for candidate in (bare, _DATE_SUFFIX.sub("", bare)):
            found = self.squashed.get(_squash(candidate))
            if found:
                return found
        return None

    def names(self) -> list[str]:
        return [*self.aliases, *self.ids]


class ModelTable:
    """The chat and embedding models one proxy knows, with their aliases."""

    def __init__(
        self,
        chat: Mapping[str, Sequence[str]] = CHAT_MODELS,
        embed: Mapping[str, Sequence[str]] = EMBED_MODELS,
    ) -> None:
        self._index: dict[str, _Index] = {"chat": _Index(chat), "embed": _Index(embed)}

    def with_chat_models(self, more: Mapping[str, Sequence[str]]) -> "ModelTable":
        """This table with more chat models (a model both have keeps its aliases and gains the others). A name
        this table already resolves keeps its model: a list cannot move `argo:gpt-4o` to another one."""
        chat = self.models("chat")
        for model_id, aliases in more.items():
            if self.lookup(model_id, "embed") is not None or self.lookup(model_id, "chat") not in (None, model_id):
                continue  # an id this table reads as another model's name (`o3` is argo:o3, gpto3)
            free = [a for a in aliases if self.lookup(a, "chat") in (None, model_id) and self.lookup(a, "embed") is None]
            chat[model_id] = tuple(dict.fromkeys([*chat.get(model_id, ()), *free]))
        return ModelTable(chat, self.models("embed"))

    def models(self, kind: Kind) -> dict[str, tuple[str, ...]]:
        """internal id -> aliases for one kind."""
        return dict(self._index[kind].models)

    def lookup(self, name: str, kind: Kind = "chat") -> str | None:
        """The internal id for `name`, or None when it is not a known model of this kind."""
        return self._index[kind].lookup(name)

    def suggestions(self, name: str, kind: Kind = "chat", limit: int = 3) -> list[str]:
        """Known names close to `name` (aliases preferred over internal ids), best first."""
        index = self._index[kind]
        low = _bare(name.strip().lower().replace("/", ":", 1))
        by_bare: dict[str, str] = {}
        for known in index.names():
            by_bare.setdefault(_bare(known), known)
        close = difflib.get_close_matches(low, list(by_bare), n=limit * 2, cutoff=0.5)
        picked: list[str] = []
        for match in close:
            # Offer each model once, under its first (canonical) alias.
            model_id = index.lookup(by_bare[match])
            if model_id is None:
                continue
            canonical = index.models[model_id][0] if index.models[model_id] else model_id
            if canonical not in picked:
                picked.append(canonical)
        return picked[:limit]

    def resolve(self, name: str | None, kind: Kind = "chat", *, fallback: str | None = None) -> str:
        """The internal id for `name`; see the module-level `resolve_model`."""
        if name is None or not str(name).strip():
            if fallback:
                return self.resolve(fallback, kind)
            raise ProxyError(400, "You must provide a model parameter.", param="model", code="missing_model")
        name = str(name)
        found = self.lookup(name, kind)
        if found:
            return found
        if fallback:
            return self.resolve(fallback, kind)
        raise self._not_found(name, kind)

    def _not_found(self, name: str, kind: Kind) -> ProxyError:
        other: Kind = "embed" if kind == "chat" else "chat"
        if self.lookup(name, other):
            what = "an embedding model" if other == "embed" else "a chat model"
            use = "/v1/embeddings" if other == "embed" else "/v1/chat/completions or /v1/completions"
            message = f"The model '{name}' is {what}; use it with {use}."
        else:
            hints = self.suggestions(name, kind)
            did_you_mean = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
            message = (
                f"The model '{name}' does not exist on ARGO.{did_you_mean} "
                "GET /v1/models lists every available model."
            )
        return ProxyError(404, message, param="model", code="model_not_found")

    def openai_list(self, created: int = CREATED) -> dict[str, Any]:
        """Every alias (chat, then embedding) as an OpenAI model list, each naming its internal id."""
        data = []
        for kind in ("chat", "embed"):
            for model_id, aliases in self._index[kind].models.items():
                owner = model_family(model_id)
                for alias in aliases:
                    data.append(
                        {
                            "id": alias,
                            "object": "model",
                            "created": created,
                            "owned_by": owner if owner != "unknown" else "argo",
                            "internal_name": model_id,
                        }
                    )
        return {"object": "list", "data": data}


BUILTIN = ModelTable()


def resolve_model(
    name: str | None, kind: Kind = "chat", *, fallback: str | None = None, table: ModelTable | None = None
) -> str:
    """Resolve a client's model name to an ARGO internal id.

    Accepted forms, case-insensitively: an alias (`argo:gpt-4o`), the alias with `/` (`argo/gpt-4o`)
    or without the prefix (`gpt-4o`), an internal id (`gpt4o`), punctuation-free spellings
    (`claude-sonnet-4-5` -> `claudesonnet45`) and a trailing `-YYYYMMDD` date. An unknown name raises
    ProxyError(404, code="model_not_found") with close-match suggestions, unless `fallback` (itself a
    resolvable name) is given; an empty name raises 400 unless `fallback` is given.
    """
    return (table or BUILTIN).resolve(name, kind, fallback=fallback)


def list_models(created: int = CREATED, table: ModelTable | None = None) -> dict[str, Any]:
    """The /v1/models body: {"object": "list", "data": [{"id", "object", "created", "owned_by", "internal_name"}]}."""
    return (table or BUILTIN).openai_list(created)


