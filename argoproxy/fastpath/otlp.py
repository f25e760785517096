"""Spans exported with a lean OTLP encoder (FAST_PATH=on, TRACING on): the OTLP/HTTP exporter sends what this
module writes instead of what the SDK's encoder builds.

The SDK's encoder makes a protobuf message object for every span, attribute and value, about 45 µs a span of
twenty attributes, twice a request: more than the rest of tracing costs. This one writes the same bytes (the
OTLP protobuf wire format: ExportTraceServiceRequest -> ResourceSpans -> ScopeSpans -> Span) straight from the
SDK's ReadableSpan objects, each attribute key's bytes kept once, in a few µs a span. Spans it does not write
(events or links: the proxy records none) go to the SDK's own encoder. tests/unit/test_otlp_encoder.py holds its
output to the SDK encoder's, decoded with opentelemetry-proto; FAST_PATH=off exports with the stock exporter.

Private name (argoproxy/private_names.py): the exporter's `_client`, its HTTP client with the OTEL_* settings
(endpoint, headers, timeout, compression, certificates) and its retries, which this exporter sends through.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

log = logging.getLogger(__name__)

_KINDS = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
_FLAG_HAS_IS_REMOTE, _FLAG_IS_REMOTE = 0x100, 0x200  # SpanFlags: what the SDK's encoder writes of the parent
_KEYS_KEPT = 4096  # attribute keys whose encoding is kept (the proxy's own keys: a few dozen)
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack


def varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHORT = [varint(n) for n in range(1 << 14)]  # the varints of every length below 16 KiB, made once


def length(n: int) -> bytes:
    return _SHORT[n] if n < 16384 else varint(n)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + length(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return field(number, value.encode("utf-8", "replace"))


def any_value(value: Any) -> bytes:
    """An AnyValue's bytes: string 1, bool 2, int 3, double 4, array 5, bytes 7 (the SDK's attribute types)."""
    kind = type(value)
    if kind is str:
        data: bytes = value.encode("utf-8", "replace")
        return b"\x0a" + length(len(data)) + data
    if kind is int:
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is float:
        return b"\x21" + _double(value)
    if isinstance(value, (list, tuple)):
        values = b"".join(b"\x0a" + length(len(v)) + v for v in map(any_value, value))
        return b"\x2a" + length(len(values)) + values
    if isinstance(value, bytes):
        return b"\x3a" + length(len(value)) + value
    return any_value(str(value))


_keys: dict[str, bytes] = {}
# Whole KeyValue fields (tag, length, key, value) of the (key, text or integer) pairs met before, by field tag:
# most of a span's attributes repeat from request to request (the method, the route, the operation, the provider,
# the model, a status, small counts). Values are the clients' (model names): a table is emptied when full. Ids
# and messages never repeat: not kept.
_pairs: dict[bytes, dict[tuple[str, Any], bytes]] = {}
_PAIRS_KEPT = 8192
_UNIQUE = frozenset({"cot_proxy.request_id", "gen_ai.response.id", "gen_ai.input.messages", "gen_ai.output.messages"})


def key_value(tag: bytes, key: str, value: Any) -> bytes:
    """One KeyValue as a field under `tag`."""
    head = _keys.get(key)
    if head is None:
        head = text(1, key)
        if len(_keys) < _KEYS_KEPT:
            _keys[key] = head
    encoded = any_value(value)
    pair = head + b"\x12" + length(len(encoded)) + encoded
    return tag + length(len(pair)) + pair


def attributes(tag: bytes, items: Any) -> bytes:
    """Repeated KeyValue fields (key 1, value 2) under one field's tag."""
    out = []
    pairs = _pairs.setdefault(tag, {})
    for item in items.items():
        kind = type(item[1])
        if (kind is str or kind is int) and item[0] not in _UNIQUE:  # a type each: 1, 1.0 and True are one dict key
            entry = pairs.get(item)
            if entry is None:
                entry = key_value(tag, *item)
                if len(pairs) >= _PAIRS_KEPT:
                    pairs.clear()
                pairs[item] = entry
        else:
            entry = key_value(tag, *item)
        out.append(entry)
    return b"".join(out)


_SPAN_ATTRIBUTES, _RESOURCE_ATTRIBUTES, _SCOPE_ATTRIBUTES = b"\x4a", b"\x0a", b"\x1a"  # fields 9, 1, 3


_named: dict[tuple[str, SpanKind], bytes] = {}  # a span's name and kind fields, by both: names repeat (bounded)
_UNSET_STATUS = b"\x7a\x00"  # an empty Status, written for an unset one as the SDK does


def span(s: ReadableSpan) -> bytes:
    """One Span as a ScopeSpans.spans field: ids, trace state, parent, name, kind, times, attributes, status,
    flags, in field order."""
    ctx, parent, status = s.context, s.parent, s.status
    head = b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big") + b"\x12\x08" + ctx.span_id.to_bytes(8, "big")
    if ctx.trace_state:
        head += text(3, ctx.trace_state.to_header())
    flags = _FLAG_HAS_IS_REMOTE
    if parent is not None:
        head += b"\x22\x08" + parent.span_id.to_bytes(8, "big")
        if parent.is_remote:
            flags |= _FLAG_IS_REMOTE
    named = _named.get((s.name, s.kind))
    if named is None:
        named = text(5, s.name) + b"\x30" + varint(_KINDS[s.kind])
        if len(_named) >= _KEYS_KEPT:
            _named.clear()
        _named[(s.name, s.kind)] = named
    code = _STATUS[status.status_code]
    body = b"".join((head, named, b"\x39", _fixed64(s.start_time or 0), b"\x41", _fixed64(s.end_time or 0),
                     attributes(_SPAN_ATTRIBUTES, s.attributes) if s.attributes else b"",
                     field(15, (text(2, status.description) if status.description else b"") +
                           (b"\x18" + varint(code) if code else b"")) if code or status.description else _UNSET_STATUS,
                     b"\x85\x01", _fixed32(flags)))
    return b"\x12" + length(len(body)) + body  # ScopeSpans.spans, field 2


def scope_head(s: ReadableSpan) -> bytes:
    scope = s.instrumentation_scope
    if scope is None:
        return b"\x0a\x00"  # an empty scope, as the SDK's encoder writes one
    out = text(1, scope.name) if scope.name else b""
    if scope.version:
        out += text(2, scope.version)
    if scope.attributes:
        out += attributes(_SCOPE_ATTRIBUTES, scope.attributes)
    return field(1, out)


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest's bytes: spans grouped by resource, then by instrumentation scope, in order."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for s in spans:
        resource, scope = s.resource, s.instrumentation_scope
        scopes = groups.setdefault(id(resource), (resource, {}))[1]
        scopes.setdefault(id(scope), (s, []))[1].append(span(s))
    out = []
    for resource, scopes in groups.values():
        body = [field(1, attributes(_RESOURCE_ATTRIBUTES, resource.attributes))]
        for first, encoded in scopes.values():
            scope = first.instrumentation_scope
            tail = text(3, scope.schema_url) if scope is not None and scope.schema_url else b""
            body.append(field(2, scope_head(first) + b"".join(encoded) + tail))
        if resource.schema_url:
            body.append(text(3, resource.schema_url))
        out.append(field(1, b"".join(body)))
    return b"".join(out)


class LeanSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter, sending what encode_request writes."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            if any(s.events or s.links for s in spans):  # not the proxy's spans: the SDK's encoder
                data = encode_spans(spans).SerializePartialToString()
            else:
                data = encode_request(spans)
        except Exception:  # noqa: BLE001 - a span that cannot be written is dropped with its batch, said once
            log.exception("spans could not be encoded; %d dropped", len(spans))
            return SpanExportResult.FAILURE
        result = self._client.export(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
