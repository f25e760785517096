"""The Backend interface every provider implements (argoproxy/providers/<name>/backend.py), owned by the
sequence that calls it: the pipeline never imports a provider; providers import this (through
argoproxy/providers/base.py) and serve/build.py hands the sequence the one the settings choose.

The pipeline (argoproxy/pipeline/gateway.py) owns everything protocol-independent: auth, parsing and validation,
LLM_PARAMS, think tags, stream <-> non-stream conversion, errors, metrics and journals. A backend declares
its policy (does the upstream call stream, do answer transforms apply) through hooks the pipeline consults
before it edits the body, and otherwise only translates: OpenAI request -> upstream request (`encode`),
upstream answer -> OpenAI objects (`decode`, `decode_stream`), upstream error -> ProxyError (`error`).
See docs/adding-a-backend.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.meter import OPENAI, Reading
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

# A stream item: already-encoded SSE bytes the pipeline may relay untouched, or a chunk dict to encode.
StreamItem = bytes | dict


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a backend's `prepare` (or `prepare_front`) decided for one request; planning makes the attempt's
    Planned with it (the backend edits the body it is handed, in place, and says which top-level members it
    changed)."""
    state: object = None  # the backend's own per-request state (Planned.backend_state; each backend knows its type)
    upstream_model: str | None = None  # the model sent, when it is not the body's `model` (an alias resolved)
    changed: tuple[str, ...] = ()  # top-level members of the body set, replaced or removed
    body_changed: bool = False  # changed inside a member (an image inlined): the body is encoded again whole
    timeout: float | None = None  # a per-request timeout the backend took out of the body
    adapted: tuple[str, ...] = ()  # X-Adapted-Params: what was changed to fit the model


def set_member(body: dict[str, Any], key: str, value: Any, changed: list[str]) -> None:
    """Set a top-level member of a body a backend prepares, noted in `changed` only when its value changes (the
    other members go on as the client wrote them)."""
    if body.get(key) != value:
        body[key] = value
        changed.append(key)


class Send(Protocol):
    """The sequence's exchange a backend's own route (and `complete`) sends with (Gateway.route_sender)."""

    def __call__(self, req: UpstreamRequest, error: Callable[[Call, UpstreamResponse], ProxyError] | None = None
                 ) -> UpstreamResponse: ...

    def serves(self, model: str | None, upstream_model: str | None) -> None:
        """The model a backend's own route serves: as asked (journals, metrics) and as sent."""


class Backend:
    """Base class: the defaults describe an OpenAI-shaped upstream."""

    name = "base"
    #: kinds this backend translates (chat, completions, embeddings); others are 404 unless forwards_unknown.
    kinds: frozenset[str] = frozenset({"chat", "completions", "embeddings"})
    #: forward paths the proxy does not serve itself to the upstream unchanged (a reverse proxy).
    forwards_unknown = False
    #: kinds of extra_routes() whose answer is a chat.completion: the chat route's answer transforms (think tags,
    #: per THINK_MODE and LLM_PARAMS) apply to it as to a chat answer (ARGO's /v1/status).
    completion_routes: frozenset[str] = frozenset()
    #: pass the upstream's response headers (rate-limit headers and the like) to the client.
    relay_headers = False
    #: the content of an assistant turn that only calls tools: "" (never null: llama.cpp's server and others
    #: refuse null), or None for an upstream known to want null (argoproxy/pipeline/upstream_messages.py)
    tool_turn_content: str | None = ""
    #: requests go up unchecked (the upstream judges parameters) and whole 2xx answers come back as they are,
    #: whatever their content (ARGO native mode).
    transparent = False
    #: the upstream may be a server that counts tokens itself (llama.cpp's /apply-template and /tokenize, vLLM's
    #: /tokenize): count_tokens asks it first (argoproxy/pipeline/upstream_count.py)
    server_counts = False
    #: the output-length fields and multipliers the upstream honours in a chat or completions request (what a
    #: token limit reserves for it: meter/worst.py, docs/reservations.md)
    reading: Reading = OPENAI
    #: its models are priced at their vendor's prices (priced_as), not by the upstream's URL (ARGO)
    names_vendor = False

    def __init__(self, settings: Settings, upstream: Upstream) -> None:
        self.settings = settings
        self.upstream = upstream
        #: the upstream takes `developer` messages (else they go as `system`: argoproxy/pipeline/upstream_messages.py)
        self.keeps_developer = settings.developer_role == "keep"

    def priced_as(self, model: str) -> tuple[str, tuple[str, ...]] | None:
        """With names_vendor: the price table's provider of `model` and the names to look it up by, in order
        (argoproxy/spend/pricer.py); None: the URL's provider prices it."""
        return None

    # --- policy: consulted by the pipeline before it edits the body
    def upstream_streams(self, call: Call, wanted: bool) -> bool:
        """Whether the upstream call streams, given what the client and UPSTREAM_MODE ask for (`wanted`)."""
        return wanted

    def transforms_answers(self, call: Call) -> bool:
        """Whether the answer transforms (think tags) apply; False relays answers as the upstream sent them."""
        return True

    # --- request side
    def url(self, path: str, query: str = "") -> str:
        """A forwarding backend's (forwards_unknown) upstream URL for a path the proxy does not serve itself."""
        raise NotImplementedError

    def upstream_headers(self, call: Call) -> dict[str, str]:
        """A forwarding backend's headers for a forwarded request (the client's, with the upstream's key)."""
        raise NotImplementedError

    def prepare(self, call: Call) -> Prepared | None:
        """Resolve the model name and apply backend rules to call.planned.body (in place; the draft planning hands
        on the call); the record is planning's to make: return what was decided (the model sent when it differs
        from the body's, the members changed, the backend's own state for encode and decode), which the attempt's
        Planned keeps; None: nothing.
        (Any other object returned is kept as the backend's state, as before Prepared.)"""
        return None

    def encode(self, call: Call) -> UpstreamRequest:
        """The upstream request for an API call."""
        raise NotImplementedError

    def complete(self, call: Call, send: Any) -> dict[str, Any] | None:
        """Answer a call that needs more than one upstream request (e.g. batched embeddings); None otherwise.
        Each request goes through `send(req, error=None)`, the sequence's one exchange with the upstream
        (Gateway.exchange: status and timing recorded, a redirect or an error raised as the client's ProxyError)."""
        return None

    def native_front(self, front: str, model: str | None) -> bool:
        """Does the upstream serve this front door's API itself (`responses`, `messages`) for this model?
        Then front_request builds the request and the answer is relayed as it comes (no translation)."""
        return False

    def front_model(self, front: str, model: str | None) -> str | None:
        """The model name a front door's API served natively sends upstream (for capability lookups)."""
        return model

    def prepare_front(self, call: Call, front: str, body: dict[str, Any], count_only: bool) -> Prepared | None:
        """A front door's API served natively: `body` (the plan's) prepared in place as `prepare` does, before
        front_request encodes it; None: nothing to change."""
        return None

    def front_request(self, call: Call, front: str, body: dict[str, Any], count_only: bool) -> UpstreamRequest:
        """The upstream request for a front door's API served natively (see native_front), once prepare_front's
        decisions are in the plan."""
        raise NotImplementedError

    # --- answer side
    def decode(self, call: Call, resp: UpstreamResponse) -> dict[str, Any] | bytes:
        """A non-streamed 2xx answer as an OpenAI object (or the upstream bytes, when already OpenAI JSON)."""
        raise NotImplementedError

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        """A streamed 2xx answer as OpenAI chunks, without the final [DONE]; raise ProxyError when it breaks off."""
        raise NotImplementedError

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        """An upstream 4xx/5xx as the error the client gets (keep its status)."""
        raise NotImplementedError

    # --- other routes
    def list_models(self, call: Call) -> dict[str, Any]:
        """GET /v1/models as an OpenAI list."""
        return {"object": "list", "data": []}

    def model_entry(self, name: str, listing: list[Any]) -> dict[str, Any] | None:
        """GET /v1/models/{name} answered from the backend's own list (no upstream to ask): its entry, or None."""
        return next((e for e in listing if isinstance(e, dict) and e.get("id") == name), None)

    def health(self, query: str = "") -> dict[str, Any] | None:
        """The /health body when the backend checks itself (raise ProxyError(503) when unhealthy);
        None = probe the target URL (any HTTP answer means reachable). `query` is the request's query string."""
        return None

    def extra_routes(self) -> list[tuple[Any, ...]]:
        """(path, kind, methods, handler[, models]) for routes only this backend serves, e.g. ARGO's raw /v1/chat
        as ("v1/chat", "argo_chat", ("POST",), handler, reader). They go through the same door as every route
        (auth, the one guard, metrics, journals); handler(call) finds the request body in call.plan.raw_body and
        returns an Answer. `models(call, named)` calls named(model) for each model the request names (the guard
        holds them to ALLOWED_MODELS and the team key's globs; argoproxy/edge/model_readers.py); a route without
        one names no model (ARGO's /v1/status, the proxy's own probe)."""
        return []
