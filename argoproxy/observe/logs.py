"""Logging: quiet by default (start-up and problems only); with DEBUG one line per request. Secrets never logged."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Callable
from urllib.parse import urlsplit

from argoproxy.pipeline.call_records import CallEnd, CallStart
from argoproxy.redaction import LogFilter, Secrets


def configure_logging(debug: bool, secrets: Secrets | None = None) -> None:
    """Log to stderr; every record passes through the redaction filter (configured secrets, tokens, URL
    credentials), whichever of the proxy's loggers wrote it."""
    logger = logging.getLogger("cot_proxy")
    root_pkg = logging.getLogger("argoproxy")
    level = logging.DEBUG if debug else logging.INFO
    # OpenTelemetry's records (an exporter's failure names the collector's URL, query included) go through the
    # same handler; without one of their own they reached stderr through logging's last resort, unfiltered.
    otel = logging.getLogger("opentelemetry")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
        for own in (logger, root_pkg, otel):
            own.addHandler(handler)
            own.propagate = False
    # Filters on the loggers and on their handlers: a logger's filter does not see its children's records.
    # Gunicorn's own loggers too: its access log prints query strings (?api_key=...), its error log the
    # requests it refused.
    gunicorn_loggers = [logging.getLogger(name) for name in ("gunicorn.error", "gunicorn.access")]
    for target in (logger, root_pkg, *logger.handlers, *gunicorn_loggers):
        if isinstance(target, logging.Logger) and target not in gunicorn_loggers:
            target.setLevel(level)
        for old in [f for f in target.filters if isinstance(f, LogFilter)]:
            target.removeFilter(old)
        target.addFilter(LogFilter(secrets))


def request_logger() -> Callable[[CallStart, CallEnd], None]:
    """Observer writing one DEBUG line per finished request."""
    log = logging.getLogger("cot_proxy")

    def observe(start: CallStart, end: CallEnd) -> None:
        asked = start.client
        duration = (time.perf_counter() - asked.started) * 1000
        client = asked.client_request_id  # the client's X-Request-ID, beside the proxy's own id
        log.debug("%s /%s model=%s status=%s %.1fms in=%dB out=%dB stream=%s id=%s%s%s", asked.method,
                  asked.path, start.model or "-", end.status, duration, len(start.raw_body),
                  end.bytes_out, start.return_mode, asked.request_id,
                  f" client_id={_one_field(client)}" if client else "", _upstream_details(start, end))
    return observe


def _one_field(text: str) -> str:
    """A client's text as one field of the line: quoted, JSON-style, when it holds a space, '=', a quote or a
    backslash, so that `X-Request-ID: x id=<another request's id>` cannot add fields to it."""
    return json.dumps(text) if any(c in text for c in ' ="\\') else text


def _upstream_details(start: CallStart, end: CallEnd) -> str:
    """Where the call went (host and path only: a query string may carry a key) and how it answered."""
    req = end.upstream_request
    if req is None:
        return ""
    parts = urlsplit(req.url)
    waited = end.upstream_at
    latency = f" {(waited - start.client.started) * 1000:.1f}ms" if waited else ""
    return (f" upstream={parts.hostname}:{parts.port or ''}{parts.path} upstream_model={start.upstream_model or '-'}"
            f" upstream_status={end.upstream_status}{latency} upstream_stream={start.upstream_stream}")
