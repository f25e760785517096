"""Answers relayed as they come, never parsed: a door's own API served by the upstream itself (native relay) and
a forwarded path (bytes up, bytes down). Secrets are removed from what passes; the usage an answer carries is
read from its bytes as they pass when a key's budget counts it or its answer costs money."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable, Iterator

from argoproxy.edge.header_policy import response_headers
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.pipeline.planning import counts_tokens
from argoproxy.pipeline.stream_usage import native_usage
from argoproxy.redaction import sanitize_message
from argoproxy.upstream.client import READ_ERRORS, stream_error
from argoproxy.upstream.relay import error_headers
from argoproxy.upstream.wire import read_chunks

if TYPE_CHECKING:
    from argoproxy.meter import Worst
    from argoproxy.pipeline.answers import Answers
    from argoproxy.pipeline.call import Call
    from argoproxy.upstream.wire import UpstreamResponse

SMALL_BODY = 256 * 1024  # pass-through bodies up to this size are relayed in one piece


class Relay:
    """The answer side of a relayed exchange: the shared Answers (secrets, journals, usage), and the upstream's read
    timeout, named in a stalled read's error."""

    def __init__(self, answers: Answers, read_timeout: float) -> None:
        self.answers, self.read_timeout = answers, read_timeout

    def native(self, call: Call, resp: UpstreamResponse, body: dict[str, Any], counted: bool) -> Answer:
        """A door's API answered by the upstream itself, relayed as it comes (no think transform or stream-mode
        conversion); `counted`: its usage counts against the key, or its answer costs money (a token count's
        is not: its input_tokens are what was counted, not used)."""
        headers = self.answers.secrets.headers(response_headers(resp.headers, drop_encoding=True))
        call.outcome.status = resp.status_code
        chunks = self.first_read(resp, read_chunks(resp))
        if counted:  # read from the bytes as they pass
            chunks = native_usage(chunks, self.usage_noter(call), body)
        return Answer(self.answers.relay(call, resp, chunks), resp.status_code, headers, direct_passthrough=True)

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        """An upstream's error on a relayed API (native relay): its text as it came (secrets removed), its
        status, and the headers clients back off by."""
        text = sanitize_message(resp.content[:1 << 20].decode("utf-8", "replace"), self.answers.secrets.texts)
        return ProxyError(resp.status_code, text[:2000], code=f"upstream_{resp.status_code}", raw=text.encode(),
                          headers=error_headers(resp))

    def forwarded(self, call: Call, resp: UpstreamResponse, body: dict[str, Any] | None, charge: Worst | None
                  ) -> Answer:
        """A forwarded route's answer, bytes as they came. Charged to a key (`charged`): the usage its answer
        carries, else the estimate of `body` (the request, parsed) and of the texts answered; `charge`: what batch
        work is charged when it is accepted (the proxy never sees its answers: its reservation)."""
        answers = self.answers
        secrets = answers.secrets
        out_headers = secrets.headers(response_headers(resp.headers, drop_encoding=False))
        call.outcome.status = resp.status_code
        if charge is not None and resp.status_code < 300:  # accepted batch work: charged what it reserved
            answers.note_usage(call, {"input_tokens": charge.input, "output_tokens": charge.output}, True)
        length = resp.headers.get("Content-Length")
        # A compressed body cannot be scanned for secrets as it is: it goes out decoded instead.
        decode = bool(secrets) and _encoded(resp)
        if decode:
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-encoding"]
        if call.client.method == "HEAD" or resp.status_code in (204, 304):
            return self.bodiless(call, resp, out_headers, None if decode else length)
        # In one piece only as sent: a small compressed body can inflate a thousandfold (it streams instead).
        if not decode and length is not None and length.isdigit() and int(length) <= SMALL_BODY:
            return self.in_one_piece(call, resp, out_headers, body, charge is None and charged(call))
        chunks = self.first_read(resp, read_chunks(resp, decode=decode))
        if charged(call) and charge is None and (decode or not _encoded(resp)):  # its usage, read as it passes
            chunks = native_usage(chunks, self.usage_noter(call), body)
        return Answer(answers.relay(call, resp, chunks), resp.status_code, out_headers, direct_passthrough=True)

    def bodiless(self, call: Call, resp: UpstreamResponse, headers: list[tuple[str, str]], length: str | None
                 ) -> Answer:
        """A HEAD's answer, or a 204 or 304: no body. A HEAD's says the Content-Length a GET would get (its
        point), when the bytes go as they came (`length`; decoded, or never said: none)."""
        resp.close()
        self.answers.observe(call)
        if call.client.method == "HEAD":  # an iterator of no pieces: a body of bytes or a list is measured
            if length is not None and length.isdigit():
                headers = [*headers, ("Content-Length", length)]
            return Answer(iter(()), resp.status_code, headers)
        return Answer(b"", resp.status_code, headers)

    def in_one_piece(self, call: Call, resp: UpstreamResponse, headers: list[tuple[str, str]],
                     body: dict[str, Any] | None, counted: bool) -> Answer:
        """A small body sent as it came, read whole; `counted`: its usage counts against the key (one read)."""
        with resp:
            try:
                data = resp.raw.read(decode_content=False)
            except READ_ERRORS as exc:  # shorter than its Content-Length, or cut: nothing was sent yet
                raise self.cut_short(resp, exc) from None
            data = self.answers.finished(call, data)
        if counted:
            for _ in native_usage((data,), self.usage_noter(call), body):
                pass
        self.answers.observe(call)
        return Answer(data, resp.status_code, headers)

    def usage_noter(self, call: Call) -> Callable[[dict[str, int], bool], None]:
        """Where native_usage hands the usage it read from relayed bytes: the answer side's record of it."""
        note = self.answers.note_usage
        return lambda usage, estimated: note(call, usage, estimated)

    def first_read(self, resp: UpstreamResponse, body: Iterator[bytes]) -> Iterator[bytes]:
        """A relayed body with its first piece read now: a body cut before its first byte is a 502 of the door's
        own (the servers send a head only with the first body bytes, so nothing has gone out yet; relayed, the
        client got an empty reply). Cut later, the relay drops the client's connection (Answers.relay)."""
        try:
            first = next(body, b"")
        except READ_ERRORS as exc:
            resp.close()
            raise self.cut_short(resp, exc) from None
        return itertools.chain((first,), body) if first else body

    def cut_short(self, resp: UpstreamResponse, exc: Exception) -> ProxyError:
        """A body the upstream broke off before any of it went to the client: a 502 of the door's own."""
        return stream_error(exc, resp.url, self.read_timeout)


def charged(call: Call) -> bool:
    """Does a forwarded answer's usage count against the key (a team key; key_limits' tpm)? For a POST (a
    generation: a local server's own route, an image or a transcription), not for reading back an object that
    reports the usage of work done before (polling a batch, a stored response, a file's lines)."""
    return call.client.method == "POST" and counts_tokens(call)


def _encoded(resp: UpstreamResponse) -> bool:
    return resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
