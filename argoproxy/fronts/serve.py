"""The front doors' answer side: the internal chat answer (whole, or its chunks after the think transform)
translated back into the door's format, and the door for each route kind. The request side (the front's
request translated into the internal chat request) runs in the one sequence (pipeline/gateway.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.fronts import front_named, long_strings
from argoproxy.fronts.front import Exchange, Front
from argoproxy.fronts.plain_chunks import MISSES, PlainReader
from argoproxy.pipeline import streamconv
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.answer_shape import check_chunk, event_chunk
from argoproxy.pipeline.answers import completion as answer_completion
from argoproxy.pipeline.door_api import Outgoing, Exchanged
from argoproxy.pipeline.call import Call
from argoproxy.upstream.client import READ_ERRORS, stream_error
from argoproxy.upstream.wire import UpstreamResponse

if TYPE_CHECKING:
    from argoproxy.pipeline.answers import Answers

log = logging.getLogger("cot_proxy")

JSON_TYPE = "application/json"
SSE_HEADERS = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
               ("X-Accel-Buffering", "no")]


class FrontAnswers:
    """The front doors' answer encoder (pipeline/door_api.py's AnswerEncoder): the chat answer, decoded and
    thought by the pipeline, translated into the door's format."""

    def __init__(self, answers: Answers, read_timeout: float) -> None:
        self.answers = answers
        self.read_timeout = read_timeout  # how long a stalled upstream read waited (named in its error)

    # The pipeline decodes a 2xx answer to a translated request and runs the think transform on a stream
    # (pipeline/exchange.py: its result, an Exchanged); these encode it in the front's shape, and the answer side
    # (pipeline/answers.py's Answers.delivered) sends what they return.
    def encode(self, call: Call, exchanged: Exchanged) -> Outgoing:
        resp, whole, items = exchanged.resp, exchanged.whole, exchanged.items
        if items is not None:
            assert resp is not None
            return self.encode_stream(call, resp, items)
        assert whole is not None
        if resp is None or exchanged.assembled:  # an answer the backend assembled itself (ARGO's embeddings)
            assert isinstance(whole, dict)
            return self.translated(call, whole)
        return self.encode_whole(call, whole)

    def encode_stream(self, call: Call, resp: UpstreamResponse, items: Iterable[Any]) -> Outgoing:
        if call.planned.client_stream:  # the front's stream checks each chunk's shape as it reads it
            front, ex = translation(call)
            return self.events(call, self.chunks(items, resp, checked=False, texts=front.plain_texts(ex)))
        try:
            completion = streamconv.aggregate_chat(self.chunks(items, resp))
        finally:
            resp.close()
        return self.translated(call, completion)

    def encode_whole(self, call: Call, payload: dict[str, Any] | bytes) -> Outgoing:
        try:
            completion = answer_completion(payload, call.planned.think)
        except ProxyError as err:
            raise self.answers.sanitized(err) from None
        if call.planned.client_stream:
            return self.events(call, streamconv.package_chat(completion, True))
        return self.translated(call, completion)

    def events(self, call: Call, chunks: Iterable[dict[str, Any]]) -> Outgoing:
        """A chat chunk stream as the front's SSE events."""
        front, ex = translation(call)
        ex.encoded_events = True
        return Outgoing(200, self.stream_headers(call), self.encoded(call, front, ex, front.stream(chunks, ex)))

    def chunks(self, items: Iterable[bytes | dict[str, Any]], resp: UpstreamResponse, checked: bool = True,
               texts: bool = False) -> Iterator[Any]:
        """The upstream's events (bytes as read, or chunks a filter made) parsed; an upstream error event or a
        broken stream becomes a (sanitized) ProxyError. Their shape is checked here unless `checked` is False (a
        reader that checks each chunk itself). `texts`: an event that carries text alone comes as that text, a
        str (plain_chunks.py), for a door whose stream takes it so."""
        hits = misses = 0
        plain_text = PlainReader().read if texts else None
        try:
            for item in items:
                if isinstance(item, bytes):
                    if texts:
                        text = plain_text(item)  # type: ignore[misc]
                        if text is not None:
                            hits += 1
                            yield text
                            continue
                        misses += 1
                        texts = misses <= hits + MISSES
                    chunk = event_chunk(item)
                else:
                    chunk = item
                if chunk is None:
                    continue
                if "error" in chunk:
                    streamconv.raise_if_error(chunk)
                yield check_chunk(chunk) if checked else chunk
        except READ_ERRORS as exc:
            raise self.answers.sanitized(stream_error(exc, resp.url, self.read_timeout)) from None
        except ProxyError as err:  # a provider's decoder may quote what the upstream sent (DashScope's do)
            raise self.answers.sanitized(err) from None

    def encoded(self, call: Call, front: Front, ex: Exchange,
                events: Iterable[dict[str, Any] | bytes]) -> Iterator[bytes]:
        swap, encode, texts = long_strings.swap, front.encode_event, front.texts_in_events
        try:
            for event in events:
                if isinstance(event, bytes):  # encoded by the door (Exchange.encoded_events)
                    yield event
                elif texts and swap(event)[1]:  # a long text in it: written a slice at a time
                    yield from front.encode_pieces(event)
                else:
                    yield encode(event)
        finally:
            out = call.outcome
            out.output, out.usage, out.usage_estimated = ex.output, ex.usage, ex.usage_estimated
            if ex.cut:
                log.warning("stream %s: its output passed what the %s door keeps for its closing events (%d "
                            "characters, MAX_SSE_EVENT_BYTES): ended as incomplete", call.client.request_id,
                            front.name, ex.keep)
            if ex.error is not None and not call.outcome.client_left:  # a departure's cut: no upstream failure (499)
                call.outcome.status = ex.error.status
                log.warning("stream %s ended with an error: %s", call.client.request_id, ex.error.message)

    def error_event(self, call: Call, err: ProxyError) -> bytes:
        """A stream that failed before its first chunk, in the front's own events (start, then the error)."""
        front, ex = translation(call)
        call.outcome.status = err.status

        def failing() -> Iterator[dict[str, Any]]:
            raise err
            yield  # a generator that raises at its first step

        return b"".join(self.encoded(call, front, ex, front.stream(failing(), ex)))

    def translated(self, call: Call, completion: dict[str, Any]) -> Outgoing:
        front, ex = translation(call)
        obj = front.from_chat(completion, ex)
        out = call.outcome
        out.usage, out.usage_estimated, out.output = ex.usage, ex.usage_estimated, obj
        return Outgoing(200, self.headers(call, [("Content-Type", JSON_TYPE)]), dumps(obj))

    def stream_headers(self, call: Call) -> list[tuple[str, str]]:
        """The headers of the front's stream (its Content-Type: Front.stream_type)."""
        front, ex = translation(call)
        return self.headers(call, [("Content-Type", front.stream_type(ex))] + SSE_HEADERS[1:])

    def keepalive_beat(self, call: Call) -> bytes:
        front, ex = translation(call)
        return front.keepalive_for(ex)

    def headers(self, call: Call, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The answer's headers, with the request id where the door's clients read it (Front.id_headers)."""
        front = front_named(call.client.front)
        named = front.id_headers(call.client.request_id) if front is not None else None
        return headers + list(named.items()) if named else headers


def translation(call: Call) -> tuple[Front, Exchange]:
    """The front door a translated call came in by, and its exchange."""
    front, ex = front_named(call.client.front), call.plan.exchange
    assert front is not None and isinstance(ex, Exchange), "only a translated call has a front door's answer"
    return front, ex
