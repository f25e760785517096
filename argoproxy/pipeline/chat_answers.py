"""The chat-completions door's answer encoder: the decoded upstream answer (after the think transform) as an
OpenAI chat completion or SSE chunk stream, whichever the client asked for (stream <-> whole converted here)."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Iterator

from argoproxy.edge.header_policy import response_headers
from argoproxy.errors import ProxyError, named
from argoproxy.jsonfast import dumps
from argoproxy.edge import keepalive
from argoproxy.pipeline import streamconv
from argoproxy.pipeline.answer_facts import NOT_READ
from argoproxy.pipeline.answers import JSON_TYPE, Answers, completion, parse_upstream_json, try_json
from argoproxy.pipeline.door_api import Outgoing, Exchanged
from argoproxy.pipeline.filters import StreamCapture
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.think import ThinkConfig, transform_completion
from argoproxy.pipeline.answer_shape import event_chunk
from argoproxy.pipeline.backend import Backend, StreamItem
from argoproxy.upstream import sse
from argoproxy.upstream.wire import UpstreamResponse

log = logging.getLogger("cot_proxy")

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}


class ChatAnswers:
    """Given what it needs (the answer side's secrets and what the observers read; the backend's header policy), it
    encodes; the answer side (Answers.delivered) sends what it returns."""

    def __init__(self, answers: Answers, backend: Backend) -> None:
        self.answers = answers
        self.secrets = answers.secrets
        self.backend = backend

    def encode(self, call: Call, exchanged: Exchanged) -> Outgoing:
        """The exchange's result as a chat completion (whole) or its chunk stream, as the client asked."""
        resp, whole, items = exchanged.resp, exchanged.whole, exchanged.items
        if items is not None:
            assert resp is not None
            return self.encode_stream(call, resp, items)
        assert whole is not None
        if resp is None or exchanged.assembled:  # an answer the backend assembled itself
            assert isinstance(whole, dict)
            call.outcome.usage = whole.get("usage")
            return self.whole_object(call, whole, [("Content-Type", JSON_TYPE)])
        return self.encode_whole(call, resp, whole)

    # ---------------------------------------------------------------- whole answers
    def encode_whole(self, call: Call, resp: UpstreamResponse, payload: dict[str, Any] | bytes) -> Outgoing:
        if isinstance(payload, bytes) and not self.backend.transparent:
            try:
                check_upstream_body(payload)
            except ProxyError as err:
                raise self.answers.sanitized(err) from None
        if call.planned.client_stream:
            return self.sse(call, resp, self.packaged(call, self.completion_of(call, payload)))
        data = self.think_whole(call, payload)
        return Outgoing(resp.status_code, self.json_headers(resp), data)

    def think_whole(self, call: Call, payload: dict | bytes) -> bytes:
        """The whole answer's bytes after the think transform; its output and usage noted for the observers."""
        cfg = call.planned.think
        if isinstance(payload, dict):
            if cfg is not None:
                transform_completion(payload, cfg)
            note(call, payload, payload.get("usage"))
            return dumps(payload)
        if cfg is None or not (cfg.starts_inside or _mentions_tag(payload, cfg)):
            if self.answers.journal_bytes and len(payload) <= self.answers.journal_bytes:
                output = try_json(payload)
                note(call, output, output.get("usage") if isinstance(output, dict) else None)
            elif self.answers.observers:
                facts = call.outcome.facts  # tracing read the answer's usage with its facts: not looked for again
                usage = facts.usage if facts is not None and facts.usage is not NOT_READ else usage_of(payload)
                # no usage: the key is charged an estimate of the answer
                note(call, try_json(payload) if usage is None and call.plan.team_key is not None else None, usage)
            return payload
        obj = try_json(payload)
        if not isinstance(obj, dict):
            note(call, obj, None)
            return payload
        transformed = transform_completion(obj, cfg)
        note(call, obj, obj.get("usage"))
        return dumps(obj) if transformed else payload

    def completion_of(self, call: Call, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        """A whole answer as a parsed completion through the think transform (an error object in it: a 502)."""
        try:
            return completion(payload, call.planned.think)
        except ProxyError as err:
            raise self.answers.sanitized(err) from None

    @staticmethod
    def whole_object(call: Call, obj: dict[str, Any], headers: list[tuple[str, str]]) -> Outgoing:
        """An answer object the proxy built (noted for the journals), as JSON."""
        call.outcome.output = obj
        return Outgoing(200, headers, dumps(obj))

    def json_headers(self, resp: UpstreamResponse, converted: bool = False) -> list[tuple[str, str]]:
        """Headers of a whole answer: the upstream's (when relayed), with its Content-Type unless the proxy
        made the JSON itself from a stream (`converted`)."""
        if not self.backend.relay_headers:
            return [("Content-Type", JSON_TYPE)]
        headers = self.secrets.headers(response_headers(resp.headers, drop_encoding=True,
                                                        replaced=("Content-Type",) if converted else ()))
        if converted or not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", JSON_TYPE))
        return headers

    # ---------------------------------------------------------------- streams
    def packaged(self, call: Call, obj: dict[str, Any]) -> Iterator[StreamItem]:
        """A whole answer as the chunks of a stream (client streams, upstream did not)."""
        if obj.get("object") == "text_completion":
            return streamconv.package_completion(obj, call.planned.include_usage)
        return streamconv.package_chat(obj, call.planned.include_usage)

    def encode_stream(self, call: Call, resp: UpstreamResponse, items: Iterable[StreamItem]) -> Outgoing:
        if call.planned.client_stream:
            return self.sse(call, resp, items)
        try:
            obj = aggregate(call, items)
        finally:
            resp.close()
        call.outcome.usage = obj.get("usage")
        return self.whole_object(call, obj, self.json_headers(resp, converted=True))

    def sse(self, call: Call, resp: UpstreamResponse, items: Iterable[StreamItem]) -> Outgoing:
        """A chunk stream as SSE, with the upstream's headers where they are relayed."""
        headers = response_headers(resp.headers, drop_encoding=True, replaced=SSE_HEADERS) \
            if self.backend.relay_headers else []
        headers = self.secrets.headers(headers)
        headers.extend(SSE_HEADERS.items())
        return Outgoing(200, headers, self.encoded(call, items))

    def encoded(self, call: Call, items: Iterable[StreamItem]) -> Iterator[bytes]:
        # Journals: the answer is assembled while what was sent stays under JOURNAL_BODY_BYTES (the relay's tap
        # measures it). Usage: only the last event that mentions it is kept, parsed once at the end.
        answers = self.answers
        capture = StreamCapture(call.outcome.output_tap) if answers.journal_bytes else None
        watch = bool(self.answers.observers)
        last_usage: StreamItem | None = None
        meter = call.planned.meter
        try:
            for item in items:
                if meter is not None:
                    metered = meter.item(item)
                    if metered is None:
                        continue
                    item = metered
                if type(item) is bytes:
                    if b'"error"' in item:  # an upstream error event: its message may quote a key
                        item = self.answers.sanitized_event(item)
                    if watch and b'"usage"' in item:
                        last_usage = item
                    if capture is not None:
                        capture.add(item)
                    yield item
                elif isinstance(item, dict):
                    if watch and item.get("usage"):
                        last_usage = item
                    if capture is not None:
                        capture.add(item)
                    yield sse.encode(item)
            yield sse.DONE
        except ProxyError as err:
            if not call.outcome.observed:  # observed already: the client left and the upstream was cut on purpose
                log.warning("stream %s ended with an error: %s", call.client.request_id, err.message)
            # sanitized as on the other doors: a provider's decoder may quote what the upstream sent
            yield self.error_event(call, self.answers.sanitized(err))
        finally:
            self._ended(call, capture, last_usage)

    def _ended(self, call: Call, capture: StreamCapture | None, last_usage: StreamItem | None) -> None:
        """A stream ended (or the client left): what it sent to the journal, its usage to the records (the
        meter's, else the last event's that mentions it)."""
        out = call.outcome
        if capture is not None:
            out.output = capture.result()
        meter = call.planned.meter
        if meter is not None:
            out.usage, out.usage_estimated = meter.settled(call.planned.body)
        elif last_usage is not None:
            obj = sse.sse_object(last_usage) if isinstance(last_usage, bytes) else last_usage
            usage = obj.get("usage") if isinstance(obj, dict) else None
            out.usage = usage if isinstance(usage, dict) else None

    def error_event(self, call: Call, err: ProxyError) -> bytes:
        """An error once a stream has begun: an SSE event in OpenAI's error shape, naming the request."""
        call.outcome.status = err.status
        body = err.body()
        named(body["error"], call.client.request_id, call.client.client_request_id)
        return sse.encode(body)

    def stream_headers(self, call: Call) -> list[tuple[str, str]]:
        return list(SSE_HEADERS.items())

    def keepalive_beat(self, call: Call) -> bytes:
        return keepalive.KEEPALIVE


def check_upstream_body(payload: bytes) -> None:
    """A cheap check of a whole 2xx API answer before it is relayed: it must look like a JSON object (so a
    truncated, empty or HTML body is a 502, not a 200 the client cannot parse), and an OpenAI error object
    sent with a 2xx status (servers in "compatible" mode do this) is an error for the client too."""
    body = payload.strip()
    if body[:1] != b"{" or body[-1:] != b"}":
        what = "an empty body" if not body else "HTML" if body[:1] == b"<" else f"{len(payload)} bytes"
        raise ProxyError(502, f"The upstream answer is not a JSON object ({what}).", code="upstream_bad_response")
    if b'"error"' in body[:64]:
        parse_upstream_json(payload)


def _mentions_tag(payload: bytes, cfg: ThinkConfig) -> bool:
    # The tag's name, so that JSON-escaped tags (\u003cthink\u003e) are seen too; `reasoning` is copied to
    # reasoning_content (think.name_reasoning).
    if b'"reasoning"' in payload:
        return True
    for tag in (cfg.start, cfg.end):
        name = tag.strip("</>") or tag
        if name.encode() in payload:
            return True
    return False


def aggregate(call: Call, items: Iterable[StreamItem]) -> dict[str, Any]:
    """A whole answer from a stream (upstream streams, client did not)."""
    parsed = (event_chunk(item) if isinstance(item, bytes) else item for item in items)
    chunks = (c for c in parsed if c is not None)
    if call.plan.kind == "completions":
        return streamconv.aggregate_completion(chunks)
    return streamconv.aggregate_chat(chunks)


def usage_of(payload: bytes) -> dict | None:
    """The `usage` object of a JSON answer, without parsing the whole answer (metrics on the hot path)."""
    at = payload.rfind(b'"usage"')
    if at < 0:
        return None
    colon = payload.find(b":", at + 7)
    if colon < 0:
        return None
    try:
        usage, _ = _USAGE_DECODER.raw_decode(payload[colon + 1:colon + 8192].decode("utf-8", "replace").lstrip())
    except ValueError:
        return None
    return usage if isinstance(usage, dict) else None


_USAGE_DECODER = json.JSONDecoder()


def note(call: Call, output: Any, usage: Any) -> None:
    """The answer's output and usage, for the observers (Answers.observe reads them)."""
    out = call.outcome
    out.output, out.usage = output, usage
