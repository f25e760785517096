"""Tracing: OpenTelemetry traces of every request (TRACING; docs/tracing.md), in one room.

- tracer.py: the spans (a SERVER span per client request, a CLIENT span per upstream attempt), started once per
  worker, and the hooks the others call: the door's `Tracing.begin` and `observe` (a finished call's frozen
  records, pipeline/call_records.py), the upstream client's AttemptTracer (each attempt: the start record the
  exchange made as it sent), a background run's `detached` span.
- genai_attributes.py: what a span says of the call, by the GenAI semantic conventions (read from the meter's
  reading and the answer's facts, never from the live call).

What stays elsewhere, and why: the TRACING settings are configuration's (config/tracing_settings.py: every
setting is read there); the W3C trace context an attempt carries is the upstream client's policy
(upstream/trace_context.py); the fast path's span batching and OTLP encoder sit in its fence (fastpath/otlp.py),
handed to the tracer by serve/build.py. Nothing else imports this package but serve/ (which builds it), and that by
its face (the names below, each read from its module on first use: argoproxy/room_face.py), never a module inside.

May import: the shared modules, config, meter, upstream, pipeline.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argoproxy.tracing.tracer import Tracing as Tracing
    from argoproxy.tracing.tracer import shutdown as shutdown_tracing
else:
    from argoproxy.room_face import lazy_face

    __getattr__ = lazy_face(__name__, {"Tracing": "tracer", "shutdown_tracing": "tracer:shutdown"})

__all__ = ["Tracing", "shutdown_tracing"]
