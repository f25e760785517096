"""W3C Trace Context (traceparent, tracestate) on the way upstream.

Untraced (TRACING off), a client's trace context goes on as it came, to every backend: the openai backend
forwards the client's headers anyway, while ARGO's and DashScope's build their own and would drop it. Traced, each
attempt's request carries its own span's context instead (tracing/tracer.py), continuing the client's trace.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from argoproxy.upstream.wire import UpstreamRequest

TITLED = {"traceparent": "Traceparent", "tracestate": "Tracestate"}  # as the edge spells them


def client_value(headers: Mapping[str, str], name: str) -> str | None:
    """A trace context header of the client's: the edge spells names as `Traceparent`; in-process, as written."""
    value = headers.get(TITLED[name])
    return value if value is not None else headers.get(name)


def trace_context_carried(req: UpstreamRequest, client_headers: Mapping[str, str]) -> UpstreamRequest:
    """The request with the client's traceparent and tracestate, where its backend left them out."""
    parent = client_value(client_headers, "traceparent")
    if parent is None or "Traceparent" in req.headers or "traceparent" in req.headers:
        return req
    added = {"traceparent": parent}
    state = client_value(client_headers, "tracestate")
    if state is not None:
        added["tracestate"] = state
    return dataclasses.replace(req, headers={**req.headers, **added})


SPELLINGS = ("traceparent", "Traceparent", "tracestate", "Tracestate")  # the edge's (title case) and as written
SPELLINGS_SET = frozenset(SPELLINGS)


def with_context(headers: Mapping[str, str], traceparent: str, tracestate: str) -> dict[str, str]:
    """Headers carrying this trace context in place of any other (the client's, as the edge or a backend spells
    its names)."""
    out = dict(headers)
    if not SPELLINGS_SET.isdisjoint(out):  # a client's (rare): replaced
        for name in SPELLINGS:
            out.pop(name, None)
    out["traceparent"] = traceparent
    if tracestate:
        out["tracestate"] = tracestate
    return out
