"""Whether the proxy traces requests (TRACING, and OpenTelemetry's own variables), and the OTEL_* values it checks
at start-up.

The OpenTelemetry SDK reads its OTEL_* variables itself, in each worker (argoproxy/tracing/tracer.py). A value it
cannot use there (a sampler name mistyped, a ratio that is not a number) it replaces with its default and logs a
warning in every worker: a user who asked for 1% of the traces would get all of them. Read here, once, by the
loader, such a value stops start-up with one line naming it. Nothing here imports OpenTelemetry: the Gunicorn
master reads the settings and must not load the SDK (its workers start it after the fork).
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from argoproxy.config.setting_fields import as_on_off, as_str, as_url

# Where spans go; either set turns TRACING=auto on. The traces-only one wins (the SDK's own rule).
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"  # the OTLP/HTTP exporter's, when TRACING=on names none
SAMPLERS = ("parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio", "always_on",
            "always_off", "traceidratio")
RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")
PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
# The exporter's headers: `name=value` entries, separated by commas (OpenTelemetry's reading, values URL-encoded or
# not). An entry it cannot read it logs whole, in every worker, where it may hold a key.
HEADERS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
HEADER_ENTRY = re.compile(r"[ \t]*[!#-'*+\-.0-9A-Z^-z|~]+[ \t]*=[ \t]*[ !#-+\--:<-\[\]-~]*[ \t]*")
# The batch processor's numbers (all milliseconds or counts): the SDK takes a bad one for its default; one past
# a C int stops every worker with a traceback, as does a batch larger than the queue.
BATCH_NUMBERS = ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE",
                 "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
MOST_BATCH_NUMBER = 2**31 - 1
# The proxy's defaults (the SDK's are 2,048 and 512): a gateway makes two spans a request, thousands a second, and
# each export costs about a millisecond of Python over its spans' bytes: batches of 2,048 cost about 2 µs a request
# less (bench/tracing_cost.py); the queue holds two such batches.
QUEUE_DEFAULT, BATCH_DEFAULT = 4096, 2048
# The span limits: anything but a whole number from 0 stops every worker with a traceback.
LIMITS = ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
          "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT",
          "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT")
# The exporter's: a timeout or compression it cannot use it replaces with a warning in every worker, and a TLS
# file it cannot read fails every export.
TIMEOUTS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
COMPRESSIONS = ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
COMPRESSION_NAMES = ("none", "gzip", "deflate")
TLS_FILES = tuple(f"OTEL_EXPORTER_OTLP{part}_{kind}" for part in ("_TRACES", "")
                  for kind in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"))
# The SDK reads only "true" (any case) as true: OTEL_SDK_DISABLED=1 or yes would leave tracing on without a word.
BOOLEANS = ("true", "false")
# The propagators the proxy speaks: it continues and passes on W3C trace context itself, whatever OTEL_PROPAGATORS
# says (baggage, the SDK's other default, goes upstream as any other header).
PROPAGATORS = ("tracecontext", "baggage")


def as_tracing(value: Any) -> str:
    """TRACING: auto (on when an OTLP endpoint is set), on or off (true/false, yes/no, 1/0 too)."""
    if as_str(value).lower() == "auto":
        return "auto"
    try:
        return as_on_off(value)
    except ValueError:
        raise ValueError(f"expected on, off or auto, got {value!r}") from None


def _set(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def switched_off(environ: Mapping[str, str]) -> str | None:
    """The OpenTelemetry variable that turns the SDK off whatever TRACING says, as `NAME=value`, or None."""
    if _set(environ, "OTEL_SDK_DISABLED").lower() == "true":
        return "OTEL_SDK_DISABLED=true"
    if _set(environ, "OTEL_TRACES_EXPORTER").lower() == "none":
        return "OTEL_TRACES_EXPORTER=none"
    return None


def tracing_on(tracing: str, environ: Mapping[str, str]) -> bool:
    """Are requests traced? TRACING=on or off says so, auto follows the OTLP endpoint variables; the SDK's own
    switches (OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none) turn it off either way."""
    if switched_off(environ) is not None:
        return False
    if tracing != "auto":
        return tracing == "on"
    return any(_set(environ, name) for name in ENDPOINTS)


def endpoint(environ: Mapping[str, str]) -> str:
    """Where the spans go, as the OTLP/HTTP exporter decides it."""
    traces, base = _set(environ, ENDPOINTS[0]), _set(environ, ENDPOINTS[1])
    if traces:
        return traces
    return base.rstrip("/") + "/v1/traces" if base else DEFAULT_ENDPOINT


def tracing_problem(tracing: str, environ: Mapping[str, str]) -> str | None:
    """One line naming the first OTEL_* value the SDK would not use as written, while tracing is on."""
    if not tracing_on(tracing, environ):
        return None
    return (_sdk_problem(environ) or _transport_problem(environ) or _sampler_problem(environ)
            or _headers_problem(environ) or _resource_problem(environ) or _batch_problem(environ)
            or _limit_problem(environ) or _exporter_problem(environ))


def _sdk_problem(environ: Mapping[str, str]) -> str | None:
    disabled = _set(environ, "OTEL_SDK_DISABLED")
    if disabled and disabled.lower() not in BOOLEANS:
        return f"OTEL_SDK_DISABLED: expected true or false, got {disabled!r}"
    exporter = _set(environ, "OTEL_TRACES_EXPORTER").lower()
    if exporter not in ("", "otlp"):
        return f"OTEL_TRACES_EXPORTER: cot_proxy sends traces over OTLP only (otlp, or none for no traces), got {exporter!r}"
    return None


def _transport_problem(environ: Mapping[str, str]) -> str | None:
    """The protocol and endpoint variables: OTLP/HTTP with protobuf, to a URL."""
    for name in PROTOCOLS:
        protocol = _set(environ, name)
        if protocol and protocol != "http/protobuf":
            return f"{name}: cot_proxy sends traces over OTLP/HTTP with protobuf (http/protobuf), got {protocol!r}"
    for name in ENDPOINTS:
        try:
            as_url(_set(environ, name))
        except ValueError as exc:
            return f"{name}: {exc}"
    return None


def _sampler_problem(environ: Mapping[str, str]) -> str | None:
    sampler = _set(environ, "OTEL_TRACES_SAMPLER").lower()
    if sampler and sampler not in SAMPLERS:
        return f"OTEL_TRACES_SAMPLER: must be one of {', '.join(SAMPLERS)}, got {sampler!r}"
    if sampler not in RATIO_SAMPLERS:
        return None
    arg = _set(environ, "OTEL_TRACES_SAMPLER_ARG")
    try:
        ratio = float(arg) if arg else 1.0
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        return f"OTEL_TRACES_SAMPLER_ARG: the share of traces kept, between 0 and 1, got {arg!r}"
    return None


def _headers_problem(environ: Mapping[str, str]) -> str | None:
    for name in HEADERS:
        entries = re.split(r"[ \t]*,[ \t]*", _set(environ, name))
        problem = _entry_problem(name, "name", entries, lambda entry: not entry or bool(HEADER_ENTRY.fullmatch(entry)))
        if problem:
            return problem
    return None


def _resource_problem(environ: Mapping[str, str]) -> str | None:
    # The SDK drops an OTEL_RESOURCE_ATTRIBUTES entry that is not key=value with a warning in every worker
    resource = _set(environ, "OTEL_RESOURCE_ATTRIBUTES")
    return _entry_problem("OTEL_RESOURCE_ATTRIBUTES", "key", resource.split(",") if resource else [],
                          lambda entry: "=" in entry and bool(entry.partition("=")[0].strip()))


def _entry_problem(name: str, what: str, entries: list[str], good: Callable[[str], bool]) -> str | None:
    """The line naming the first of a variable's comma-separated `what`=value entries that is not `good` (its
    values never shown: headers carry credentials)."""
    bad = next((i for i, entry in enumerate(entries, 1) if not good(entry)), None)
    if bad is None:
        return None
    return (f"{name}: entry {bad} is not {what}=value (entries separated by commas, values URL-encoded); values are "
            "not shown")


def _batch_problem(environ: Mapping[str, str]) -> str | None:
    for name in BATCH_NUMBERS:
        value = _set(environ, name)
        if value and not (_whole(value) and int(value) > 0):
            return f"{name}: expected a positive whole number, got {value!r}"
        if value and int(value) > MOST_BATCH_NUMBER:
            return f"{name}: expected a positive whole number up to {MOST_BATCH_NUMBER}, got {value!r}"
    queue = int(_set(environ, "OTEL_BSP_MAX_QUEUE_SIZE") or QUEUE_DEFAULT)
    batch = int(_set(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE") or min(BATCH_DEFAULT, queue))
    if batch > queue:
        return f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: at most OTEL_BSP_MAX_QUEUE_SIZE ({queue}), got {batch}"
    return None


def _whole(value: str) -> bool:
    """ASCII digits only: str.isdigit() also passes '²', which int() then refuses with a traceback."""
    return value.isascii() and value.isdigit()


def _limit_problem(environ: Mapping[str, str]) -> str | None:
    for name in LIMITS:
        value = _set(environ, name)
        if value and not _whole(value):
            return f"{name}: expected a whole number (0 or more), got {value!r}"
    return None


def _exporter_problem(environ: Mapping[str, str]) -> str | None:
    for name in TIMEOUTS:
        value = _set(environ, name)
        try:
            seconds = float(value) if value else 1.0
        except ValueError:
            seconds = -1.0
        if not 0 < seconds < float("inf"):
            return f"{name}: expected seconds (a positive number), got {value!r}"
    for name in COMPRESSIONS:
        value = _set(environ, name)
        if value and value.lower() not in COMPRESSION_NAMES:
            return f"{name}: must be one of {', '.join(COMPRESSION_NAMES)}, got {value!r}"
    for name in TLS_FILES:
        value = _set(environ, name)
        if value and not (os.path.isfile(value) and os.access(value, os.R_OK)):
            return f"{name}: no file can be read at {value!r}"
    return None


def tracing_warnings(tracing: str, content: bool, given: set[str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """What tracing will not do that the settings seem to ask for. `given`: the settings given by name."""
    on = tracing_on(tracing, environ)
    off_by = switched_off(environ)
    out = []
    if tracing == "on" and off_by is not None:
        out.append(f"TRACING is on, but {off_by} turns OpenTelemetry off, so no request is traced")
    elif tracing == "on" and not any(_set(environ, name) for name in ENDPOINTS):
        out.append(f"TRACING is on and no OTEL_EXPORTER_OTLP_ENDPOINT is set: spans go to {DEFAULT_ENDPOINT}")
    base = _set(environ, ENDPOINTS[1])
    if on and off_by is None and not _set(environ, ENDPOINTS[0]) and re.search(r"/v1/traces/*$", base.split("?")[0]):
        out.append("OTEL_EXPORTER_OTLP_ENDPOINT ends in /v1/traces, and the exporter adds /v1/traces to it: spans go "
                   "to .../v1/traces/v1/traces. Give the collector's base URL, or this URL as "
                   "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    traces = _set(environ, ENDPOINTS[0])
    if on and off_by is None and traces and urlsplit(traces).path.strip("/") == "":
        out.append("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is written, and it has no path: spans go to "
                   "the collector's / (where it answers 404). Give its whole URL (.../v1/traces), or this base URL "
                   "as OTEL_EXPORTER_OTLP_ENDPOINT")
    if on and off_by is None:
        out.extend(_unused_otel(environ))
    if "tracing_content" in given and content and not on:
        out.append("TRACING_CONTENT is set, but no request is traced (TRACING is off, or auto with no "
                   "OTEL_EXPORTER_OTLP_ENDPOINT), so it is not used")
    return tuple(out)


def _unused_otel(environ: Mapping[str, str]) -> list[str]:
    """OpenTelemetry variables set, while tracing is on, that change nothing as they are written."""
    out = []
    sampler = _set(environ, "OTEL_TRACES_SAMPLER").lower()
    if _set(environ, "OTEL_TRACES_SAMPLER_ARG") and sampler not in RATIO_SAMPLERS:
        out.append(f"OTEL_TRACES_SAMPLER_ARG is set, but OTEL_TRACES_SAMPLER is "
                   f"{sampler or 'parentbased_always_on (the default)'}, which takes no share, so it is not used: "
                   "set OTEL_TRACES_SAMPLER=parentbased_traceidratio to keep that share of traces")
    propagators = [p.strip().lower() for p in _set(environ, "OTEL_PROPAGATORS").split(",") if p.strip()]
    others = [p for p in propagators if p not in PROPAGATORS]
    if others:
        out.append(f"OTEL_PROPAGATORS names {', '.join(others)}, but cot_proxy continues and passes on W3C trace "
                   "context (traceparent, tracestate) only, so it is not used")
    return out
