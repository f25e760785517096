"""The answer side every door shares: relaying body bytes to the client, observing a call once it ended
(metrics, journals, logs, budgets), scrubbing configured secrets, and a whole answer as a parsed completion.

One Answers object per worker, shared by every deployment and door (the same observers see every call). The
sequence hands it the exchange's result and the door's encoder (chat_answers.py for the chat-completions door,
fronts/serve.py for the front doors: `delivered`); the encoder returns the answer it made, which is sent from
here, and the call observed. The filters and the relays write what they find through its `note_*` methods. The
observers are handed the call's frozen records (call_records.py: its start as sent, its end made here once),
never the call. It knows nothing of how a request was sent."""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from argoproxy.config.settings import Settings
from argoproxy.config.tracing_settings import tracing_on
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps, loads
from argoproxy.upstream.body_tap import BodyTap
from argoproxy.pipeline.answer_shape import CHECKED_FROM, check_completion, check_containers
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.call_records import CallEnd, CallStart, records, start_of
from argoproxy.pipeline.filters import ByteFilter, ModelName, ScrubSecrets
from argoproxy.edge.handoff import yield_point
from argoproxy.pipeline.think import ThinkConfig, transform_completion
from argoproxy.pipeline.backend import StreamItem
from argoproxy.pipeline.stream_usage import OutputCount, estimated_usage, prompt_tokens, usage_counts
from argoproxy.meter import counted
from argoproxy.spend import Pricer, counts_of
from argoproxy.redaction import Secrets, sanitize_message
from argoproxy.upstream import sse
from argoproxy.upstream.client import READ_ERRORS
from argoproxy.upstream.wire import UpstreamResponse

if TYPE_CHECKING:
    from argoproxy.pipeline.door_api import AnswerEncoder, Exchanged

log = logging.getLogger("cot_proxy")

JSON_TYPE = "application/json"
YIELD_EVERY = 64  # relayed pieces between turns given to the worker's other requests (gevent)

Observer = Callable[[CallStart, CallEnd], None]  # a finished call, as its two records
StreamObserver = Callable[[CallStart], None]  # an answer relayed as it comes starts


class Answers:
    def __init__(self, settings: Settings) -> None:
        self.observers: list[Observer] = []
        self.stream_hooks: list[StreamObserver] = []  # a relayed body starts (metrics: streams in flight)
        # JOURNAL_BODY_BYTES when journals are on (LOG_DIR; 0: off): answers are assembled and tapped for them up
        # to there; metrics need only usage.
        self.journal_bytes = settings.journal_body_bytes if settings.log_dir else 0
        self.secrets = Secrets.from_settings(settings)  # never sent to a client, whatever the route
        # What every answer's bytes pass on their way out, in this order (pipeline/filters.py).
        self.scrub = ScrubSecrets(self.secrets)
        self.byte_filters: list[ByteFilter] = [ModelName(), self.scrub, OutputTap(self.journal_bytes)]
        # Tracing (tracing/tracer.py): what the upstream's answer says of itself is read for the spans (its
        # messages too with TRACING_CONTENT); off, nothing is read.
        self.reads_facts = tracing_on(settings.tracing, os.environ)
        self.reads_content = self.reads_facts and settings.tracing_content
        self.pricer = Pricer(settings.prices)  # what calls cost (its table read when the first one is priced)

    # ---------------------------------------------------------------- what the encoders found
    @staticmethod
    def note_usage(call: Call, usage: Any, estimated: bool | None = None) -> None:
        """The answer's usage (`estimated`: counted by the proxy, no usage came; None: as it was)."""
        out = call.outcome
        out.usage = usage
        if estimated is not None:
            out.usage_estimated = estimated

    @staticmethod
    def note_facts(call: Call, facts: Any) -> None:
        """What the upstream's answer said of itself (pipeline/answer_facts.py), for tracing."""
        call.outcome.facts = facts

    @staticmethod
    def note_upstream_output(call: Call, output: Any) -> None:
        """The upstream's answer before the proxy's transforms (journals; filters.py's upstream copy)."""
        call.outcome.upstream_output = output

    def produced(self, call: Call, status: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Bytes the proxy makes itself (a background response followed, state/background.py), counted and the
        call observed once they end or the client leaves."""
        call.outcome.status = status
        return self._produced(call, chunks)

    def _produced(self, call: Call, chunks: Iterable[bytes]) -> Iterator[bytes]:
        out = call.outcome
        try:
            for data in chunks:
                out.bytes_out += len(data)
                yield data
        finally:
            self.observe(call)

    def finished(self, call: Call, data: bytes) -> bytes:
        """A whole answer's bytes as they go to the client: through the byte filters, and counted."""
        for f in self.byte_filters:
            data = f.whole(call, data)
        call.outcome.bytes_out = len(data)
        return data

    def delivered(self, call: Call, encoder: AnswerEncoder, exchanged: Exchanged) -> Answer:
        """The exchange's result in the door's format (`encoder`), sent: a whole body through the byte filters,
        counted and the call observed; a stream relayed as it comes, observed when it ends."""
        status, headers, body = encoder.encode(call, exchanged)
        call.outcome.status = status
        if isinstance(body, bytes):
            data = self.finished(call, body)
            self.observe(call)
            return Answer(data, status, headers)
        assert exchanged.resp is not None  # a stream relays an upstream's answer
        return Answer(self.relay(call, exchanged.resp, body), status, headers, direct_passthrough=True)

    def whole(self, call: Call, obj: dict[str, Any], headers: list[tuple[str, str]]) -> Answer:
        """An answer object the proxy built, sent whole (secrets replaced) and observed."""
        call.outcome.status, call.outcome.output = 200, obj
        data = self.finished(call, dumps(obj))
        self.observe(call)
        return Answer(data, 200, headers)

    def relay(self, call: Call, resp: UpstreamResponse, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield body bytes to the client, through the byte filters; always close the upstream response (also
        when the client leaves)."""
        for f in self.byte_filters:
            chunks = f.stream(call, chunks)
        pause, pieces = yield_point(), 0
        try:
            if self.stream_hooks:
                call.outcome.relayed = True  # the end record says so: a stream observer counts it out
                start = start_of(call)
                for hook in self.stream_hooks:
                    hook(start)
            for data in chunks:
                if call.outcome.first_byte_at is None:
                    call.outcome.first_byte_at = time.perf_counter()
                call.outcome.bytes_out += len(data)
                yield data
                pieces += 1
                if pause is not None and not pieces % YIELD_EVERY:
                    pause(0)
        except GeneratorExit:  # the server stopped asking: the client left before the answer's end
            call.outcome.client_left = True
            raise
        except READ_ERRORS as exc:
            # Bytes relayed as they came (a forwarded download, a native front's stream) have no error event of
            # their own to end with: the client's connection is dropped before the body's end, so the answer
            # shows as cut (as nginx does) rather than whole. A reset is the one failure every Gunicorn worker
            # class closes the connection on without a word (it is the client's, most of the time).
            log.warning("upstream broke off %s: %s", call.client.request_id, type(exc).__name__)
            raise ConnectionResetError(errno.ECONNRESET, "the upstream broke off its answer") from None
        finally:
            try:
                close = getattr(chunks, "close", None)
                if close is not None:  # the encoder ends first: a stream its client left sets its usage as it ends
                    close()
            finally:
                resp.close()
                self.observe(call)

    def recorded(self, call: Call, answer: Answer) -> Answer:
        """An answer a route's handler made outside the sequence (a model list, a stored object, a page), counted
        and observed like every other: a whole one at once, secrets replaced (a model list rebuilt from an
        upstream's may quote its key); a streamed one when it ends."""
        out = call.outcome
        if out.observed:
            return answer
        if answer.is_streamed:
            answer.response = self.produced(call, answer.status_code, answer.chunks)
            return answer
        out.status = answer.status_code
        answer.set_data(self.secrets.data(answer.get_data()))
        out.bytes_out = len(answer.get_data())
        self.observe(call)
        return answer

    def scrubbed(self, call: Call, response: Answer) -> Answer:
        """An answer a provider's own route built (ARGO's raw /v1/chat...), with configured secrets replaced
        like every other answer: streamed bodies through the scrubber, whole ones at once."""
        if not self.secrets:
            return response
        if response.is_streamed:
            response.response = self.scrub.stream(call, response.chunks)
        else:
            response.set_data(self.scrub.whole(call, response.get_data()))
        return response

    def sanitized_event(self, item: bytes) -> bytes:
        """An upstream SSE event holding an error, with its message cleaned of keys (others pass as they are)."""
        obj = sse.sse_object(item)
        err = obj.get("error") if obj is not None else None
        if obj is None:
            return item
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            err["message"] = sanitize_message(err["message"], self.secrets.texts)
        elif isinstance(err, str):
            obj["error"] = sanitize_message(err, self.secrets.texts)
        else:
            return item
        return sse.encode(obj)

    def sanitized(self, err: ProxyError) -> ProxyError:
        """An upstream's error for a client: its message, and the headers it relays (WWW-Authenticate, Retry-After),
        without secrets (a WWW-Authenticate realm quoted the upstream's key)."""
        err.message = sanitize_message(err.message, self.secrets.texts)
        if err.headers:
            err.headers = dict(self.secrets.headers(list(err.headers.items())))
        return err

    def completion_of(self, call: Call, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        """A whole answer as a parsed completion through the think transform (an error object in it: a 502)."""
        try:
            return completion(payload, call.planned.think)
        except ProxyError as err:
            raise self.sanitized(err) from None

    def abandon(self, call: Call) -> None:
        """The client of a kept-alive stream left: record the call as it stands and cut the upstream off (a
        helper may be blocked reading it)."""
        call.outcome.client_left = True
        self.observe(call)
        resp = call.outcome.upstream_response
        if resp is not None:
            resp.cut()

    def observe(self, call: Call) -> None:
        if call.outcome.observed:
            return
        call.outcome.observed = True
        plan = call.plan
        if call.outcome.usage is None and (plan.team_key is not None or plan.key_limit is not None
                                           or call.planned.meter is not None):
            # an answer is never free: the estimate a team key is charged, which /metrics, /ui and the journal say
            prompt, completion = answer_tokens(call)
            if prompt or completion:
                call.outcome.usage, call.outcome.usage_estimated = estimated_usage(prompt, completion), True
        out = call.outcome
        if out.usage is not None:
            counts = counts_of(out.usage)  # read once: priced, and the meter's one reading that every record takes
            if counts:
                self.price(call, counts)
            out.used = counted(counts, out.usage_estimated, out.cost)
        if call.outcome.client_left:
            # nginx's 499 on every door, whatever the cut it caused upstream looked like (a 502 from the read the
            # proxy broke off, 0 before the first upstream byte, or the 200 a stream began with)
            call.outcome.status = 499
            log.info("request %s: the client closed its connection before the answer's end (499)",
                     call.client.request_id)
        if not self.observers:
            return
        start, end = records(call)  # what every observer reads: never the live call
        for observer in self.observers:
            try:
                observer(start, end)
            except Exception:  # an observer must never break an answer
                log.exception("observer failed")


    def price(self, call: Call, counts: dict[str, int]) -> None:
        """The call's cost, once, from its usage: at the rates of the day it arrived, for the model sent upstream
        (else the one that served, else the one asked for), as its deployment is priced (argoproxy/spend/)."""
        plan, out = call.plan, call.outcome
        names = model_names(call.planned.upstream_model, out.served_model, plan.model)
        arrived = time.time() - (time.perf_counter() - call.client.started)
        try:
            out.cost = self.pricer.cost_of(counts, names, out.price_source, arrived)
        except Exception:  # noqa: BLE001 - pricing must never break an answer
            log.exception("request %s not priced", call.client.request_id)


def model_names(sent: Any, served: Any, asked: Any) -> tuple[str, ...]:
    """The names a call's model is priced by, each once, in this order: the one sent upstream, the one that served,
    the one asked for (what is not a name left out)."""
    if sent == served == asked or (served is None and sent == asked):  # one name, as most calls have
        return (sent,) if isinstance(sent, str) and sent else ()
    names: tuple[str, ...] = ()
    for name in (sent, served, asked):
        if isinstance(name, str) and name and name not in names:
            names += (name,)
    return names


class OutputTap:
    """Journals: the answer bytes sent to the client, measured and hashed (up to JOURNAL_BODY_BYTES kept); a
    whole answer longer than that is recorded as bytes (prefix, length, hash) instead of its object. The last
    byte filter (filters.py's ByteFilter), kept here: it records what passed in the Outcome."""

    def __init__(self, journal_bytes: int) -> None:
        self.journal_bytes = journal_bytes

    def stream(self, call: Call, chunks: Iterable[bytes]) -> Iterable[bytes]:
        if not self.journal_bytes:
            return chunks
        tap = call.outcome.output_tap = BodyTap(self.journal_bytes)
        return tap.tapped(chunks)

    def whole(self, call: Call, data: bytes) -> bytes:
        if self.journal_bytes and len(data) > self.journal_bytes:
            call.outcome.output = data
        return data


def parse_upstream_json(payload: bytes) -> dict[str, Any]:
    if len(payload) > CHECKED_FROM:
        check_containers(payload)
    obj = try_json(payload)
    if not isinstance(obj, dict):
        raise ProxyError(502, "The upstream answer is not a JSON object.", code="upstream_bad_response")
    if isinstance(obj.get("error"), dict):
        raise ProxyError(502, sanitize_message(str(obj["error"].get("message") or "The upstream answered with an error.")),
                         code="upstream_error")
    return check_completion(obj)


def answer_tokens(call: Call) -> tuple[int, int]:
    """(input, output) tokens of an answer: its usage (OpenAI's or Anthropic's names), else, for an answer the
    upstream gave (a client that left mid-stream, an upstream that sends no usage), the count_tokens estimate
    of the request and of what was answered: an answer is never free. A token count is: no API bills it."""
    if call.plan.kind == "count_tokens":
        return 0, 0
    reading = call.outcome.used
    if reading is not None:  # the meter's reading, made as the call ended (Answers.observe)
        return reading.input, reading.output
    usage = call.outcome.usage
    if isinstance(usage, dict):
        prompt, completion = usage_counts(usage)
        return (prompt if isinstance(prompt, int) else 0), (completion if isinstance(completion, int) else 0)
    status = call.outcome.upstream_status
    if status is None or not 200 <= status < 300 or not isinstance(call.planned.body, dict) or not call.planned.body:
        return 0, 0  # no request read (a forwarded GET, a poll of work done before): nothing estimated, not even
        # the chat template's overhead
    asked = call.plan.asked.read_worst if call.plan.asked is not None else None
    media = asked.media_tokens if asked is not None else 0  # its images, audio and files, as the meter read them
    if call.planned.meter is not None:  # a chat stream: what it relayed so far
        settled, estimated = call.planned.meter.settled(call.planned.body)
        if settled is not None:
            return settled.get("prompt_tokens", 0) + (media if estimated else 0), settled.get("completion_tokens", 0)
    output = OutputCount()
    answer = call.outcome.output
    for choice in (answer.get("choices") if isinstance(answer, dict) else None) or ():
        if isinstance(choice, dict):
            output.add_delta(choice.get("message") or choice)
    return prompt_tokens(call.planned.body) + media, output.total()


def completion(payload: dict[str, Any] | bytes, think: ThinkConfig | None) -> dict[str, Any]:
    """A whole answer as a parsed completion through the think transform (an error object in it: a 502, its
    message for the caller to clean of secrets)."""
    obj = check_completion(payload) if isinstance(payload, dict) else parse_upstream_json(payload)
    if think is not None:
        transform_completion(obj, think)
    return obj


def try_json(payload: bytes | None) -> Any:
    try:
        return loads(payload) if payload is not None else None
    except (ValueError, UnicodeDecodeError):
        return None
