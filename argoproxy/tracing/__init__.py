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
handed to the tracer by serve/build.py. Nothing else imports this package but serve/ (which builds it).

May import: the shared modules, config, meter, upstream, pipeline.
"""
