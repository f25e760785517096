"""What a request is: one Route per request, decided once on the canonical path (argoproxy/edge/paths.py).

Every request gets exactly one route, and with it a kind (the label metrics, journals and logs use) and a
family (which handler serves it):

  api       the OpenAI API routes the proxy understands (chat/completions, completions, embeddings), with
            and without the /v1 prefix
  front     the other front doors (/v1/responses, /v1/messages, /v1/messages/count_tokens; argoproxy/fronts/), and
            Google's /v1beta/models/{model}:generateContent, :streamGenerateContent, :countTokens
  models    /v1/models and /v1/models/{id} (filtered by the allow-list); Google's /v1beta/models[/{model}]
  backend   routes a backend serves itself (ARGO's /v1/chat, /v1/embed, /v1/status)
  own       the proxy's own /, /health and /metrics
  forward   any other path, sent upstream unchanged, when the backend forwards and FORWARD_PATHS allows it
  unknown   nothing serves it (404)

Fixed route names match whatever their case (`/V1/Chat/Completions` is the chat route) and the request is
then handled and forwarded under the table's own spelling; the rest of a path (a model or file id) keeps
its case. So what the proxy classifies is exactly what the upstream receives.

Every path under /v1beta/ and /v1alpha/ (google-genai's `api_version="v1alpha"`), and google-genai's uploads
(/upload/v1beta/...), is the Google door's (front `google`, errors in Google's shape) and is never forwarded: a
Gemini client's key may ride in its query (`?key=`). So is /v1/models/{model}:{method} for a Google method
(google-genai 3 defaults to API version v1); GET /v1/models[/{id}] is the Google door's when the client is a
Google one (argoproxy/serve/door.py: `google_client`). The model segment is decoded once like any segment (so
`%3A` is `:`); the method is what follows its last ':' (`argo:gpt-4o:generateContent` is the model `argo:gpt-4o`),
matched whatever its case; a model name may hold '/' as /v1/models/{id} does.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable

from argoproxy.fronts.google import METHODS, split_method
from argoproxy.edge.paths import Target, encode_path

ALL_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"})
API_KINDS = {"chat/completions": "chat", "completions": "completions", "embeddings": "embeddings"}
# Front doors (argoproxy/fronts/): path -> (kind, front).
FRONT_ROUTES = {"responses": ("responses", "responses"), "messages": ("messages", "messages"),
                "messages/count_tokens": ("count_tokens", "messages")}


@dataclass(frozen=True)
class Route:
    kind: str
    family: str
    path: str  # canonical, without the leading '/': what journals show and the upstream receives
    methods: frozenset[str] = ALL_METHODS
    model: str | None = None  # /v1/models/{id}: the decoded id
    front: str = "openai"  # the API the client speaks (its error shape): openai, responses, messages, google

    @property
    def label(self) -> str:
        return "/" + self.path


@dataclass(frozen=True)
class FixedRoute:
    kind: str
    family: str
    spelling: tuple[str, ...]
    methods: frozenset[str]
    front: str = "openai"


@dataclass
class RouteTable:
    """The fixed routes (by lower-cased segments) and the rule for everything else."""

    forwards: bool = False  # the backend sends unknown paths upstream
    forward_paths: tuple[str, ...] = ("*",)
    fixed: dict[tuple[str, ...], FixedRoute] = field(default_factory=dict)

    def add(self, path: str, kind: str, family: str, methods: Iterable[str], front: str = "openai",
            bare: bool = False) -> None:
        """Register a fixed route; bare=True also serves it without the leading v1/ (base URLs without /v1)."""
        spelling = tuple(p for p in path.strip("/").split("/") if p)  # "" is the root: ()
        spellings = [spelling] + ([spelling[1:]] if bare and spelling[0] == "v1" else [])
        for s in spellings:
            self.fixed[tuple(p.lower() for p in s)] = FixedRoute(kind, family, s, frozenset(methods), front)

    def classify(self, target: Target) -> Route:
        parts = target.parts
        key = tuple(p.lower() for p in parts)
        fixed = self.fixed.get(key)
        if fixed is not None:
            return Route(fixed.kind, fixed.family, encode_path(fixed.spelling), fixed.methods,
                         front=fixed.front)
        if key[:1] in GOOGLE_ONLY:
            return google_route(parts)
        if key[:2] in GOOGLE_UPLOADS:  # google-genai's files.upload: not served, and never forwarded
            return Route("unknown", "unknown", encode_path(parts), front="google")
        model_at = _model_id_at(key)
        if model_at == 2 and split_method(parts[-1])[1] is not None:  # google-genai's default version is v1
            return google_route(parts)
        if model_at:
            model = "/".join(parts[model_at:])  # ids such as meta-llama/Llama-3 hold a '/'
            spelling = ("v1", "models") if model_at == 2 else ("models",)
            return Route("model", "models", encode_path(spelling + parts[model_at:]),
                         frozenset({"GET", "HEAD", "DELETE"}), model=model)
        if self.forwards and forward_allowed(self.forward_paths, target.path):
            return Route("passthrough", "forward", target.path, front=_forwarded_front(key))
        return Route("unknown", "unknown", target.path)


GOOGLE_VERSIONS = ("v1beta", "v1alpha", "v1")
# Paths only Google's API has: the Google door's, whatever follows (a Gemini client's key may ride in the query).
GOOGLE_ONLY = (("v1beta",), ("v1alpha",))
GOOGLE_UPLOADS = (("upload", "v1beta"), ("upload", "v1alpha"))


def google_route(parts: tuple[str, ...]) -> Route:
    """A path under /v1beta/ (or /v1/models/{model}:{method}): the Google door's model list, one model, or a
    method on a model, under the version the client named."""
    key = tuple(p.lower() for p in parts[:2])
    if key[0] not in GOOGLE_VERSIONS or key[1:] != ("models",):
        return Route("unknown", "unknown", encode_path(parts), front="google")
    models = (key[0], "models")
    if len(parts) == 2:
        return Route("models", "models", encode_path(models), frozenset({"GET", "HEAD"}), front="google")
    name, kind = split_method(parts[-1])
    model = "/".join(parts[2:-1] + (name,))
    if not name or model.startswith("/"):
        return Route("unknown", "unknown", encode_path(parts), front="google")
    if kind is None:
        return Route("model", "models", encode_path(models + parts[2:]), frozenset({"GET", "HEAD"}),
                     model=model, front="google")
    spelling = f"{name}:{METHODS[kind][1]}"
    return Route(METHODS[kind][0], "front", encode_path(models + parts[2:-1] + (spelling,)),
                 frozenset({"POST"}), model=model, front="google")


def _model_id_at(key: tuple[str, ...]) -> int:
    """Where the id starts in /v1/models/{id} or /models/{id}; 0 when the path is neither."""
    if len(key) > 2 and key[:2] == ("v1", "models"):
        return 2
    if len(key) > 1 and key[0] == "models":
        return 1
    return 0


def _forwarded_front(key: tuple[str, ...]) -> str:
    """A forwarded path under /v1/messages/ (Anthropic's message batches) answers in Anthropic's error shape."""
    return "messages" if key[:2] == ("v1", "messages") or key[:1] == ("messages",) else "openai"


def forward_allowed(patterns: tuple[str, ...], path: str) -> bool:
    """FORWARD_PATHS: globs over the canonical path with its leading '/' ('*' matches across '/')."""
    full = "/" + path
    return any(fnmatch.fnmatchcase(full, p if p.startswith(("/", "*")) else "/" + p) for p in patterns)


def standard_table(forwards: bool, forward_paths: tuple[str, ...]) -> RouteTable:
    """The routes every proxy has: the API routes, the model list, /health and /metrics."""
    table = RouteTable(forwards, forward_paths)
    for suffix, kind in API_KINDS.items():
        table.add(f"v1/{suffix}", kind, "api", {"POST"}, bare=True)
    for suffix, (kind, front) in FRONT_ROUTES.items():
        table.add(f"v1/{suffix}", kind, "front", {"POST"}, front=front, bare=True)
    table.add("v1/models", "models", "models", {"GET", "HEAD"}, bare=True)
    table.add("", "root", "own", {"GET", "HEAD"})  # clients probe it (Claude Code sends HEAD / first)
    table.add("health", "health", "own", {"GET", "HEAD"})
    table.add("metrics", "metrics", "own", {"GET", "HEAD"})
    table.add("ui", "ui", "own", {"GET", "HEAD"})  # the status page (argoproxy/observe/status_page.py)
    table.add("ui/data", "ui_data", "own", {"GET", "HEAD"})
    return table
