"""Loaded by bench/run.py's "traced floor" proxy (on its PYTHONPATH), never by the product: the floor of tracing in
this stack, measured beside the product (docs/performance.md, "Tracing's floor").

In each worker, once tracing/tracer.py is imported, every Tracing made is given a tracer that does only what the
bench's request needs and nothing general: the trace's ids drawn, the attempt's traceparent sent upstream, and at
the call's end its two spans (the attempt's and the request's: ids, times, the shared attributes, the request's id,
parameters and cost, what answered) written from heads kept per kind of call, with the product's own encoder pieces
(fastpath/otlp.py), and queued to the product's batch processor, which exports them as it exports the product's.
No Record, no sampler, no client context, no retries, statuses or errors: a bound on what any rewrite of the
product's tracer could save, with the same wire bytes for the bench's requests. A call that made no attempt (a
probe, a refused request: never the bench's) has no spans. Each worker says on stderr that its tracer is the
floor's (the tests read it)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from typing import Any

_MODULE = "argoproxy.tracing.tracer"


def floor(tracing: Any) -> None:
    """`tracing`'s begin, attempt, answered and observe replaced by the floor's (instance attributes: the door, the
    upstream client and the observers list look them up on the instance)."""
    import random
    import struct
    import time

    from argoproxy.fastpath import otlp
    from argoproxy.tracing import genai_attributes as genai
    from argoproxy.pipeline.call_records import start_of
    from argoproxy.tracing.tracer import CLIENT, FLAGS_HEX, SERVER, Record, wall_ns

    bits, now, pack_ids, pack_times = random.getrandbits, time.time_ns, otlp._ids, otlp._times
    parent_id, short, half = otlp._parent_id, otlp._SHORT, (1 << 64) - 1
    ending = b"\x7a\x00\x85\x01" + struct.pack("<I", 0x100)  # an unset status, a local parent's flags
    waiting = tracing.processor.waiting
    heads: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
    parent_form = "00-%032x-%016x" + FLAGS_HEX[tracing.new_flags]  # the product's flags (sampled, random id)

    class Trace:
        __slots__ = ("trace_id", "server_id", "client_id", "start", "client_start", "upstream", "ended")

        def __init__(self) -> None:
            self.ended = False
            self.upstream: tuple[Any, ...] | None = None  # set by its attempt

    def begin() -> Trace:
        return Trace()

    def attempt(call: Any, req: Any) -> Any:
        trace = call.client.trace
        trace.trace_id, trace.server_id, trace.client_id = bits(128), bits(64), bits(64)
        trace.start, trace.client_start = wall_ns(call.client.started), now()
        sent = start_of(call)  # the plan as this attempt sends it, as the product's tracer reads it
        trace.upstream = (req.url, req.method, sent.kind, sent.upstream_model or sent.model)
        headers = dict(req.headers)
        headers["traceparent"] = parent_form % (trace.trace_id, trace.client_id)
        return req.with_headers(headers)

    def head_pair(start: Any, out: Any, trace: Trace) -> tuple[bytes, bytes]:
        """The attempt's and the request's heads (name, kind, shared attributes), as the product writes them."""
        name, fixed = tracing.upstream_kind(trace.upstream)
        client = Record(name, 1, 1, 1, None, None, CLIENT, 0, {}, fixed.answered(out.status))
        server = Record("", 1, 1, 1, None, None, SERVER, 0, {})
        server.name, server.fixed = tracing.route_kind(start, out, SERVER)
        return otlp.head(client), otlp.head(server)

    def observe(start: Any, out: Any) -> None:
        """The call's two frozen records, as the product's observers are handed them (pipeline/call_records.py)."""
        trace = start.client.trace
        if trace is None or trace.ended:
            return
        trace.ended = True
        if trace.upstream is None:  # no attempt: a probe or a refused request, never the bench's
            return
        end = now()
        plan, client = start, start.client
        key = (trace.upstream, plan.model, client.path, out.status, out.deployment, plan.key_name)
        found = heads.get(key)
        if found is None:
            found = heads[key] = head_pair(start, out, trace)
        answer = otlp.answer_of(out.facts, out.usage, out.usage_estimated, genai.answered)
        high, low, cost = trace.trace_id >> 64, trace.trace_id & half, out.cost
        attempt_span = b"".join((pack_ids(0x0a, 16, high, low, 0x12, 8, trace.client_id),
                                 parent_id(0x22, 8, trace.server_id), found[0],
                                 pack_times(0x39, trace.client_start, 0x41, end), answer, ending))
        request_span = b"".join((pack_ids(0x0a, 16, high, low, 0x12, 8, trace.server_id), found[1],
                                 pack_times(0x39, trace.start, 0x41, end),
                                 otlp.id_field(otlp._REQUEST_IDS, "cot_proxy.request_id", client.request_id),
                                 otlp.group(genai.request_parameters(plan.body)),
                                 b"" if cost is None else otlp.cost_field(cost.nanos / 1e9 if cost.priced else False),
                                 answer, ending))
        waiting.append(b"\x12" + short[len(attempt_span)] + attempt_span)
        waiting.append(b"\x12" + short[len(request_span)] + request_span)
        if len(waiting) >= tracing.processor.size:
            tracing.processor.wake.set()

    tracing.begin, tracing.attempt, tracing.observe = begin, attempt, observe
    tracing.answered = lambda call, status: None
    # (bench/targets.py's FLOOR_SAYS: the bench and the tests look for it)
    sys.stderr.write(f"cot_proxy tracing floor: this worker's tracer is the bench's (process {os.getpid()})\n")


class _Patch(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds tracing/tracer.py as the path finder does, and makes its Tracing call `floor` on each instance."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None:
            self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return None

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        made = module.Tracing.__init__

        def init(tracing: Any, *args: Any, **kwargs: Any) -> None:
            made(tracing, *args, **kwargs)
            floor(tracing)

        module.Tracing.__init__ = init


sys.meta_path.insert(0, _Patch())
