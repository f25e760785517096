"""Spans exported with a lean OTLP encoder (FAST_PATH=on, TRACING on): the OTLP/HTTP exporter sends what this
module writes instead of what the SDK's encoder builds.

The SDK's encoder makes a protobuf message object for every span, attribute and value, about 45 µs a span of
twenty attributes, twice a request: more than the rest of tracing costs. This one writes the same bytes (the
OTLP protobuf wire format: ExportTraceServiceRequest -> ResourceSpans -> ScopeSpans -> Span) straight from the
proxy's own span records (tracing/tracer.py's Record), handed to this module's batch processor as they are
(`records_to`: no ReadableSpan made for each). A record's shared attributes (its `fixed`: an upstream's
address, a route's model...) are written once and their bytes kept on them; of its own attributes, each
(key, text or number) pair met before is kept whole. The tracer asks this module to write what answered straight
from the answer (`answer_of`: bytes, the same on both of a call's spans) and hands a call's two spans together
(`on_call`, `pair`). Spans that are not records (the SDK's, from elsewhere) go to the SDK's own encoder.
tests/unit/test_otlp_encoder.py holds its output to the SDK encoder's, decoded with
opentelemetry-proto; FAST_PATH=off exports the SDK's spans with the stock exporter.

Records are batched by `LeanBatch` (the SDK's batch processor, leaner) and sent through a requests Session that
reads the environment once (`SettledSession`).

Private name (argoproxy/private_names.py): the exporter's `_client`, its HTTP client with the OTEL_* settings
(endpoint, headers, timeout, compression, certificates) and its retries, which this exporter sends through.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from typing import Any, Sequence

import requests
from requests.utils import get_netrc_auth

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from argoproxy.upstream.answer_bounds import collector_session

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
# Whole KeyValue fields (tag, length, key, value) of the (key, value) pairs met before, by field tag, each with its
# value's type (1, 1.0 and True are one dict key: a pair found with another type is written anew): most of a
# span's own attributes repeat from request to request (a status, a parameter, the answering model, small counts).
# Values are the clients' and the upstreams': a table is emptied when full. Ids, costs and messages never repeat:
# not kept (and their texts are written after a kept prefix: `text_value`).
_pairs: dict[bytes, dict[tuple[str, Any], tuple[type, bytes]]] = {}
_PAIRS_KEPT = 8192
# The longest encoding kept in these tables: their values are the clients' (a stop sequence) and the upstreams', of
# any length, and 8,192 of a megabyte each would hold gigabytes; the proxy's own repeat in a few dozen bytes
_BYTES_KEPT = 1024
_KEPT_TYPES = frozenset({str, int, bool, tuple})  # not float: 0.0 and -0.0 are one dict key too
_UNIQUE = frozenset({"cot_proxy.request_id", "cot_proxy.client_request_id", "gen_ai.response.id",
                     "cot_proxy.cost.usd", "gen_ai.input.messages", "gen_ai.output.messages"})
# The proxy's attributes whose tuples hold texts only (tracing/genai_attributes.py): kept. Another tuple is not
# ((1,) and (1.0,) are one dict key)
_TEXTS = frozenset({"gen_ai.response.finish_reasons", "gen_ai.request.stop_sequences",
                    "gen_ai.request.encoding_formats"})


def key_field(key: str) -> bytes:
    """A KeyValue's key field (kept: the proxy's keys are a few dozen)."""
    head = _keys.get(key)
    if head is None:
        head = text(1, key)
        if len(_keys) < _KEYS_KEPT:
            _keys[key] = head
    return head


def key_value(tag: bytes, key: str, value: Any) -> bytes:
    """One KeyValue as a field under `tag`."""
    head = key_field(key)
    encoded = any_value(value)
    pair = head + b"\x12" + length(len(encoded)) + encoded
    return tag + length(len(pair)) + pair


# What comes before a text value's bytes (tag, lengths, key), by tag, key and the text's length: ids' lengths repeat
_prefixes: dict[tuple[bytes, str, int], bytes] = {}


def text_value(tag: bytes, key: str, value: str) -> bytes:
    """key_value of a text (an id): its bytes after a kept prefix."""
    data = value.encode("utf-8", "replace")
    form = (tag, key, len(data))
    prefix = _prefixes.get(form)
    if prefix is None:
        prefix = text_prefix(*form)
        if len(_prefixes) >= _PAIRS_KEPT:
            _prefixes.clear()
        _prefixes[form] = prefix
    return prefix + data


def id_field(prefixes: list[bytes], key: str, value: str) -> bytes:
    """text_value of an id under one of the proxy's keys whose prefixes are made (`id_prefixes`)."""
    data = value.encode("utf-8", "replace")
    n = len(data)
    return (prefixes[n] if n < _ID_LENGTHS else text_prefix(_SPAN_ATTRIBUTES, key, n)) + data


def id_prefixes(key: str) -> list[bytes]:
    """What comes before an id of each length below _ID_LENGTHS under `key`, among a span's attributes."""
    return [text_prefix(_SPAN_ATTRIBUTES, key, n) for n in range(_ID_LENGTHS)]


def text_prefix(tag: bytes, key: str, n: int) -> bytes:
    head = key_field(key)
    size = length(n)
    inner = 1 + len(size) + n  # the AnyValue: its string field
    outer = length(inner)
    return b"".join((tag, length(len(head) + 1 + len(outer) + inner), head, b"\x12", outer, b"\x0a", size))


def attributes(tag: bytes, items: Any) -> bytes:
    """Repeated KeyValue fields (key 1, value 2) under one field's tag, repeated pairs from the table."""
    out = []
    pairs = _pairs.get(tag)
    if pairs is None:
        pairs = _pairs.setdefault(tag, {})
    for item in items.items():
        try:
            entry = pairs.get(item)
        except TypeError:  # a list: not kept
            entry = None
        if entry is not None and entry[0] is item[1].__class__:  # the common case: met before, same type
            out.append(entry[1])
            continue
        key, value = item
        kind = value.__class__
        if kind not in _KEPT_TYPES or key in _UNIQUE or (kind is tuple and key not in _TEXTS):
            out.append(text_value(tag, key, value) if kind is str else key_value(tag, key, value))
            continue
        encoded = key_value(tag, key, value)
        if entry is None and len(encoded) <= _BYTES_KEPT:  # (kept with its first type)
            if len(pairs) >= _PAIRS_KEPT:
                pairs.clear()
            pairs[item] = (kind, encoded)
        out.append(encoded)
    return b"".join(out)


_SPAN_ATTRIBUTES, _RESOURCE_ATTRIBUTES, _SCOPE_ATTRIBUTES = b"\x4a", b"\x0a", b"\x1a"  # fields 9, 1, 3
_ID_LENGTHS = 256  # ids (a request's, an answer's) are shorter: their prefixes are made once, by length
_REQUEST_IDS, _RESPONSE_IDS = id_prefixes("cot_proxy.request_id"), id_prefixes("gen_ai.response.id")
_UNPRICED = key_value(_SPAN_ATTRIBUTES, "cot_proxy.cost.priced", False)
_COST_HEAD = key_value(_SPAN_ATTRIBUTES, "cot_proxy.cost.usd", 0.0)[:-8]  # all but the double's 8 bytes


_UNSET_STATUS = b"\x7a\x00"  # an empty Status, written for an unset one as the SDK does
_UNSET = StatusCode.UNSET
_ids = struct.Struct(">BBQQBBQ").pack  # trace_id (field 1, 16 bytes: two halves) and span_id (field 2, 8 bytes)
_parent_id = struct.Struct(">BBQ").pack  # parent_span_id (field 4)
_times = struct.Struct("<BQBQ").pack  # start (field 7) and end (field 8), fixed64 each
_HALF = (1 << 64) - 1
# Span.flags (field 16, fixed32): of a span without parent or with a local one, and with a remote parent
_FLAGS = {_FLAG_HAS_IS_REMOTE: b"\x85\x01" + _fixed32(_FLAG_HAS_IS_REMOTE),
          _FLAG_HAS_IS_REMOTE | _FLAG_IS_REMOTE: b"\x85\x01" + _fixed32(_FLAG_HAS_IS_REMOTE | _FLAG_IS_REMOTE)}


def status_field(status: Any) -> bytes:
    code, description = status.status_code, status.description
    if code is _UNSET and not description:
        return _UNSET_STATUS
    number = _STATUS[code]
    return field(15, (text(2, description) if description else b"") + (b"\x18" + varint(number) if number else b""))


def head(r: Any) -> bytes:
    """A record's name, kind and shared attributes (its `fixed`), written once for every span that shares them: the
    tracer names each kind of span alike (tracing/tracer.py). Kept on the Fixed with the name and kind it was
    written for, the three read and replaced as one (a race writes the same bytes twice)."""
    fixed = r.fixed
    written = fixed.encoded
    if written is None or written[0] != r.name or written[1] is not r.kind:
        shared = b"".join(key_value(_SPAN_ATTRIBUTES, *item) for item in fixed.attributes.items())
        written = fixed.encoded = (r.name, r.kind, text(5, r.name) + b"\x30" + varint(_KINDS[r.kind]) + shared)
    piece: bytes = written[2]
    return piece


# Sets of (key, value) pairs met before (a request's parameters; an answer's model and finish reasons), written
# whole: each of the proxy's attributes has one type, so equal sets are written alike (tracing/genai_attributes.py)
_groups: dict[tuple[tuple[str, Any], ...], bytes] = {}


def group(pairs: tuple[tuple[str, Any], ...]) -> bytes:
    """KeyValue fields of a set of pairs, kept whole (bounded: a table is emptied when full)."""
    found = _groups.get(pairs)
    if found is None:
        found = b"".join([key_value(_SPAN_ATTRIBUTES, key, value) for key, value in pairs])
        if len(found) <= _BYTES_KEPT:
            if len(_groups) >= _PAIRS_KEPT:
                _groups.clear()
            _groups[pairs] = found
    return found


# What comes before a count's varint (tag, lengths, key, the int's tag), by key and the varint's length
_count_prefixes: dict[tuple[str, int], bytes] = {}


def counts(pairs: tuple[tuple[str, int], ...]) -> bytes:
    """KeyValue fields of token counts (ints from 0 up: tracing/genai_attributes.py's Answered), which vary from
    answer to answer: each a kept prefix and its varint."""
    out = b""
    for key, n in pairs:
        if n < 0:  # not a count: written as any int is
            out += key_value(_SPAN_ATTRIBUTES, key, n)
            continue
        number = _SHORT[n] if n < 16384 else varint(n)
        prefix = _count_prefixes.get((key, len(number)))
        if prefix is None:
            prefix = count_prefix(key, len(number))
            if len(_count_prefixes) < _KEYS_KEPT:
                _count_prefixes[(key, len(number))] = prefix
        out += prefix + number
    return out


def count_prefix(key: str, size: int) -> bytes:
    """What comes before an int's varint of `size` bytes in its KeyValue field (tag, lengths, key, the int's tag)."""
    head = key_field(key)
    return b"".join((_SPAN_ATTRIBUTES, length(len(head) + 3 + size), head, b"\x12", length(1 + size), b"\x18"))


def answered(answer: Any) -> bytes:
    """What answered (tracing/genai_attributes.py's Answered): its id, its model and finish reasons, its counts."""
    out = b"" if answer.id is None else id_field(_RESPONSE_IDS, "gen_ai.response.id", answer.id)
    if answer.described:
        out += group(answer.described)
    if answer.counts:
        out += counts(answer.counts)
    return out


# The model and finish reasons' fields, by (model, *reasons); before a count below 16384, by its varint's length
_described: dict[tuple[Any, ...], bytes] = {}
_INPUT_HEADS = [b""] + [count_prefix("gen_ai.usage.input_tokens", size) for size in (1, 2)]
_OUTPUT_HEADS = [b""] + [count_prefix("gen_ai.usage.output_tokens", size) for size in (1, 2)]


def answer_of(facts: Any, usage: Any, estimated: bool, general: Any) -> bytes:
    """What answered as `answered` writes it, straight from the answer's facts and usage (the tracer's fast path
    asks this in place of the Answered that `general`, genai_attributes.answered, makes): the common answer here
    (its facts read, OpenAI's three counts, each below 16384), any other through `general`. Its model and finish
    reasons are written once per set, as `general` names them."""
    if facts is None or estimated or usage.__class__ is not dict or len(usage) != 3 or "total_tokens" not in usage:
        return answered(general(facts, usage, estimated))
    prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if prompt.__class__ is not int or output.__class__ is not int or not (0 <= prompt < 16384 and 0 <= output < 16384):
        return answered(general(facts, usage, estimated))
    key = (facts.model, *facts.finish_reasons)
    pairs = _described.get(key)
    if pairs is None:
        pairs = group(general(facts, None).described)
        if len(pairs) <= _BYTES_KEPT:
            if len(_described) >= _PAIRS_KEPT:
                _described.clear()
            _described[key] = pairs
    answer_id, given, made = facts.id, _SHORT[prompt], _SHORT[output]
    return b"".join((b"" if answer_id is None else id_field(_RESPONSE_IDS, "gen_ai.response.id", answer_id),
                     pairs, _INPUT_HEADS[len(given)], given, _OUTPUT_HEADS[len(made)], made))


# The last answer and its bytes (the same Answered on a call's two spans, one after the other: written once); what
# ends a span (its status and flags), by both (a tracer's few Status objects, its UNSET shared; bounded, a failed
# attempt's are its own). The pair is read and replaced whole: two threads never mix one's bytes with another's
_answered: list[tuple[Any, bytes]] = [(None, b"")]
_endings: dict[tuple[Any, int], bytes] = {}


def ending(status: Any, flags: int) -> bytes:
    found = _endings.get((status, flags))
    if found is None:
        found = status_field(status) + _FLAGS[flags]
        if len(_endings) >= _KEYS_KEPT:
            _endings.clear()
        _endings[(status, flags)] = found
    return found


def span(r: Any) -> bytes:
    """One record (tracing/tracer.py's Record: its ids as numbers, its parent a record or the client's SpanContext)
    as a ScopeSpans.spans field: ids, parent, trace state, then its head (name, kind, shared attributes), times, the
    request's id and parameters, its other attributes, what answered (never the same key in two), status and
    flags. Protobuf's readers take a message's fields in any order, and a repeated field's parts in the order they
    come: the attributes are in the order Record.all_attributes gives the SDK, the head stays one piece."""
    parent, state, trace_id = r.parent, r.state, r.trace_id
    flags = _FLAG_HAS_IS_REMOTE
    if parent is not None:
        parented = _parent_id(0x22, 8, parent.span_id)
        if parent.is_remote:
            flags |= _FLAG_IS_REMOTE
    else:
        parented = b""
    # head()'s and ending()'s own look-ups made inline, here and in `pair`: four calls fewer a request (2.8 k
    # instructions, of the 90 k tracing adds), the functions called only for a kind not written yet
    written = r.fixed.encoded
    shared = written[2] if written is not None and written[0] == r.name and written[1] is r.kind else head(r)
    answer = r.answer
    if answer.__class__ is bytes:  # written already (answer_of)
        answer_bytes = answer
    elif answer is not None:
        last = _answered[0]
        if answer is last[0]:
            answer_bytes = last[1]
        else:
            answer_bytes = answered(answer)
            _answered[0] = answer, answer_bytes
    else:
        answer_bytes = b""
    rid, params = r.request_id, r.params
    end = _endings.get((r.status, flags)) or ending(r.status, flags)
    # One join, then the field's head and the body concatenated: cheaper than summing the parts' lengths first
    body = b"".join((_ids(0x0a, 16, trace_id >> 64, trace_id & _HALF, 0x12, 8, r.span_id), parented,
                     text(3, state.to_header()) if state else b"", shared, _times(0x39, r.start, 0x41, r.end),
                     b"" if rid is None else id_field(_REQUEST_IDS, "cot_proxy.request_id", rid),
                     group(params) if params else b"",
                     attributes(_SPAN_ATTRIBUTES, r.attributes) if r.attributes else b"",
                     b"" if r.cost is None else cost_field(r.cost), answer_bytes, end))
    return b"\x12" + length(len(body)) + body  # ScopeSpans.spans, field 2


def cost_field(cost: float | bool) -> bytes:
    """A request's cost (tracing/tracer.py's Record.cost): in dollars, or False where its model has no price."""
    return _UNPRICED if cost is False else _COST_HEAD + _double(cost)


def pair(c: Any, s: Any, answer: bytes) -> tuple[bytes, bytes]:
    """A call's last attempt `c` (a CLIENT record under `s`, with its trace's id and state) and its request's span
    `s`, both ended with what answered (`answer`, as answer_of wrote it): each as `span` writes it, the attempt's
    from what it shares with its parent."""
    trace_id, state = s.trace_id, s.state
    written = c.fixed.encoded
    shared = written[2] if written is not None and written[0] == c.name and written[1] is c.kind else head(c)
    body = b"".join((_ids(0x0a, 16, trace_id >> 64, trace_id & _HALF, 0x12, 8, c.span_id),
                     _parent_id(0x22, 8, s.span_id), text(3, state.to_header()) if state else b"", shared,
                     _times(0x39, c.start, 0x41, c.end),
                     attributes(_SPAN_ATTRIBUTES, c.attributes) if c.attributes else b"", answer,
                     _endings.get((c.status, _FLAG_HAS_IS_REMOTE)) or ending(c.status, _FLAG_HAS_IS_REMOTE)))
    s.answer = answer
    return b"\x12" + length(len(body)) + body, span(s)


def scope_field(scope: InstrumentationScope | None) -> bytes:
    """ScopeSpans.scope, as the SDK's encoder writes it (an empty one for none)."""
    if scope is None:
        return b"\x0a\x00"
    out = text(1, scope.name) if scope.name else b""
    if scope.version:
        out += text(2, scope.version)
    if scope.attributes:
        out += attributes(_SCOPE_ATTRIBUTES, scope.attributes)
    return field(1, out)


class Batch:
    """What every export of one worker's records shares: their resource's and scope's fields, written once."""

    def __init__(self, resource: Resource, scope: InstrumentationScope | None) -> None:
        self.resource = field(1, attributes(_RESOURCE_ATTRIBUTES, resource.attributes))
        self.resource_tail = text(3, resource.schema_url) if resource.schema_url else b""
        self.scope = scope_field(scope)
        self.scope_tail = text(3, scope.schema_url) if scope is not None and scope.schema_url else b""

    def encode(self, spans: Sequence[Any]) -> bytes:
        """An ExportTraceServiceRequest's bytes: one ResourceSpans holding one ScopeSpans of every span, each a
        record or its field as `span` wrote it (LeanBatch writes them as they end)."""
        written = b"".join([s if s.__class__ is bytes else span(s) for s in spans])  # copied once more
        scoped = len(self.scope) + len(written) + len(self.scope_tail)
        spans = b"\x12" + varint(scoped)
        whole = len(self.resource) + len(spans) + scoped + len(self.resource_tail)
        return b"".join((b"\x0a", varint(whole), self.resource, spans, self.scope, written, self.scope_tail,
                         self.resource_tail))


class LeanSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter, sending the proxy's records as Batch.encode writes them, through a Session that
    reads the environment's settings once (SettledSession) and the collector's answers up to MAX_COLLECTOR_ANSWER,
    unless a credential provider gives one."""

    batch: Batch | None = None

    def __init__(self, **options: Any) -> None:
        if "session" not in options:  # the collector's answers read up to a bound (upstream/answer_bounds.py)
            options.update(collector_session(SettledSession()))
        super().__init__(**options)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        try:
            if self.batch is None or any(isinstance(s, ReadableSpan) for s in spans):  # not the proxy's records
                data = encode_spans(spans).SerializePartialToString()
            else:
                data = self.batch.encode(spans)
        except Exception:  # noqa: BLE001 - a span that cannot be written is dropped with its batch, said once
            log.exception("spans could not be encoded; %d dropped", len(spans))
            return SpanExportResult.FAILURE
        result = self._client.export(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE


_NO_AUTH = object()


class SettledSession(requests.Session):
    """requests' Session as the exporter's: what it reads of the environment for a URL (HTTP(S)_PROXY and NO_PROXY,
    the CA bundle variables, ~/.netrc) read the first time, not again for every export (about 1 ms of stat calls
    and environment scans each, a few µs a span). A worker's environment and its collector's URL do not change."""

    def __init__(self) -> None:
        super().__init__()
        self.settled: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.netrc: dict[str, Any] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        key = (url, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        found = self.settled.get(key)
        if found is None:
            found = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if len(self.settled) < 16:
                self.settled[key] = found
        return {**found, "proxies": dict(found["proxies"])}

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if request.auth is None and self.auth is None and self.trust_env:  # ~/.netrc's entry for the URL, once
            url = str(request.url)
            auth = self.netrc.get(url, _NO_AUTH)
            if auth is _NO_AUTH:
                auth = self.netrc[url] = get_netrc_auth(url)
            if auth is not None:
                request.auth = auth
            else:
                trust, self.trust_env = self.trust_env, False  # no entry: not looked for again
                try:
                    return super().prepare_request(request)
                finally:
                    self.trust_env = trust
        return super().prepare_request(request)


def setting(name: str, default: int) -> int:
    """An OTEL_BSP_* number (start-up refuses one that is not: config/tracing_settings.py)."""
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class LeanBatch(SpanProcessor):
    """The SDK's batch span processor, for the proxy's records (FAST_PATH=on): records ended are written at once and
    kept in a list (an append a span, where the SDK's processor checks the process, a deque and an event), exported
    from a thread of their own every OTEL_BSP_SCHEDULE_DELAY ms, or in full batches as soon as
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE are waiting; past OTEL_BSP_MAX_QUEUE_SIZE waiting, new ones are dropped (said
    once a batch). What is still waiting is exported at shutdown (Gunicorn's worker_exit) and by force_flush. Made
    again in a forked process (tracing/tracer.py's Sdk is per process)."""

    def __init__(self, exporter: LeanSpanExporter, most: int, size: int) -> None:
        self.exporter = exporter
        self.delay = setting("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.most = most  # OTEL_BSP_MAX_QUEUE_SIZE or the proxy's default (tracing/tracer.py's batch_sizes)
        self.size = min(size, most)
        self.waiting: list[Any] = []  # only appended to, and cut from its start by the thread: never replaced
        self.dropped = 0
        self.unwritten = 0  # spans that could not be encoded since the last batch
        self.lock = threading.Lock()  # one export at a time (the thread's, a flush's)
        self.wake = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self.run, name="cot_proxy span export", daemon=True)
        self.thread.start()

    answer_of = staticmethod(answer_of)  # the tracer writes what answered through it (bytes)

    def records_to(self, resource: Resource, scope: InstrumentationScope | None) -> Any:
        """Where the tracer hands its ended records (tracing/tracer.py)."""
        self.exporter.batch = Batch(resource, scope)
        return self.on_end

    def on_end(self, record: Any) -> None:
        """A record ended (the tracer hands nothing else): written now, while what it holds was just made, and
        kept as bytes, which the garbage collector never visits, until its batch goes."""
        waiting = self.waiting
        if len(waiting) >= self.most:
            self.dropped += 1
            return
        try:
            waiting.append(span(record))
        except Exception:  # noqa: BLE001 - never the request's error: dropped, said with the batch (the first's cause)
            if not self.unwritten:
                log.exception("a span could not be encoded; dropped")
            self.unwritten += 1
            return
        if len(waiting) == self.size:
            self.wake.set()

    def on_call(self, client: Any, server: Any, answer: bytes) -> None:
        """A call's last attempt and its request's span ended together (tracing/tracer.py), with what answered:
        written as one (`pair`), kept as `on_end` keeps each."""
        waiting = self.waiting
        if len(waiting) + 2 > self.most:
            self.dropped += 2
            return
        try:
            written = pair(client, server, answer)
        except Exception:  # noqa: BLE001 - never the request's error: dropped, said with the batch (the first's cause)
            if not self.unwritten:
                log.exception("a span could not be encoded; dropped")
            self.unwritten += 2
            return
        waiting += written
        if len(waiting) - 2 < self.size <= len(waiting):
            self.wake.set()

    def run(self) -> None:
        while not self.stopping:
            full = self.wake.wait(self.delay)
            self.wake.clear()
            self.export_waiting(self.size if full else 1)  # woken by a full batch: full ones only (as the SDK's)

    def export_waiting(self, least: int = 1) -> None:
        with self.lock:
            waiting = self.waiting
            while len(waiting) >= least:
                batch = waiting[:self.size]
                del waiting[:len(batch)]  # appends go on at its end meanwhile
                try:
                    self.exporter.export(batch)
                except Exception:  # noqa: BLE001 - the next batch is tried all the same
                    log.exception("spans could not be exported; %d dropped", len(batch))
            if self.dropped:
                log.warning("%d spans dropped: more than OTEL_BSP_MAX_QUEUE_SIZE (%d) were waiting", self.dropped,
                            self.most)
                self.dropped = 0
            if self.unwritten:
                log.warning("%d spans dropped: they could not be encoded", self.unwritten)
                self.unwritten = 0

    def shutdown(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=setting("OTEL_BSP_EXPORT_TIMEOUT", 30000) / 1000)
        self.export_waiting()
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.export_waiting()
        return True


def lean_batching(most: int, size: int) -> LeanBatch:
    """The fast path's batch processor and exporter (tracing/tracer.py's Sdk makes them in each process): at most
    `most` spans waiting, exported `size` at a time."""
    return LeanBatch(LeanSpanExporter(), most, size)
