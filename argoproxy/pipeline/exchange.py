"""The sequence's exchange with its upstream, the one step every route takes there (an API call's deployment,
native relay, a forwarded path, a backend's own route): for an API call, encode its Planned (the backend's
`encode`, or its own requests: `complete`), send (MAX_UPSTREAM_CALLS over every attempt; a parameter the upstream
refused left out once; a stream that ended before its first event asked again whole), classify the status (an
error becomes the ProxyError the client gets), and decode what comes back (the backend's decoders, then the
stream's filters), returned as one value for the door's encoder (door_api.py's Exchanged). It keeps the Outcome's
record of the exchange: the request sent, the response, when it came, the deployment that serves; and it makes
the call's start record as it sends (call_records.py: the plan as sent, which the observers read)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.pipeline import planning
from argoproxy.pipeline.adapt import TYPES_TAKEN, refused_param, schema_as_json_object
from argoproxy.pipeline.answer_facts import whole_facts
from argoproxy.pipeline.answers import try_json
from argoproxy.pipeline.backend import Backend as BaseBackend
from argoproxy.pipeline.call_records import started
from argoproxy.pipeline.door_api import Exchanged
from argoproxy.pipeline.guard import serves_model
from argoproxy.turns import under_gevent
from argoproxy.upstream.body_tap import BodyTap
from argoproxy.upstream.client import READ_ERRORS, CallBudget, replayable, stream_error
from argoproxy.upstream.relay import redirect_error
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, framed, unframed_end

if TYPE_CHECKING:
    from argoproxy.pipeline.answers import Answers
    from argoproxy.pipeline.backend import Backend, StreamItem
    from argoproxy.pipeline.call import Call, Outcome
    from argoproxy.pipeline.filters import ItemFilter
    from argoproxy.upstream.client import Upstream

log = logging.getLogger("cot_proxy")

REFUSALS = (400, 422, 500)  # statuses a refused request comes back with (llama-cpp-python's validation: 500)
# The most of an answer asked again whole for a stream (DeploymentExchange.asked_whole) read at once: what llama.cpp
# answers that way is a tool call or a short text; a stream's memory stays bounded whatever the upstream sends.
WHOLE_FOR_A_STREAM = 8 * 1024 * 1024

ErrorReader = Callable[["Call", UpstreamResponse], ProxyError]


@dataclass(frozen=True)
class Sending:
    """How a route's exchange with its upstream differs from an API call's (the differences as data)."""
    retries_refused: bool = True  # a 400 naming an optional parameter is sent once more without it
    taps: bool = True  # journals hash the upstream's answer bytes as they are read
    relays_status: bool = False  # redirects, and a HEAD's errors, go to the client as they came


API_SENDING = Sending()  # an API call on its deployment; native relay
FORWARD_SENDING = Sending(retries_refused=False, taps=False, relays_status=True)  # a forwarded path: bytes as sent
ROUTE_SENDING = Sending(retries_refused=False)  # a backend's own route (ARGO's /v1/chat...): its body as built


class DeploymentExchange:
    """One deployment's exchange: its upstream client, its backend's encoding, error reading and decoders, its
    prices; the stream's filters and what the observers ask read of the answer (journals, tracing)."""

    def __init__(self, upstream: Upstream, backend: Backend, answers: Answers, price_source: Any,
                 max_upstream_calls: int, filters: Iterable[ItemFilter] = (), whole_most: int = WHOLE_FOR_A_STREAM
                 ) -> None:
        self.upstream, self.backend, self.answers = upstream, backend, answers
        self.price_source, self.max_calls = price_source, max_upstream_calls
        self.filters = tuple(filters)  # the stream's, in order (filters.py)
        self.whole_most = whole_most  # an answer asked again whole for a stream: read up to this
        self.completes = type(backend).complete is not BaseBackend.complete  # asked only of a backend that has it

    def exchanged(self, call: Call) -> Exchanged:
        """An API call's exchange, its result a value for the door's encoder: the answer the backend assembled
        from requests of its own (`complete`), else the attempt as the backend encodes its Planned, sent and
        decoded."""
        if self.completes:  # a backend that answers some calls with several upstream requests
            whole = self.backend.complete(call, RouteSend(self, call))
            if whole is not None:
                self.read_facts(call, whole)
                return Exchanged(None, whole, assembled=True)
        return self.attempt(call)

    def attempt(self, call: Call, most: int | None = None) -> Exchanged:
        """Encode, send, decode (`most`: an answer asked again whole for a stream, on a connection of its own, read
        up to that). A stream that ends before its first event is asked again whole (`asked_whole`)."""
        req = self.backend.encode(call)
        if most is not None:
            req = dataclasses.replace(req, fresh_connection=True, max_bytes=most)
        resp = self.response(call, req)
        if not call.planned.upstream_stream:
            return Exchanged(resp, self.decoded_whole(call, resp))
        try:
            items = self.decoded_stream(call, resp)
        except ProxyError as err:
            if not self.asks_again(call, req, resp, err):
                raise
            return self.asked_whole(call)
        return Exchanged(resp, items=items)

    def asks_again(self, call: Call, req: UpstreamRequest, resp: UpstreamResponse, err: ProxyError) -> bool:
        """Is a stream that ended before its first event asked again whole (once, within MAX_UPSTREAM_CALLS)?"""
        if err.code != "upstream_stream_incomplete" or call.outcome.asked_whole:
            return False
        if not framed(resp) and not replayable(req):
            raise unframed_end(err) from None
        if under_gevent():  # nothing else ran since its end put the connection back: nobody took it yet
            resp.discard()
        return bool(self.calls(call.outcome).left)  # MAX_UPSTREAM_CALLS not spent

    def asked_whole(self, call: Call) -> Exchanged:
        """The upstream ended its stream before its first event: asked once more without streaming, the whole
        answer then streamed to the client. llama.cpp's server does this whenever its model chooses a tool
        under `tool_choice: auto` ("Automatic streaming tool choice is not supported", raised after the
        stream's headers), so every agent's tool round trip would end there."""
        log.warning("the upstream ended its stream before its first event; asking again without streaming")
        call.outcome.asked_whole = True  # once
        call.planned = planning.whole_again(call.planned)
        # on a connection of its own: the stream's, closed a moment later by uvicorn, may still be in the pool;
        # read whole for a client that streams, so within a stream's bound, not MAX_RESPONSE_BYTES (a 59 MB
        # answer cost a worker +277 MB, four at once 1 GB)
        try:
            return self.attempt(call, self.whole_most)
        except ProxyError as err:
            if err.code != "upstream_response_too_large":
                raise
            raise ProxyError(502, f"The upstream ended its stream before its first event, and its answer asked "
                                  f"again whole is larger than a stream's is read whole ({self.whole_most} bytes).",
                             code="upstream_response_too_large") from None

    def response(self, call: Call, req: UpstreamRequest, sending: Sending = API_SENDING,
                 error: ErrorReader | None = None) -> UpstreamResponse:
        """Send and classify the upstream's status. An answer under 300 is the caller's; a redirect or an error
        becomes the ProxyError the client gets (the backend's reading of it, or `error`'s), secrets removed."""
        out = call.outcome
        out.upstream_request, out.price_source = req, self.price_source
        started(call)  # the plan as sent (again for a fallback's attempt, or a stream asked again whole)
        resp = self.send(call, req, sending.retries_refused)
        journal_bytes = self.answers.journal_bytes
        if sending.taps and journal_bytes:  # journals: the answer's bytes measured and hashed as they are read
            out.upstream_tap = resp.tap = BodyTap(journal_bytes)
        status = resp.status_code
        out.upstream_response, out.upstream_at, out.upstream_status = resp, time.perf_counter(), status
        if status < 300 or (sending.relays_status and (status < 400 or call.client.method == "HEAD")):
            return resp
        with resp:  # sanitized: an upstream's error text may quote a key or a host
            err = self.answers.sanitized((error or self.backend.error)(call, resp) if status >= 400
                                         else redirect_error(resp))
        out.upstream_output = err.body()
        raise err

    def send(self, call: Call, req: UpstreamRequest, retries_refused: bool = True) -> UpstreamResponse:
        """Send upstream (the client's trace context goes with it: the upstream client's to add, per attempt);
        with `retries_refused`, a 400 naming an optional parameter the request holds is sent once more without
        it, and a JSON schema refused as a type the server does not know is sent once more in the shape it
        takes."""
        out = call.outcome
        budget = self.calls(out)
        resp = self.upstream.send(req, budget, call, call.plan.headers)
        if (not retries_refused or resp.status_code not in REFUSALS or req.body is None or out.param_retry
                or not budget.left):
            return resp
        retry = _refused_again(req, resp)
        if retry is None:
            return resp
        out.param_retry = True  # once per request, whichever deployment refused
        req, change, member, value = retry
        resp.close()
        call.planned = planning.refused(call.planned, change, member, value)
        started(call)  # the plan as sent again: without the member (X-Adapted-Params, the journal say so)
        log.info("%s: the upstream refused the request; sent again with %s", call.client.request_id, change)
        out.upstream_request = req
        return self.upstream.send(req, budget, call, call.plan.headers)

    def calls(self, out: Outcome) -> CallBudget:
        """The upstream calls a client request may still cost (MAX_UPSTREAM_CALLS), over every retry, deployment
        and fallback (routing starts it before its first attempt), kept in its Outcome."""
        budget = out.calls
        if budget is None:
            budget = out.calls = CallBudget(self.max_calls)
        return budget

    def decoded_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        """The upstream's stream as OpenAI chunks (raw SSE events or dicts) through the stream's filters (the
        think transform among them), its first item read now (an error the upstream reports at once is an HTTP
        error), kept for journals."""
        resp.bounded = not call.planned.client_stream  # aggregated into one answer: at most MAX_RESPONSE_BYTES
        try:
            items = _peeked(self.backend.decode_stream(call, resp))
        except BaseException:
            resp.close()
            raise
        for apply in self.filters:
            items = apply(call, items)
        return items

    def decoded_whole(self, call: Call, resp: UpstreamResponse) -> dict[str, Any] | bytes:
        """The upstream's whole answer, decoded (at most MAX_RESPONSE_BYTES) and kept for journals. The think
        transform is the encoder's: the chat path's skips parsing a body that cannot hold a tag."""
        resp.bounded = True
        try:
            payload = self.backend.decode(call, resp)
        except READ_ERRORS as exc:
            raise stream_error(exc, resp.url, self.upstream.read_timeout) from None
        finally:
            resp.close()
        if self.answers.journal_bytes:
            call.outcome.upstream_output = payload
        self.read_facts(call, payload)
        return payload

    def read_facts(self, call: Call, payload: dict[str, Any] | bytes) -> None:
        """Tracing: the facts of a whole upstream answer, read before the encoder transforms it."""
        answers = self.answers
        if answers.reads_facts:
            call.outcome.facts = whole_facts(payload, answers.reads_content)


class RouteSend:
    """pipeline/backend.py's Send: a backend's own route sends through the sequence's exchange (ROUTE_SENDING) and
    names the model it serves, which the sequence keeps in the call's records."""

    __slots__ = ("exchange", "call")

    def __init__(self, exchange: DeploymentExchange, call: Call) -> None:
        self.exchange, self.call = exchange, call

    def __call__(self, req: UpstreamRequest, error: ErrorReader | None = None) -> UpstreamResponse:
        return self.exchange.response(self.call, req, ROUTE_SENDING, error)

    def serves(self, model: str | None, upstream_model: str | None) -> None:
        serves_model(self.call, model)
        self.call.planned = planning.served_by_route(self.call.planned, upstream_model)


def _refused_again(req: UpstreamRequest, resp: UpstreamResponse) -> tuple[UpstreamRequest, str, str, Any] | None:
    """The request to send once more, what changed, and the member and its new value (None: left out): without
    the optional parameter a 400 names, or with a JSON schema in the shape the server takes; None when the
    refusal names nothing the proxy can change."""
    text = resp.content[:8192].decode("utf-8", "replace")
    if resp.status_code != 400 and TYPES_TAKEN not in text:  # a 422 or 500 is read for one refusal only
        return None
    body = try_json(req.body)
    if not isinstance(body, dict):
        return None
    param = refused_param(body, text) if resp.status_code == 400 else None
    if param is not None:
        del body[param]
        change, member, value = f"{param}=dropped", param, None
    else:
        fmt = schema_as_json_object(body, text)
        if fmt is None:
            return None
        body["response_format"] = fmt
        change, member, value = "response_format=json_object", "response_format", fmt
    return dataclasses.replace(req, body=dumps(body)), change, member, value


def _peeked(items: Iterator[StreamItem]) -> Iterator[StreamItem]:
    """Read the first item now, so an error the upstream reports at once is an HTTP error, not an SSE event."""
    try:
        first = next(items)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), items)
