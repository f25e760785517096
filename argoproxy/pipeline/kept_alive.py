"""A stream answered with SSE keepalives while its upstream has not answered yet (edge/keepalive.py): one
deployment's answer, or routing's attempts over several. The headers go out when the stream commits, naming the
deployment then in flight; a stream that fails before an answer ends with its door's error event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from argoproxy.edge import keepalive
from argoproxy.errors import ProxyError, named
from argoproxy.pipeline.served import SERVED_BY, SERVED_MODEL

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Answer
    from argoproxy.pipeline.answers import Answers
    from argoproxy.pipeline.call import Call
    from argoproxy.pipeline.door_api import AnswerEncoder

HeadersOf = Callable[["Call", "AnswerEncoder"], Any]


class CommitHeaders:
    """The headers of a stream committed early (keepalives while the upstream is slow), read at that moment:
    they name the deployment then in flight. Should it fail after that (routed), the one that serves is in the
    journal and the metrics; a header already sent cannot change (docs/routing.md)."""

    def __init__(self, call: Call, encoder: AnswerEncoder) -> None:
        self.call, self.encoder = call, encoder

    def __iter__(self) -> Iterator[tuple[str, str]]:
        out = self.call.outcome
        headers = self.encoder.stream_headers(self.call)
        if out.deployment is not None and out.served_header is not None:
            headers = [*headers, (SERVED_MODEL, out.served_header), (SERVED_BY, out.deployment)]
        return iter(headers)


def streamed(call: Call, produce: Callable[[], Answer], encoder: AnswerEncoder, answers: Answers, seconds: float,
             headers_of: HeadersOf | None = None) -> Answer:
    """`produce`'s answer with keepalives every `seconds` until it comes; `headers_of(call, encoder)`: the headers
    read when the stream commits (default: the encoder's, with the deployment then in flight)."""
    headers = (headers_of or CommitHeaders)(call, encoder)
    return keepalive.streamed(produce, seconds, headers, lambda err: failed(call, encoder, answers, err),
                              lambda: answers.abandon(call), encoder.keepalive_beat(call), call.server_write)


def failed(call: Call, encoder: AnswerEncoder, answers: Answers, err: ProxyError) -> bytes:
    """The error event of a stream committed while its upstream had not answered yet, which failed before an
    answer: the call ends with it, recorded (journals, metrics, the request line) as an error answer is."""
    event = encoder.error_event(call, err)
    if not call.outcome.observed:
        body = err.body()
        call.outcome.output = body
        named(body["error"], call.client.request_id, call.client.client_request_id)  # in place: the body noted
        answers.observe(call)
    return event
