"""OpenTelemetry traces of every request (TRACING; docs/tracing.md): a SERVER span per client request and a
CLIENT span per upstream attempt, with the GenAI semantic conventions' attributes (observe/genai_attributes.py),
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

The SDK (a TracerProvider whose BatchSpanProcessor hands spans to the OTLP/HTTP exporter in the background; the
OTEL_* variables configure them) is started once per process, when the worker builds its app: after Gunicorn's
fork and gevent's patching. The master never imports this module (serve/build.py imports it when tracing is on);
`shutdown` (Gunicorn's worker_exit) sends what is still queued.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, cast
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags,
                                 get_current_span, set_span_in_context)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from argoproxy.config.routing_settings import entry_url
from argoproxy.config.settings import Settings
from argoproxy.errors import ProxyError
from argoproxy.observe import genai_attributes as genai
from argoproxy.per_process import PerProcess
from argoproxy.pipeline.call import Call
from argoproxy.redaction import Secrets
from argoproxy.upstream.client import TRANSPORT_ERRORS, transport_error
from argoproxy.upstream.trace_context import client_value, with_context
from argoproxy.upstream.wire import UpstreamRequest, describe_host

# Routes of the proxy's own that are not traced: probes and scrapes, many a minute, say nothing of the traffic.
UNTRACED = frozenset({"root", "health", "metrics", "ui", "ui_data"})
W3C = TraceContextTextMapPropagator()
UNSET, ERROR = Status(StatusCode.UNSET), Status(StatusCode.ERROR)
SERVERS_KEPT = 1024  # upstream URLs whose host, port and provider are kept


class Sdk(PerProcess):
    """This process's TracerProvider (its sampler, id generator and resource, from the OTEL_* variables) and the
    batch processor that exports its spans (made again in a process forked after it)."""

    # The exporter's class: the SDK's OTLP/HTTP one, or the fast path's (serve/build.py hands it: FAST_PATH=on)
    exporter: Callable[[], SpanExporter] = OTLPSpanExporter

    def __init__(self) -> None:
        super().__init__()
        self.provider = TracerProvider(resource=service_resource())
        self.processor = BatchSpanProcessor(self.exporter())
        self.provider.add_span_processor(self.processor)
        self.scope = InstrumentationScope("cot_proxy")


def service_resource() -> Resource:
    """The SDK's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), named cot_proxy unless they name it."""
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return Resource.create({} if named else {SERVICE_NAME: "cot_proxy"})


def shutdown(worker: object = None) -> None:
    """Gunicorn's worker_exit: the spans still queued are sent before the worker ends."""
    sdk = Sdk._instance
    if isinstance(sdk, Sdk) and sdk.pid == os.getpid():
        sdk.provider.shutdown()


class Record:
    """A span being made: its identity from its start (its context goes upstream before it ends), the rest as it
    ends, when it becomes the SDK's ReadableSpan."""

    __slots__ = ("name", "context", "parent", "kind", "start", "attributes", "status")

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind, start: int,
                 attributes: dict[str, Any]) -> None:
        self.name, self.context, self.parent, self.kind, self.start = name, context, parent, kind, start
        self.attributes = attributes
        self.status = UNSET


class CallTrace:
    """One request's spans: its SERVER span (an INTERNAL one for a background run) and the CLIENT span of its
    attempt in flight."""

    __slots__ = ("tracing", "kind", "parent", "server", "client", "url", "refused", "ended")

    def __init__(self, tracing: Tracing, kind: SpanKind = SpanKind.SERVER, parent: SpanContext | None = None) -> None:
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
        return CallTrace(self.tracing, SpanKind.INTERNAL, self.tracing.server_span(call, self).context)


class Tracing:
    """The worker's tracer: the door's `begin`, the upstream client's attempt hooks, and the observer. Spans are
    made as the SDK's ReadableSpan once they end and handed to its batch processor; their ids, sampling and
    flags are decided as the SDK's tracer decides them (a request's spans are sampled together: each of the
    SDK's samplers decides a local child as its parent)."""

    def __init__(self, settings: Settings, secrets: Secrets, exporter: Callable[[], SpanExporter] | None = None) -> None:
        if exporter is not None:
            Sdk.exporter = exporter
        sdk = Sdk.get()
        provider = sdk.provider
        self.processor, self.scope, self.resource = sdk.processor, sdk.scope, provider.resource
        self.sampler, self.ids = provider.sampler, provider.id_generator
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
        self.servers: dict[str, tuple[str, int, str]] = {}  # by upstream URL (server_of)

    def begin(self) -> CallTrace:
        return CallTrace(self)

    # ------------------------------------------------------------ spans
    def server_span(self, call: Call, trace: CallTrace) -> Record:
        """The request's span, started now if it was not yet, dated from the request's arrival."""
        if trace.server is None:
            parent = trace.parent if trace.kind is not SpanKind.SERVER else self.client_context(call)
            plan, client = call.plan, call.client
            name = genai.span_name(plan.kind, plan.model, client.method, client.path)
            if trace.kind is SpanKind.INTERNAL:
                name = f"background {name}"
            trace.server = self.started(name, parent, trace.kind, wall_ns(client.started), {})
        return trace.server

    def started(self, name: str, parent: SpanContext | None, kind: SpanKind, start: int,
                attributes: dict[str, Any]) -> Record:
        """A span's identity, as the SDK's tracer makes it: the parent's trace or a new one, the sampler's
        decision (a new trace's) or the parent's (a span of this proxy's), the random-trace-id flag."""
        if parent is not None and parent.is_valid and not parent.is_remote:  # a span of this request's
            context = SpanContext(parent.trace_id, self.ids.generate_span_id(), False, parent.trace_flags,
                                  parent.trace_state)
            return Record(name, context, parent, kind, start, attributes)
        if parent is None or not parent.is_valid:
            parent, trace_id, random = None, self.ids.generate_trace_id(), self.ids.is_trace_id_random()
        else:
            trace_id, random = parent.trace_id, parent.trace_flags.random_trace_id
        if self.keeps_all and (parent is None or parent.trace_flags.sampled or self.keeps_all == "always_on"):
            sampled, state = True, parent.trace_state if parent is not None else None  # the sampler's answer, known
        else:
            outer = set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
            decision = self.sampler.should_sample(outer, trace_id, name, kind, None, None)
            sampled, state = decision.decision.is_sampled(), decision.trace_state
            attributes = {**dict(decision.attributes or {}), **attributes}
        flags = (TraceFlags.SAMPLED if sampled else 0) | (TraceFlags.RANDOM_TRACE_ID if random else 0)
        context = SpanContext(trace_id, self.ids.generate_span_id(), False, TraceFlags(flags), state)
        return Record(name, context, parent, kind, start, attributes)

    def ended(self, record: Record, end: int | None = None) -> None:
        """A span ends: to the batch processor, sampled."""
        ctx = record.context
        if ctx.trace_flags.sampled:
            self.processor.on_end(ReadableSpan(record.name, ctx, record.parent, self.resource, record.attributes,
                                               kind=record.kind, status=record.status, start_time=record.start,
                                               end_time=end or time.time_ns(), instrumentation_scope=self.scope))

    @staticmethod
    def client_context(call: Call) -> SpanContext | None:
        """The client's trace context (W3C traceparent and tracestate), continued; None: a trace of its own."""
        request = call.client.request
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
        server = self.server_span(call, trace)
        plan = call.plan
        host, port, provider = self.server_of(req.url)
        model = plan.upstream_model or plan.model
        attributes: dict[str, Any] = {"server.address": host, "server.port": port, "http.request.method": req.method,
                                      "gen_ai.provider.name": provider}
        op = genai.operation(plan.kind)
        if op is not None:
            attributes["gen_ai.operation.name"] = op
        if model:
            attributes["gen_ai.request.model"] = model
        trace.url = req.url
        record = trace.client = self.started(genai.span_name(plan.kind, model, req.method, plan.kind),
                                             server.context, SpanKind.CLIENT, time.time_ns(), attributes)
        ctx = record.context
        parent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        return dataclasses.replace(req, headers=with_context(req.headers, parent, ctx.trace_state.to_header()))

    def server_of(self, url: str) -> tuple[str, int, str]:
        """The host, port and gen_ai.provider.name of an upstream URL (kept: a worker's URLs are few)."""
        found = self.servers.get(url)
        if found is None:
            where = urlsplit(url)
            host, port = where.hostname or "", where.port or (443 if where.scheme == "https" else 80)
            found = (host, port, self.providers.get(f"{host}:{port}", self.provider))
            if len(self.servers) >= SERVERS_KEPT:  # a forwarded path's URL holds the client's path: bounded
                self.servers.clear()
            self.servers[url] = found
        return found

    def answered(self, call: Any, status: int) -> None:
        trace: CallTrace | None = call.client.trace
        record = trace.client if trace is not None else None
        if trace is None or record is None:
            return
        record.attributes["http.response.status_code"] = status
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
        record.attributes["error.type"] = attempt_error(error, trace.url)
        record.status = Status(StatusCode.ERROR, type(error).__name__)
        self.ended(record)

    def end_attempt(self, trace: CallTrace, attributes: dict[str, Any] | None = None) -> None:
        record, trace.client, trace.refused = trace.client, None, False
        if record is not None:
            if attributes:
                record.attributes.update(attributes)
            self.ended(record)

    # ------------------------------------------------------------ the observer
    def observe(self, call: Call) -> None:
        """The call ended: its spans end, with what it asked and what answered."""
        trace = cast(CallTrace | None, call.client.trace)  # the door gave it this tracer's
        if trace is None or trace.ended:
            return
        trace.ended = True
        if trace.server is None and call.plan.kind in UNTRACED:
            return
        server = self.server_span(call, trace)
        out = call.outcome
        answered = {**genai.response_attributes(out.facts), **genai.usage_attributes(out.usage)}
        if out.usage_estimated:
            answered["cot_proxy.usage.estimated"] = True
        error = genai.error_type(out.status, out.output, out.client_left)
        if trace.client is not None:
            last = dict(answered)
            if error is not None and out.status >= 500 and not trace.refused:
                last["error.type"] = error  # a stream that broke after its head
            self.end_attempt(trace, last)
        server.attributes.update(self.call_attributes(call, answered, error))
        if out.status >= 500:
            server.status = ERROR
        server.name = genai.span_name(call.plan.kind, call.plan.model, call.client.method, call.client.path)
        if trace.kind is SpanKind.INTERNAL:
            server.name = f"background {server.name}"
        self.ended(server)
        trace.server = None

    def call_attributes(self, call: Call, answered: dict[str, Any], error: str | None) -> dict[str, Any]:
        plan, out, client = call.plan, call.outcome, call.client
        attributes: dict[str, Any] = {"http.request.method": client.method, "url.path": "/" + client.path,
                                      "http.response.status_code": out.status, "cot_proxy.request_id": client.request_id,
                                      "cot_proxy.api": client.front,
                                      "gen_ai.provider.name": self.providers.get(out.deployment or "", self.provider)}
        op = genai.operation(plan.kind)
        if op is not None:
            attributes["gen_ai.operation.name"] = op
            attributes.update(genai.request_attributes(plan.body))
        if plan.model:
            attributes["gen_ai.request.model"] = plan.model
        attributes.update(answered)
        if error is not None:
            attributes["error.type"] = error
        if plan.key_name:
            attributes["cot_proxy.key.name"] = plan.key_name  # the key's name, never the key
        if out.deployment:
            attributes["cot_proxy.served_by"] = out.deployment
        if out.calls is not None:
            attributes["cot_proxy.upstream.calls"] = out.calls.used
        attributes.update(cost_attributes(call))
        if self.content and op is not None:
            attributes.update(self.content_attributes(call))
        return attributes

    def content_attributes(self, call: Call) -> dict[str, str]:
        """TRACING_CONTENT: the messages asked and answered, configured secrets replaced."""
        out = {}
        asked = genai.input_messages(call.plan.body, call.plan.kind)
        if asked is not None:
            out["gen_ai.input.messages"] = self.secrets.text(asked)
        answered = genai.output_messages(call.outcome.facts)
        if answered is not None:
            out["gen_ai.output.messages"] = self.secrets.text(answered)
        return out


def attempt_error(error: BaseException, url: str) -> str:
    """error.type of an attempt that got no answer: the code the client would read for it (the same on both
    transports: upstream_connection_refused, upstream_timeout...), else the exception's class."""
    if isinstance(error, ProxyError) and error.code:
        return error.code
    if isinstance(error, TRANSPORT_ERRORS):
        return transport_error(error, url, (0.0, 0.0)).code or "upstream_error"
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def cost_attributes(call: Call) -> dict[str, Any]:
    """The call's cost in dollars, where the proxy prices calls (argoproxy/prices/, Outcome.cost: None until it
    has landed, then for each priced call); an unpriced model is flagged, never recorded as free."""
    cost = getattr(call.outcome, "cost", None)
    if cost is None:
        return {}
    if not getattr(cost, "priced", True):
        return {"cot_proxy.cost.priced": False}
    return {"cot_proxy.cost.usd": float(cost.dollars)}


def wall_ns(started: float) -> int:
    """A time.perf_counter() moment as the epoch nanoseconds a span is dated with."""
    return time.time_ns() - int((time.perf_counter() - started) * 1e9)
