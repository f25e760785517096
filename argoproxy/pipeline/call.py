"""One client request as it moves through the proxy, in its phases, each with its own writer:

- ClientRequest: what the door knows about the client's request. Immutable; the door builds it, and a front
  door's translation replaces it whole once (it names the API the client speaks).
- Plan: what is served and the request as admitted: the route, the body, the model asked for, the front door's
  exchange, budgets. Written by the door (the route), the guard (the models named, what the limits admitted);
  a front door's translation makes a new one.
- Planned: what one attempt sends and how it answers (the body as sent, the model sent, stream modes, think,
  timeout, the backend's state, what was adapted). Frozen: the plan step returns it (planning.py), and a retry,
  a fallback, a stream asked again whole or a refused parameter makes a new one, never an edit.
- Outcome: what happened: statuses, usage, bytes, timings, the deployment that served. Written by the sequence
  (gateway.py: the exchange with the upstream, the deployment), the answer side (answers.py: what the encoders
  and filters found, through its note_* methods) and the door (the answers it makes itself).

Observers (metrics, journals, logs, traces, budgets) never read the Plan or the Outcome: they are handed frozen
records of them, one made as the call is sent and one as it ends (call_records.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

import msgspec
from msgspec import field

from argoproxy.edge.body_members import Members, encode_members
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.think import ThinkConfig

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Request
    from argoproxy.upstream.body_tap import BodyTap
    from argoproxy.pipeline.stream_usage import UsageTap
    from argoproxy.meter import Asked, Used
    from argoproxy.config.routing_settings import KeyLimit
    from argoproxy.teamkeys.records import KeyRecord
    from argoproxy.upstream.client import CallBudget
    from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse
    from argoproxy.pipeline.answer_facts import AnswerFacts
    from argoproxy.spend import Cost, PriceSource

# Routes whose bodies the proxy understands, by the path after /v1/.
API_KINDS = {"chat/completions": "chat", "completions": "completions", "embeddings": "embeddings"}


# The three phases are msgspec Structs: made in C (a dataclass's __init__ with as many fields cost 300 Python
# bytecodes a request, a dataclasses.replace 330), read and written as fast as a class with __slots__.


class ClientRequest(msgspec.Struct, frozen=True):
    """The client's request as the door saw it."""
    method: str
    path: str  # as the client sent it, without the leading '/'
    request_id: str = ""
    request: Request | None = None  # the edge's request (its body is read from it once the route is known)
    front: str = "openai"  # the API the client speaks: openai (chat, completions, embeddings), responses, ...
    route: str = ""  # the route's name for metrics and logs, when it is not the kind served
    started: float = field(default_factory=time.perf_counter)
    trace: Trace | None = None  # TRACING on: the request's spans (tracing/tracer.py's CallTrace)

    @property
    def client_request_id(self) -> str:
        """The client's X-Request-ID ("" when it sent none): kept beside the proxy's own id, never as it."""
        return self.request.client_request_id if self.request is not None else ""

    @property
    def session(self) -> str:
        """The agent session the request belongs to ("" for none: edge/agent_sessions.py)."""
        return self.request.session if self.request is not None else ""


class Trace(Protocol):
    """A request's spans, as the parts that carry it see them (tracing/tracer.py holds them): the upstream client
    traces each attempt through its tracer, and a background run goes on in a span of its own."""

    def detached(self, call: Call) -> Trace:
        """The trace of work the call's request goes on with after its answer (a background response's run)."""


class Held:
    """What an admission holds until the call ends, given back once by its observer (`take`): a background run's
    call shares its request's plan, and both are observed. The guard keeps it in the plan; the observer empties
    it, never the plan."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def take(self) -> object:
        value, self.value = self.value, None
        return value


class Plan(msgspec.Struct):
    """What is served, and the request as admitted: set by the door (the route, the body read), the guard (the models
    named, what the limits admitted) and a front door's translation (which makes a new Plan: the chat route, the
    request it became, its exchange). What is sent is planned from it into a `Planned`, never written back here."""
    kind: str  # chat | completions | embeddings | models | passthrough | count_tokens | backend-specific
    path: str  # the path served (a front door's request goes to the chat path)
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # the client's headers that may go upstream
    raw_body: bytes = b""
    body: dict[str, Any] = field(default_factory=dict)  # the request as admitted, parsed, on the API routes (a
    # front door's: the chat request it became); planning starts from it
    members: Members | None = None  # a long body's top-level values as written (edge/body_members.py)
    supplied: tuple[str, ...] = ()  # top-level members the reservation's limit wrote into the body (guard.py)
    model: str | None = None  # as the client named it
    timeout: float | None = None  # a call the proxy makes itself (a model list): its own; planned calls: Planned's
    answer_most: int = 0  # the most of the upstream's answer read whole; 0: MAX_RESPONSE_BYTES (the proxy's own
    # reads bound theirs: upstream/answer_bounds.py)
    exchange: object = None  # a front door's translation state (pipeline/door_api.py's DoorExchange; the door's
    # answer encoder knows its type), while its answer is translated back
    asked: Asked | None = None  # the request as the meter reads it: its worst case, read once and only when a
    # limit, the fair queue or a trace needs it (argoproxy/meter/)
    key_limit: KeyLimit | None = None  # the key_limits budget this call counts against
    team_key: KeyRecord | None = None  # the team key admitted (teamkeys/)
    limit_lease: Held | None = None  # what the key_limits admission holds until the call ends (admission/key_limits.py)
    key_lease: object = None  # what the team key's admission holds until the call ends (teamkeys/service.py)
    key_name: str | None = None  # the team key recognised, admitted or refused (the status page names it)


def request_bytes(plan: Plan) -> bytes:
    """The request as admitted, as bytes (what a routed retry or fallback is planned from again): the client's,
    or encoded again where a translation or a supplied limit changed it."""
    if plan.exchange is not None or (plan.supplied and plan.members is None):
        return dumps(plan.body)
    if plan.supplied:
        assert plan.members is not None
        return encode_members(plan.members, plan.body, set(plan.supplied))
    return plan.raw_body


class Planned(msgspec.Struct, frozen=True):
    """What one attempt sends and how it answers, as planning decided it (planning.py) and nothing after: the body as
    it will be sent, stream modes, the usage asked, the think configuration, the stream's meter, the model sent,
    the timeout, the backend's own state and what was adapted and why. Handed on the call to the backend's
    encoding, the exchange and the answer encoders; a routed retry, a fallback, a stream asked again whole or a
    parameter the upstream refused makes a new one."""
    body: dict[str, Any] = field(default_factory=dict)  # as it will be sent, parsed
    raw_body: bytes = b""  # the client's bytes: sent as they are when nothing changed
    members: Members | None = None  # a long body's top-level values as written (edge/body_members.py)
    touched: frozenset[str] = frozenset()  # top-level members replaced, added or removed
    rewritten: bool = False  # changed inside a member: encoded again whole
    upstream_model: str | None = None  # as sent upstream
    client_stream: bool = False
    upstream_stream: bool = False
    include_usage: bool = False
    think: ThinkConfig | None = None
    timeout: float | None = None
    meter: UsageTap | None = None  # a chat stream under a token budget or that costs money (pipeline/stream_usage.py)
    backend_state: object = None  # the backend's own, from its prepare (each backend knows its type)
    adapted: tuple[str, ...] = ()  # X-Adapted-Params: what was changed to fit the model

    @property
    def changed(self) -> bool:
        return self.rewritten or bool(self.touched)

    def body_bytes(self) -> bytes:
        """The body to send upstream: the client's bytes unless something changed the parsed body; when only
        some top-level members changed in a long body, the others as the client wrote them."""
        if self.rewritten:
            return dumps(self.body)
        if self.touched:
            if self.members is None:
                return dumps(self.body)
            return encode_members(self.members, self.body, self.touched)
        return self.raw_body


NOT_PLANNED = Planned()  # a call sent as it came (a forwarded path, a backend's own route, a model list)


class Outcome(msgspec.Struct):
    """What happened, for the observers."""
    status: int = 0
    upstream_request: UpstreamRequest | None = None
    upstream_response: UpstreamResponse | None = None
    upstream_status: int | None = None
    upstream_at: float | None = None  # when the upstream's headers arrived
    upstream_output: Any = None  # the upstream's answer before the proxy's transforms (journals only)
    upstream_tap: BodyTap | None = None  # journals: the upstream's answer bytes
    output_tap: BodyTap | None = None  # journals: the answer bytes sent to the client
    first_byte_at: float | None = None
    bytes_out: int = 0
    usage: dict[str, Any] | None = None
    usage_estimated: bool = False  # no usage came: counted by the proxy
    output: Any = None
    deployment: str | None = None  # routed: the deployment that served, and the model it served
    served_model: str | None = None
    served_header: str | None = None
    renamed_to: str | None = None  # routed to a fallback: the model name its answer shows (the one asked for)
    asked_whole: bool = False  # a stream that ended before its first event, asked again whole
    kept_alive: bool = False  # keepalives run for this stream (routed: around all attempts, not per attempt)
    param_retry: bool = False  # sent again without a parameter the upstream refused
    calls: CallBudget | None = None  # the upstream calls it may still cost (MAX_UPSTREAM_CALLS), once it made one
    client_left: bool = False  # the client closed its connection before the answer's end
    refused: str | None = None  # an error the proxy answered: why (rate, budget, auth, model, ...: observe/refusals.py)
    facts: AnswerFacts | None = None  # TRACING on: what the upstream's answer said of itself (id, model, finish reasons)
    price_source: PriceSource | None = None  # how the deployment that answered is priced (its exchange's)
    cost: Cost | None = None  # what the call cost, priced once as it ended (None: no usage to price)
    used: Used | None = None  # the meter's one reading of the answer (tokens, cost) that every record takes
    relayed: bool = False  # the answer is relayed as it comes: the stream observers were handed its start
    observed: bool = False


class Call:
    """One request: its three phases, and the record of its start the observers read (call_records.py)."""

    __slots__ = ("client", "plan", "planned", "outcome", "start")

    def __init__(self, client: ClientRequest, plan: Plan) -> None:
        self.client = client
        self.plan = plan
        self.planned = NOT_PLANNED  # the sequence's plan step makes the attempt's (planning.py)
        self.outcome = Outcome()
        self.start: object = None  # call_records.py's CallStart, made as the call is sent (read by start_of)

    @classmethod
    def of(cls, kind: str, method: str, path: str, query: str = "", headers: dict[str, str] | None = None,
           request_id: str = "", request: Request | None = None, trace: Trace | None = None, **plan: Any) -> "Call":
        """A call whose client request and plan agree on the route (every door's start, and the calls the
        proxy makes itself, such as model listings and probes)."""
        return cls(ClientRequest(method, path, request_id, request, trace=trace),
                   Plan(kind, path, query, headers if headers is not None else {}, **plan))

    @classmethod
    def of_request(cls, req: Request, kind: str, path: str, trace: Trace | None = None) -> "Call":
        """A call for a request the door has just taken (its route not known yet: `kind` and `path` say so)."""
        return cls.of(kind, req.method, path, "", req.headers, req.request_id, req, trace)

    @property
    def request_id(self) -> str:
        return self.client.request_id

    @property
    def server_write(self) -> Callable[[], Any] | None:
        """The server's write() for this request once its answer started (None in-process)."""
        request = self.client.request
        return request.server_write if request is not None else None
