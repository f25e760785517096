"""OpenTelemetry traces of every request (TRACING; docs/tracing.md): a SERVER span per client request and a
CLIENT span per upstream attempt, with the GenAI semantic conventions' attributes (tracing/genai_attributes.py),
sent over OTLP/HTTP.

Where the spans come from:
- The door gives each request a CallTrace (`Tracing.begin`), carried by its ClientRequest.
- Each attempt upstream is a CLIENT span (`attempt`: the upstream client's tracer, upstream/client.py), so a retry,
  another deployment or fallback of routing's, a request sent again without a refused parameter each have their
  own. It starts under the request's SERVER span, and the request goes with its context as `traceparent`.
- The SERVER span starts at the first attempt (dated from the request's arrival), or when the call ends when it
  made none; it continues the client's `traceparent` when one came. The observer (`observe`) ends it with the
  call's attributes, and the last attempt's CLIENT span with what answered (the answer's id, model, finish
  reasons and usage: at a stream's end, so the span lasts as long as the answer did).
- A background response's run (state/background.py) has a span of its own under its request's (`detached`).

A span's attributes are in two parts: those every request of its kind shares (the route, the API, the operation,
the model, the deployment, the key's name: `Fixed`, made once and kept) and its own (ids, status, usage,
parameters). The SDK's spans hold both; the fast path's encoder writes the shared part's bytes once
(fastpath/otlp.py).

The SDK (a TracerProvider whose BatchSpanProcessor hands spans to the OTLP/HTTP exporter in the background; the
OTEL_* variables configure them) is started once per process, when the worker builds its app: after Gunicorn's
fork and gevent's patching. An ended span goes to the batch processor as the SDK's ReadableSpan, or with
FAST_PATH=on as the Record itself, which the fast path's exporter writes (`hand`). The master never imports this module (serve/build.py imports it when tracing is on);
`shutdown` (Gunicorn's worker_exit) sends what is still queued.
"""

from __future__ import annotations

import logging
import os
import random
import time
from functools import partial
from typing import Any, Callable, ClassVar
from urllib.parse import urlsplit

import msgspec
import requests

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState,
                                 get_current_span, set_span_in_context)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from argoproxy.config.routing_settings import entry_url
from argoproxy.config.settings import Settings
from argoproxy.config.tracing_settings import BATCH_DEFAULT, QUEUE_DEFAULT
from argoproxy.errors import ProxyError
from argoproxy.tracing import genai_attributes as genai
from argoproxy.per_process import PerProcess
from argoproxy.pipeline.call import Call, ClientRequest
from argoproxy.pipeline.call_records import CallEnd, CallStart, start_of
from argoproxy.redaction import Secrets
from argoproxy.upstream.answer_bounds import collector_session
from argoproxy.upstream.failures import UpstreamFailure
from argoproxy.upstream.trace_context import client_value, with_context
from argoproxy.upstream.wire import UpstreamRequest, describe_host

def batch_sizes() -> tuple[int, int]:
    """OTEL_BSP_MAX_QUEUE_SIZE and OTEL_BSP_MAX_EXPORT_BATCH_SIZE, else the proxy's defaults, the batch at most the
    queue (start-up refused a bad one: config/tracing_settings.py)."""
    most = int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") or QUEUE_DEFAULT)
    return most, int(os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") or min(BATCH_DEFAULT, most))


# Routes of the proxy's own that are not traced: probes and scrapes, many a minute, say nothing of the traffic.
UNTRACED = frozenset({"root", "health", "metrics", "ui", "ui_data"})
W3C = TraceContextTextMapPropagator()
UNSET, ERROR = Status(StatusCode.UNSET), Status(StatusCode.ERROR)
SAMPLED, RANDOM_TRACE_ID = int(TraceFlags.SAMPLED), int(TraceFlags.RANDOM_TRACE_ID)
# An enum member's attribute access and hash are Python calls (0.15 µs each): the kinds are read once
SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
FLAGS_HEX = [f"-{n:02x}" for n in range(256)]  # a traceparent's last part, by the flags' byte
KINDS_KEPT = 1024  # the shared attributes kept, by upstream URL or by route (clients' paths and models: bounded)
NAME_KEPT = 1024  # kept only for a model's name this long at most: a client's, of any length, is in the key
STATUSES_KEPT = 64  # an upstream's statuses kept with its shared attributes (an upstream's: any three digits)
# OpenTelemetry's propagator warns of a client's trace context it cannot read (a tracestate member it refuses,
# written whole; an overlong traceparent or tracestate): a client, before its key is checked, wrote a line of its
# own into the log with each request. The context is left out all the same, as W3C says, without a word.
CLIENT_TEXT_LOGGERS = ("opentelemetry.trace.span", "opentelemetry.trace.propagation.tracecontext")


class Sdk(PerProcess):
    """This process's TracerProvider (its sampler, id generator and resource, from the OTEL_* variables) and the
    batch processor that exports its spans (made again in a process forked after it)."""

    # The batch processor and its exporter: the SDK's, with its OTLP/HTTP exporter; or the fast path's, which
    # takes the records themselves (`records_to`; serve/build.py hands it: FAST_PATH=on). Either reads the
    # collector's answers up to MAX_COLLECTOR_ANSWER (upstream/answer_bounds.py)
    batching: Callable[[int, int], SpanProcessor] = staticmethod(lambda most, size: BatchSpanProcessor(
        OTLPSpanExporter(session=collector_session(requests.Session()).get("session")), max_queue_size=most, max_export_batch_size=size))

    def __init__(self) -> None:
        super().__init__()
        for name in CLIENT_TEXT_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        self.provider = TracerProvider(resource=service_resource())
        self.processor = self.batching(*batch_sizes())
        self.provider.add_span_processor(self.processor)
        self.scope = InstrumentationScope("cot_proxy")


def service_resource() -> Resource:
    """The SDK's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), named cot_proxy unless they name it."""
    # An entry's key as the SDK reads it: spaces around it are its, another key ending in service.name is not it.
    entries = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    named = os.environ.get("OTEL_SERVICE_NAME") or any(e.partition("=")[0].strip() == SERVICE_NAME for e in entries)
    return Resource.create({} if named else {SERVICE_NAME: "cot_proxy"})


def shutdown(worker: object = None) -> None:
    """Gunicorn's worker_exit: the spans still queued are sent before the worker ends."""
    sdk = Sdk._instance
    if isinstance(sdk, Sdk) and sdk.pid == os.getpid():
        sdk.provider.shutdown()


class Fixed:
    """Attributes every span of a kind shares (an upstream's address and provider, a route's operation and model),
    made once and never changed; `encoded`: the fast path encoder's (the span's name and kind they were written
    with, their bytes)."""

    __slots__ = ("attributes", "encoded", "statuses")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.encoded: tuple[str, SpanKind, bytes] | None = None
        self.statuses: dict[int, Fixed] = {}

    def answered(self, status: int) -> Fixed:
        """These and the status an attempt was answered with (an upstream's few: made once each, and shared)."""
        found = self.statuses.get(status)
        if found is None:
            found = Fixed({**self.attributes, "http.response.status_code": status})
            if len(self.statuses) < STATUSES_KEPT:
                self.statuses[status] = found
        return found


NO_FIXED = Fixed({})


class Record(msgspec.Struct, gc=False):
    """A span being made: its identity from its start (its trace context goes upstream before it ends), the rest as
    it ends (`end`, its status, its own attributes beside the shared ones). Its ids are kept as numbers (the SDK's
    SpanContext is made only where one is asked for: `context`). A request's span holds its id and parameters
    apart from its other attributes, and what answered is the same Answered on both its spans: the fast path's
    encoder writes each part as it is (fastpath/otlp.py), never a dictionary of them all. A msgspec Struct: made
    in C (two a request), and never tracked by the garbage collector (a record's references never lead back to
    it: a parent is an older record or the client's context)."""

    name: str
    trace_id: int
    span_id: int
    flags: int
    state: TraceState | None
    parent: SpanContext | Record | None
    kind: SpanKind
    start: int
    attributes: dict[str, Any]
    fixed: Fixed = NO_FIXED
    end: int = 0
    request_id: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    cost: float | bool | None = None  # the request's in dollars, False: its model has no price
    # What answered: the same on a call's SERVER and last CLIENT span (bytes: as the processor wrote it)
    answer: genai.Answered | bytes | None = None
    status: Status = UNSET
    is_remote: ClassVar[bool] = False  # as a parent: a span of this proxy's

    @property
    def context(self) -> SpanContext:
        return SpanContext(self.trace_id, self.span_id, False, TraceFlags(self.flags), self.state)

    def all_attributes(self) -> dict[str, Any]:
        """The shared attributes, the request's id and parameters, its other own ones, what answered (never the
        same key in two of them): in the order the fast path's encoder writes them."""
        out = {**self.fixed.attributes}
        if self.request_id is not None:
            out["cot_proxy.request_id"] = self.request_id
        out.update(self.params)
        out.update(self.attributes)
        if self.cost is not None:
            out["cot_proxy.cost.usd" if self.cost is not False else "cot_proxy.cost.priced"] = self.cost
        if isinstance(self.answer, genai.Answered):  # (bytes only where the fast path's encoder writes the span)
            out.update(self.answer.attributes())
        return out


def readable(record: Record, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """A Record as the SDK's span, its texts as UTF-8 carries them (`utf8`)."""
    parent = record.parent
    attributes = {key: utf8(value) for key, value in record.all_attributes().items()}
    return ReadableSpan(utf8(record.name), record.context, parent.context if isinstance(parent, Record) else parent,
                        resource, attributes,
                        kind=record.kind, status=record.status, start_time=record.start, end_time=record.end,
                        instrumentation_scope=scope)


def utf8(value: Any) -> Any:
    """A text (or a sequence of them) with each lone surrogate, which JSON lets a client's or an upstream's text hold
    and UTF-8 cannot, as "?": what the fast path's encoder writes. The SDK's encoder fails on one, and the whole
    batch, other requests' spans with it, is lost."""
    if value.__class__ is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    elif value.__class__ in (tuple, list):
        return tuple(map(utf8, value))  # as the SDK keeps a sequence
    return value


class CallTrace:
    """One request's spans: its SERVER span (an INTERNAL one for a background run) and the CLIENT span of its
    attempt in flight."""

    __slots__ = ("tracing", "kind", "parent", "server", "client", "url", "refused", "ended")

    def __init__(self, tracing: Tracing, kind: SpanKind = SERVER, parent: Record | None = None) -> None:
        self.tracing = tracing
        self.kind = kind
        self.parent = parent  # None: the client's traceparent, if one came
        self.server: Record | None = None
        self.client: Record | None = None
        self.url = ""  # where the attempt in flight went
        self.refused = False  # the attempt in flight was answered with an error status
        self.ended = False

    def detached(self, call: Call) -> CallTrace:
        """A background run of this request: its own span, under the request's."""
        return CallTrace(self.tracing, INTERNAL, self.tracing.server_span(start_of(call), self))


class Tracing:
    """The worker's tracer: the door's `begin`, the upstream client's attempt hooks, and the observer. Spans are
    made as records, handed to the SDK's batch processor once they end; their ids, sampling and flags are decided
    as the SDK's tracer decides them (a request's spans are sampled together: each of the SDK's samplers decides
    a local child as its parent)."""

    def __init__(self, settings: Settings, secrets: Secrets,
                 batching: Callable[[int, int], SpanProcessor] | None = None) -> None:
        if batching is not None:
            Sdk.batching = staticmethod(batching)
        sdk = Sdk.get()
        provider = sdk.provider
        self.processor, self.scope, self.resource = sdk.processor, sdk.scope, provider.resource
        self.sampler, self.ids = provider.sampler, provider.id_generator
        self.span_id, self.trace_id = self.ids.generate_span_id, self.ids.generate_trace_id
        if type(self.ids) is RandomIdGenerator:  # the default: its random bits drawn without its Python frames
            self.span_id, self.trace_id = partial(random.getrandbits, 64), partial(random.getrandbits, 128)
        self.random_ids = self.ids.is_trace_id_random()  # a property of the generator: asked once
        self.new_flags = SAMPLED | (RANDOM_TRACE_ID if self.random_ids else 0)  # a new trace's, kept
        # A processor that takes records (the fast path's) is handed them as they are; else the SDK's spans
        records_to = getattr(self.processor, "records_to", None)
        self.hand: Callable[[Record], None] = (records_to(self.resource, self.scope) if records_to is not None
                                               else self.handed_readable)
        # What answered, as such a processor writes it (bytes, on both spans), else an Answered; and where it takes
        # a call's last attempt and request span together
        self.answer_of: Callable[..., bytes] | None = getattr(self.processor, "answer_of", None)
        self.hand_call: Callable[[Record, Record, Any], None] | None = getattr(self.processor, "on_call", None)
        # The default sampler (parentbased_always_on) and always_on keep every new trace (and the first, every
        # sampled parent's): their answer is known without asking (2 µs a request)
        named = os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
        self.keeps_all = named if named in ("parentbased_always_on", "always_on") else ""
        self.content = settings.tracing_content
        self.secrets = secrets
        # gen_ai.provider.name by where a request goes (routing's deployments), else the top-level backend's
        self.provider = genai.provider_name(settings.backend)
        self.providers = {describe_host(entry_url(settings, e)): genai.provider_name(e.backend)
                          for e in settings.models}
        # Span names and shared attributes, by upstream call (upstream_kind) and by route (route_kind)
        self.upstreams: dict[tuple[Any, ...], tuple[str, Fixed]] = {}
        self.routes: dict[tuple[Any, ...], tuple[str, Fixed]] = {}

    def begin(self) -> CallTrace:
        return CallTrace(self)

    # ------------------------------------------------------------ spans
    def server_span(self, start: CallStart, trace: CallTrace) -> Record:
        """The request's span, started now if it was not yet, dated from the request's arrival."""
        if trace.server is None:
            client = start.client
            if trace.kind is SERVER and self.keeps_all:  # a client's request: a new trace, kept, unless it sent one
                request = client.request
                if request is None or ("Traceparent" not in request.headers and "traceparent" not in request.headers):
                    trace.server = self.started("", None, SERVER, wall_ns(client.started), {})
                    return trace.server
            parent = trace.parent if trace.kind is not SERVER else self.client_context(client)
            name = ""  # named as it ends (route_kind); a sampler that is asked reads it
            if not self.keeps_all:
                name = genai.span_name(start.kind, start.model, client.method, client.path)
                if trace.kind is INTERNAL:
                    name = f"background {name}"
            trace.server = self.started(name, parent, trace.kind, wall_ns(client.started), {})
        return trace.server

    def started(self, name: str, parent: SpanContext | Record | None, kind: SpanKind, start: int,
                attributes: dict[str, Any], fixed: Fixed = NO_FIXED) -> Record:
        """A span's identity, as the SDK's tracer makes it: the parent's trace or a new one, the sampler's
        decision (a new trace's) or the parent's (a span of this proxy's), the random-trace-id flag."""
        if isinstance(parent, Record):  # a span of this request's
            return Record(name, parent.trace_id, self.span_id() or self.ids.generate_span_id(), parent.flags,
                          parent.state, parent, kind, start, attributes, fixed)
        if parent is None and self.keeps_all:  # a new trace, kept: the common case
            return Record(name, self.trace_id() or self.ids.generate_trace_id(),
                          self.span_id() or self.ids.generate_span_id(), self.new_flags, None, None, kind, start,
                          attributes, fixed)
        if parent is None or not parent.is_valid:
            parent, trace_id, random_id = None, self.trace_id() or self.ids.generate_trace_id(), self.random_ids
        else:
            trace_id, random_id = parent.trace_id, parent.trace_flags.random_trace_id
        if self.keeps_all and (parent is None or parent.trace_flags.sampled or self.keeps_all == "always_on"):
            sampled, state = True, parent.trace_state if parent is not None else None  # the sampler's answer, known
        else:
            outer = set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
            decision = self.sampler.should_sample(outer, trace_id, name, kind, None, None)
            sampled, state = decision.decision.is_sampled(), decision.trace_state  # type: ignore[no-untyped-call]
            attributes = {**dict(decision.attributes or {}), **attributes}
        flags = (SAMPLED if sampled else 0) | (RANDOM_TRACE_ID if random_id else 0)
        return Record(name, trace_id, self.span_id() or self.ids.generate_span_id(), flags, state, parent, kind,
                      start, attributes, fixed)

    def ended(self, record: Record, end: int | None = None) -> None:
        """A span ends: to the batch processor, sampled."""
        record.end = end or time.time_ns()
        if record.flags & SAMPLED:
            self.hand(record)

    def handed_readable(self, record: Record) -> None:
        self.processor.on_end(readable(record, self.resource, self.scope))

    def inner_span(self, call: Call, name: str, attributes: dict[str, Any], start: int,
                   error: str | None = None) -> None:
        """A span of a request's own work, ended now: INTERNAL, under the request's SERVER span (so in the client's
        trace when it sent a traceparent), `error` its error.type and ERROR status. A capability's hook
        (argoproxy/mcp/recording.py's execute_tool spans); nothing when the request is not traced or its spans ended."""
        trace: CallTrace | None = call.client.trace  # type: ignore[assignment]  # the door gave it this tracer's
        if trace is None or trace.ended:
            return
        server = self.server_span(start_of(call), trace)
        record = Record(name, server.trace_id, self.span_id() or self.ids.generate_span_id(), server.flags,
                        server.state, server, INTERNAL, start, attributes)
        if error is not None:
            record.attributes["error.type"] = error
            record.status = ERROR
        self.ended(record)

    @staticmethod
    def client_context(client: ClientRequest) -> SpanContext | None:
        """The client's trace context (W3C traceparent and tracestate), continued; None: a trace of its own."""
        request = client.request
        parent = client_value(request.headers, "traceparent") if request is not None else None
        if parent is None or request is None:
            return None
        carrier = {"traceparent": parent}
        state = client_value(request.headers, "tracestate")
        if state is not None:
            carrier["tracestate"] = state
        context: SpanContext = get_current_span(W3C.extract(carrier)).get_span_context()
        return context

    # ------------------------------------------------------------ attempts (upstream/client.py's AttemptTracer)
    def attempt(self, call: Any, req: UpstreamRequest) -> UpstreamRequest:
        trace: CallTrace | None = call.client.trace
        if trace is None:
            return req
        if trace.client is not None:  # the previous attempt is over: this one retries or fails over
            self.end_attempt(trace)
        start = start_of(call)  # the plan as this attempt sends it (exchange.py made it)
        server = self.server_span(start, trace)
        name, fixed = self.upstream_kind((req.url, req.method, start.kind, start.upstream_model or start.model))
        trace.url = req.url
        record = trace.client = Record(name, server.trace_id, self.span_id() or self.ids.generate_span_id(),
                                       server.flags, server.state, server, CLIENT, time.time_ns(), {}, fixed)
        parent = "00-%032x-%016x%s" % (record.trace_id, record.span_id, FLAGS_HEX[record.flags])  # no format spec
        return req.with_headers(with_context(req.headers, parent, record.state.to_header() if record.state else ""))

    def upstream_kind(self, key: tuple[str, str, str, str | None]) -> tuple[str, Fixed]:
        """A CLIENT span's name and shared attributes, by the attempt's URL, method, kind of call and model as sent:
        the upstream's host, port and gen_ai.provider.name, the method, the operation and the model (kept: a
        worker's upstreams and models are few)."""
        found = self.upstreams.get(key)
        if found is None:
            url, method, kind, model = key
            where = urlsplit(url)
            host, port = where.hostname or "", where.port or (443 if where.scheme == "https" else 80)
            attributes: dict[str, Any] = {"server.address": host, "server.port": port, "http.request.method": method,
                                          "gen_ai.provider.name": self.providers.get(f"{host}:{port}", self.provider)}
            op = genai.operation(kind)
            if op is not None:
                attributes["gen_ai.operation.name"] = op
            if model:
                attributes["gen_ai.request.model"] = genai.bounded(model)
            found = (genai.span_name(kind, model, method, kind), Fixed(attributes))
            if len(model or "") <= NAME_KEPT:  # the key holds the model's whole name
                if len(self.upstreams) >= KINDS_KEPT:  # a forwarded path's URL holds the client's path: bounded
                    self.upstreams.clear()
                self.upstreams[key] = found
        return found

    def answered(self, call: Any, status: int) -> None:
        trace: CallTrace | None = call.client.trace
        if trace is None or trace.client is None:
            return
        record = trace.client
        record.fixed = record.fixed.answered(status)  # an upstream's few statuses: shared
        if status >= 400:
            trace.refused = True
            record.attributes["error.type"] = str(status)
            record.status = ERROR

    def failed(self, call: Any, error: BaseException) -> None:
        trace: CallTrace | None = call.client.trace
        record = trace.client if trace is not None else None
        if trace is None or record is None:
            return
        trace.client = None
        record.attributes["error.type"] = attempt_error(error)
        record.status = Status(StatusCode.ERROR, type(error).__name__)
        self.ended(record)

    def end_attempt(self, trace: CallTrace, answer: genai.Answered | bytes | None = None,
                    error: str | None = None) -> None:
        record, trace.client, trace.refused = trace.client, None, False
        if record is not None:
            record.answer = answer
            if error is not None:
                record.attributes["error.type"] = error
            self.ended(record)

    # ------------------------------------------------------------ the observer
    def observe(self, start: CallStart, out: CallEnd) -> None:
        """The call ended: its spans end, with what it asked and what answered."""
        trace: CallTrace | None = start.client.trace  # type: ignore[assignment]  # the door gave it this tracer's
        if trace is None or trace.ended:
            return
        trace.ended = True
        if trace.server is None and start.kind in UNTRACED:
            return
        server = self.server_span(start, trace)
        used = out.used  # the meter's reading of the answer (argoproxy/meter/used.py), every record's
        answered = genai.answered(out.facts, out.usage, out.usage_estimated, used) if self.answer_of is None else \
            self.answer_of(out.facts, out.usage, out.usage_estimated,
                           genai.answered if used is None else metered(used))
        error = genai.error_type(out.status, out.output, out.client_left) if out.status >= 400 or out.client_left \
            else None
        server.name, server.fixed = self.route_kind(start, out, trace.kind)
        self.call_attributes(start, out, server, error)
        if out.status >= 500:
            server.status = ERROR
        # Both spans end now (the last attempt's: as the answer it relayed did), handed as `ended` hands them, or
        # together to a processor that takes both (the fast path's)
        client, server.end = trace.client, time.time_ns()
        trace.server = None
        if client is not None:
            if error is not None and out.status >= 500 and not trace.refused:  # a stream that broke after its head
                client.attributes["error.type"] = error
            client.end = server.end
            trace.client, trace.refused = None, False
            if self.hand_call is not None:
                if server.flags & SAMPLED:  # (the client's flags are its server's)
                    self.hand_call(client, server, answered)
                return
            client.answer = answered
            if client.flags & SAMPLED:
                self.hand(client)
        server.answer = answered
        if server.flags & SAMPLED:
            self.hand(server)

    def route_kind(self, start: CallStart, out: CallEnd, kind: SpanKind) -> tuple[str, Fixed]:
        """The request's span name and shared attributes: the route, the API, the operation, the model asked for,
        the deployment that served, the key's name (never the key), the status answered and the upstream calls
        made (a few values each)."""
        client = start.client
        served, calls = out.deployment, out.upstream_calls
        key = (start.kind, start.model, client.method, client.path, client.front, served, start.key_name,
               kind is INTERNAL, out.status, calls)
        found = self.routes.get(key)
        if found is None:
            attributes: dict[str, Any] = {"http.request.method": client.method, "url.path": "/" + client.path,
                                          "cot_proxy.api": client.front, "http.response.status_code": out.status,
                                          "gen_ai.provider.name": self.providers.get(served or "", self.provider)}
            op = genai.operation(start.kind)
            if op is not None:
                attributes["gen_ai.operation.name"] = op
            if start.model:
                attributes["gen_ai.request.model"] = genai.bounded(start.model)
            if start.key_name:
                attributes["cot_proxy.key.name"] = start.key_name
            if served:
                attributes["cot_proxy.served_by"] = served
            if calls is not None:
                attributes["cot_proxy.upstream.calls"] = calls
            name = genai.span_name(start.kind, start.model, client.method, client.path)
            found = (f"background {name}" if kind is INTERNAL else name, Fixed(attributes))
            if len(start.model or "") <= NAME_KEPT:  # the key holds the model's whole name
                if len(self.routes) >= KINDS_KEPT:  # forwarded paths and models are the clients': bounded
                    self.routes.clear()
                self.routes[key] = found
        return found

    def call_attributes(self, start: CallStart, out: CallEnd, server: Record, error: str | None) -> None:
        """The request's own attributes, on its span: its id, its parameters, its error, its cost."""
        client = start.client
        server.request_id = client.request_id  # the proxy's own; the client's X-Request-ID beside it
        attributes = server.attributes
        if client.client_request_id:
            attributes["cot_proxy.client_request_id"] = client.client_request_id
        if client.session:  # the agent session (OpenTelemetry's session.id), on the span only: never a metric label
            attributes["session.id"] = client.session
        op = start.kind in genai.OPERATIONS
        if op:
            server.params = genai.request_parameters(start.body)
        if error is not None:
            attributes["error.type"] = error
        cost = out.cost
        if cost is not None:  # where the proxy prices calls: an unpriced model flagged, never recorded as free
            server.cost = cost.nanos / 1e9 if cost.priced else False
        asked = start.asked
        worst = asked.read_worst if asked is not None else None
        if worst is not None:  # the meter's worst case, as a limit reserved it and the fair queue weighed it
            attributes["cot_proxy.reservation.tokens"] = worst.tokens
            nanos = asked.read_nanos if asked is not None else None
            if nanos is not None:
                attributes["cot_proxy.reservation.usd"] = nanos / 1e9
        if self.content and op:
            attributes.update(self.content_attributes(start, out))

    def content_attributes(self, start: CallStart, end: CallEnd) -> dict[str, str]:
        """TRACING_CONTENT: the messages asked and answered, configured secrets replaced."""
        out = {}
        asked = genai.input_messages(start.body, start.kind)
        if asked is not None:
            out["gen_ai.input.messages"] = self.secrets.text(asked)
        answered = genai.output_messages(end.facts)
        if answered is not None:
            out["gen_ai.output.messages"] = self.secrets.text(answered)
        return out


def metered(used: Any) -> Callable[..., Any]:
    """genai_attributes.answered with the meter's reading of the answer (the fast path's encoder asks it for an
    answer it does not write itself)."""
    def general(facts: Any, usage: Any = None, estimated: bool = False) -> Any:
        return genai.answered(facts, usage, estimated, used)
    return general


def attempt_error(error: BaseException) -> str:
    """error.type of an attempt that got no answer: the code the client would read for it (the same on both
    transports: upstream_connection_refused, upstream_timeout...), else the exception's class."""
    if isinstance(error, ProxyError) and error.code:
        return error.code
    if isinstance(error, UpstreamFailure):
        return error.code
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def wall_ns(started: float) -> int:
    """A time.perf_counter() moment as the epoch nanoseconds a span is dated with."""
    return time.time_ns() - int((time.perf_counter() - started) * 1e9)
