"""The one way through: parse + validate -> LLM_PARAMS -> backend (model, encode) -> upstream ->
backend (decode) -> think tags, stream <-> non-stream -> JSON or SSE to the client; observers see both ends."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import time
from typing import Any, Callable, Iterable, Iterator

from argoproxy.pipeline import keepalive, streamconv, upstream_messages
from argoproxy.upstream import sse
from argoproxy.pipeline.adapt import adapt_request, refused_param
from argoproxy.pipeline.answer_shape import check_completion
from argoproxy.observe.body_tap import BodyTap
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.capabilities import CapabilityTable
from argoproxy.edge.client_caches import BoundedCache
from argoproxy.errors import ProxyError
from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.header_policy import request_headers, response_headers
from argoproxy.jsonfast import dumps, loads
from argoproxy.config.llm_params import apply_rule, starts_inside
from argoproxy.providers.base import Backend, StreamItem
from argoproxy.redaction import Secrets, sanitize_message
from argoproxy.edge.request_body import parse_object
from argoproxy.config.settings import Settings
from argoproxy.pipeline.stream_usage import Meter
from argoproxy.pipeline.think import StreamThink, ThinkConfig, transform_completion
from argoproxy.upstream.client import (READ_ERRORS, Upstream, UpstreamRequest, UpstreamResponse, read_chunks,
                                stream_error)
from argoproxy.edge.validation import check_allowed_model, validate

log = logging.getLogger("cot_proxy")

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}
JSON_TYPE = "application/json"
THINK_CACHE = 256  # think configurations kept, by (model, upstream model)
SMALL_BODY = 256 * 1024  # pass-through bodies up to this size are relayed in one piece
ADAPTED_KINDS = frozenset({"chat", "completions"})  # requests with sampling and reasoning parameters

Observer = Callable[[Call], None]


class Gateway:
    def __init__(self, settings: Settings, backend: Backend, upstream: Upstream) -> None:
        self.settings = settings
        self.backend = backend
        self.upstream = upstream
        self.observers: list[Observer] = []
        # JOURNAL_BODY_BYTES when journals are on (0: off): answers are assembled and tapped for them up to there;
        # metrics need only usage.
        self.journal_bytes = 0
        self.stream_hooks: list[Observer] = []  # called when a relayed body starts (metrics: streams in flight)
        self.secrets = Secrets.from_settings(settings)  # never sent to a client, whatever the route
        self._secrets = self.secrets.texts
        self._think_cache: BoundedCache[ThinkConfig | None] = BoundedCache(THINK_CACHE)  # keyed by client names
        self.capabilities = CapabilityTable(settings.backend, settings.model_capabilities)
        from argoproxy.fronts.serve import FrontService
        self.fronts = FrontService(self)  # the Responses and Messages front doors
        self.routing: Any = None  # argoproxy/routing/dispatch.py when `models` is configured
        self.limiter: Any = None  # argoproxy/routing/key_limits.py when `key_limits` is configured
        self.team_keys: Any = None  # argoproxy/teamkeys/service.py when auth is on

    def for_deployment(self, backend: Backend, upstream: Upstream, settings: Settings) -> "Gateway":
        """This gateway as one routed deployment sees it: its own backend, upstream and settings; the same
        observers, hooks and secrets."""
        view = copy.copy(self)
        view.settings, view.backend, view.upstream = settings, backend, upstream
        view._think_cache = BoundedCache(THINK_CACHE)
        view.capabilities = CapabilityTable(settings.backend, settings.model_capabilities)  # with the entry's own
        view.routing = None
        from argoproxy.fronts.serve import FrontService
        view.fronts = FrontService(view)  # the front doors' answer side, on this deployment's backend
        return view

    # ---------------------------------------------------------------- entry points
    def new_call(self, req: Request, kind: str, path: str) -> Call:
        return Call(kind, req.method, path, "", req.headers, request_id=req.request_id, request=req)

    def api(self, call: Call) -> Answer:
        """chat/completions, completions, embeddings."""
        call.raw_body = read_request_body(call, self.settings.max_body_bytes)
        call.body = parse_object(call.raw_body)
        if isinstance(call.body.get("model"), str):  # named in metrics and journals when refused below, too
            call.model = call.body["model"]
        if not self.backend.transparent:  # a transparent backend leaves parameter checks to the upstream
            validate(call.kind, call.body)
        self.admit(call)
        if self.routing is not None:
            return self.routing.api(call)
        self.plan(call)
        self.prepare(call)
        check_allowed_model(self.settings.allowed_models, call.upstream_model or call.model)
        whole = self.backend.complete(call)
        if whole is not None:
            return self.answer_object(call, whole)
        return self.finish(call, self.backend.encode(call))

    def admit(self, call: Call) -> None:
        """key_limits: count an API call against the budget of the client key it presented (429 over it)."""
        if self.limiter is not None:
            self.limiter.admit_call(call, call.request.presented_keys if call.request is not None else ())
        team_key = call.request.team_key if call.request is not None else None
        if team_key is not None:  # a team key: its model globs, rate limits and budget
            self.team_keys.admit_call(call, team_key)

    def routed(self, call: Call, asked: str) -> Answer:
        """An API call on one routed deployment (this gateway is its view; the allow-list was checked on the
        name the client asked for, which stays call.model)."""
        if call.kind not in self.backend.kinds:
            raise ProxyError(404, f"The {self.backend.name} backend serving {asked} does not serve /{call.path}.",
                             code="unknown_route")
        call.rule = None  # a retry: the previous deployment's rule must not stay
        self.plan(call)
        call.model = asked
        self.prepare(call)
        whole = self.backend.complete(call)
        if whole is not None:
            return self.answer_object(call, whole)
        return self.finish(call, self.backend.encode(call))

    def finish(self, call: Call, req: UpstreamRequest) -> Answer:
        """Send a prepared call upstream and answer the client (streams: with keepalives while it waits)."""
        every = self.settings.sse_keepalive
        if call.client_stream and every > 0 and "kept_alive" not in call.extra:  # routed: kept alive around attempts
            if call.exchange is not None:
                headers, beat = self.fronts.stream_headers(call), self.fronts.keepalive_beat(call)
            else:
                headers, beat = list(SSE_HEADERS.items()), keepalive.KEEPALIVE
            return keepalive.streamed(lambda: self.answer(call, req), every, headers,
                                      lambda err: self.error_event(call, err), lambda: self.abandon(call), beat)
        return self.answer(call, req)

    def answer(self, call: Call, req: UpstreamRequest) -> Answer:
        call.upstream_request = req
        resp = self.send(call, req)
        self.tap_upstream(call, resp)
        call.extra["upstream_response"] = resp
        call.extra["upstream_at"] = time.perf_counter()
        call.upstream_status = resp.status_code
        if resp.status_code >= 400:
            with resp:
                err = self.backend.error(call, resp)
            err.message = sanitize_message(err.message, self._secrets)
            call.upstream_output = err.body()
            raise err
        # Decoded and thought once, here; encoded by the client's door (a front door translates it back).
        encoder = self if call.exchange is None else self.fronts
        if call.upstream_stream:
            try:
                items = self.decoded_stream(call, resp)
            except ProxyError as err:
                if err.code != "upstream_stream_incomplete" or "asked_whole" in call.extra:
                    raise
                return self.ask_whole(call)
            return encoder.encode_stream(call, resp, items)
        return encoder.encode_whole(call, resp, self.decoded_whole(call, resp))

    def ask_whole(self, call: Call) -> Answer:
        """The upstream ended its stream before its first event: asked once more without streaming, the whole
        answer then streamed to the client. llama.cpp's server does this whenever its model chooses a tool
        under `tool_choice: auto` ("Automatic streaming tool choice is not supported", raised after the
        stream's headers), so every agent's tool round trip would end there."""
        log.warning("the upstream ended its stream before its first event; asking again without streaming")
        call.extra["asked_whole"] = True
        body = call.body
        body["stream"] = False
        body.pop("stream_options", None)
        call.upstream_stream = False
        call.body_changed = True
        return self.answer(call, self.backend.encode(call))

    def tap_upstream(self, call: Call, resp: UpstreamResponse) -> None:
        """Journals: the upstream's answer bytes are measured and hashed as they are read (argoproxy.observe.body_tap)."""
        if self.journal_bytes:
            call.upstream_tap = resp.tap = BodyTap(self.journal_bytes)

    def answered(self, call: Call, data: bytes) -> None:
        """A whole answer of these bytes goes to the client: counted, and a journal records the bytes (their
        prefix, length and hash) instead of the answer object when they are longer than it keeps."""
        call.bytes_out = len(data)
        if self.journal_bytes and len(data) > self.journal_bytes:
            call.output = data

    def passthrough(self, call: Call, url: str, headers: dict[str, str]) -> Answer:
        """A forwarded route (its body already read into call.raw_body): bytes up, bytes down."""
        body = call.raw_body
        call.upstream_request = UpstreamRequest(call.method, url, headers, body or None)
        resp = self.upstream.send(call.upstream_request)
        call.extra["upstream_at"] = time.perf_counter()
        call.upstream_status = resp.status_code
        if resp.status_code >= 400 and call.method != "HEAD":
            with resp:  # sanitized as on the API routes: an upstream's error text may quote a key or a host
                err = self.backend.error(call, resp)
            err.message = sanitize_message(err.message, self._secrets)
            raise err
        out_headers = self.secrets.headers(response_headers(resp.headers, drop_encoding=False))
        call.status = resp.status_code
        length = resp.headers.get("Content-Length")
        # A compressed body cannot be scanned for secrets as it is: it goes out decoded instead.
        decode = bool(self.secrets) and _encoded(resp)
        if decode:
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-encoding"]
        if call.method == "HEAD" or resp.status_code in (204, 304):
            resp.close()
            self.observe(call)
            return Answer(b"", resp.status_code, out_headers)
        # In one piece only as sent: a small compressed body can inflate a thousandfold (it streams instead).
        if not decode and length is not None and length.isdigit() and int(length) <= SMALL_BODY:
            with resp:
                data = self.secrets.data(resp.raw.read(decode_content=False))
            self.answered(call, data)
            self.observe(call)
            return Answer(data, resp.status_code, out_headers)
        return Answer(self.relay(call, resp, read_chunks(resp, decode=decode)), resp.status_code, out_headers,
                        direct_passthrough=True)

    # ---------------------------------------------------------------- request planning
    def plan(self, call: Call) -> None:
        """Stream modes, LLM_PARAMS and the think configuration for an API call; the backend's policy
        (does the upstream stream, do answer transforms apply) is asked here, once, before the body changes."""
        body = call.body
        model = body.get("model")
        call.model = model if isinstance(model, str) else None
        rule = self.settings.llm_params.rule_for(call.model) if self.settings.llm_params else None
        if rule is not None:
            call.rule = rule
            apply_rule(body, rule)
            call.body_changed = True
        if call.kind == "embeddings":
            return
        backend = self.backend
        if call.kind == "chat" and upstream_messages.normalize(body.get("messages"), backend.keeps_developer,
                                                               backend.tool_turn_content):
            call.body_changed = True
        call.client_stream = body.get("stream") is True
        options = body.get("stream_options")
        call.include_usage = call.client_stream and isinstance(options, dict) and options.get("include_usage") is True
        if call.client_stream and call.exchange is None and counts_tokens(call):
            self.metered(call, body)
        mode = self.settings.upstream_mode
        wanted = call.client_stream if mode == "off" else mode == "stream"
        call.upstream_stream = self.backend.upstream_streams(call, wanted)
        if call.upstream_stream != call.client_stream:
            body["stream"] = call.upstream_stream
            if call.upstream_stream:
                body["stream_options"] = {"include_usage": True}
            else:
                body.pop("stream_options", None)
            call.body_changed = True
        if self.backend.transforms_answers(call):
            call.think = self.think_config(call.model, body.get("model"))

    def metered(self, call: Call, body: dict[str, Any]) -> None:
        """A chat-door stream under a token budget: ask the upstream for usage (taken out again for a client
        that did not ask) and count the stream should none come (argoproxy/pipeline/stream_usage.py)."""
        call.extra["meter"] = Meter(strip=not call.include_usage)
        if not call.include_usage:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            call.include_usage = call.body_changed = True

    def prepare(self, call: Call) -> None:
        """The backend's preparation (model name, images), then the request adapted to what that model accepts."""
        self.backend.prepare(call)
        if call.kind in ADAPTED_KINDS:
            self.adapt(call, call.body, "chat", call.upstream_model or call.model)

    def adapt(self, call: Call, body: dict[str, Any], shape: str, upstream_model: str | None,
              supply_limit: bool = True) -> None:
        """Drop, clamp or convert what the model does not accept (capabilities.py, adapt.py); an unknown model's
        request goes as the client wrote it. The changes go to X-Adapted-Params and the journal."""
        caps = self.capabilities.lookup(upstream_model, call.model)
        if caps is None:
            return
        changes = adapt_request(body, caps, shape, supply_limit)
        if changes:
            call.body_changed = True
            call.extra["adapted"] = changes

    def send(self, call: Call, req: UpstreamRequest) -> UpstreamResponse:
        """Send upstream; a 400 naming an optional parameter the request holds is sent once more without it."""
        resp = self.upstream.send(req)
        if resp.status_code != 400 or req.body is None or "param_retry" in call.extra:
            return resp
        call.extra["param_retry"] = True
        retry = _without_refused(req, resp)
        if retry is None:
            return resp
        req, param = retry
        resp.close()
        call.extra.setdefault("adapted", []).append(f"{param}=dropped")
        log.info("%s: the upstream refused %s; sent again without it", call.request_id, param)
        call.upstream_request = req
        return self.upstream.send(req)

    def think_config(self, model: str | None, upstream_model: Any) -> ThinkConfig | None:
        key = (model, upstream_model if isinstance(upstream_model, str) else None)
        return self._think_cache.get(key, lambda: self._build_think(*key))

    def _build_think(self, model: str | None, upstream_model: str | None) -> ThinkConfig | None:
        s = self.settings
        rule = s.llm_params.rule_for(model) if s.llm_params else None
        mode = (rule.think_mode if rule and rule.think_mode else None) or s.think_mode
        if mode == "keep":
            return None
        inside = rule.think_starts_inside if rule and rule.think_starts_inside is not None else None
        if inside is None:
            inside = starts_inside(model) or starts_inside(upstream_model)
        return ThinkConfig(mode, (rule and rule.think_tag_start) or s.think_tag,
                           (rule and rule.think_tag_end) or s.think_end_tag, bool(inside))

    # ---------------------------------------------------------------- answers: decoded once
    def decoded_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        """The upstream's stream as OpenAI chunks (raw SSE events or dicts) through the think transform, its
        first item read now (an error the upstream reports at once is an HTTP error), kept for journals."""
        resp.bounded = not call.client_stream  # aggregated into one answer: at most MAX_RESPONSE_BYTES
        try:
            items = _peeked(self.backend.decode_stream(call, resp))
        except BaseException:
            resp.close()
            raise
        if self.journal_bytes:
            items = _captured(call, items)
        if call.think is not None:
            items = think_items(items, call.think)
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
        if self.journal_bytes:
            call.upstream_output = payload
        return payload

    def completion_of(self, call: Call, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        """A whole answer as a parsed completion through the think transform (an error object in it: a 502)."""
        try:
            obj = check_completion(payload) if isinstance(payload, dict) else parse_upstream_json(payload)
        except ProxyError as err:
            err.message = sanitize_message(err.message, self._secrets)
            raise
        if call.think is not None:
            transform_completion(obj, call.think)
        return obj

    # ---------------------------------------------------------------- answers: encoded for chat clients
    def encode_whole(self, call: Call, resp: UpstreamResponse, payload: dict[str, Any] | bytes) -> Answer:
        if type(payload) is bytes and not self.backend.transparent:
            try:
                check_upstream_body(payload)
            except ProxyError as err:
                err.message = sanitize_message(err.message, self._secrets)
                raise
        if call.client_stream:
            return self.sse_response(call, resp, self.packaged(call, self.completion_of(call, payload)))
        data = self.think_whole(call, payload)
        if self.secrets:
            data = self.secrets.data(data)
        call.status = resp.status_code
        self.answered(call, data)
        self.observe(call)
        return Answer(data, resp.status_code, self.json_headers(resp))

    def think_whole(self, call: Call, payload: dict | bytes) -> bytes:
        cfg = call.think
        if isinstance(payload, dict):
            if cfg is not None:
                transform_completion(payload, cfg)
            call.output = payload
            call.usage = payload.get("usage")
            return dumps(payload)
        if cfg is None or not (cfg.starts_inside or _mentions_tag(payload, cfg)):
            if self.journal_bytes and len(payload) <= self.journal_bytes:
                call.output = _try_json(payload)
                call.usage = call.output.get("usage") if isinstance(call.output, dict) else None
            elif self.observers:
                call.usage = usage_of(payload)
            return payload
        obj = _try_json(payload)
        if not isinstance(obj, dict) or not transform_completion(obj, cfg):
            call.output = obj
            call.usage = obj.get("usage") if isinstance(obj, dict) else None
            return payload
        call.output = obj
        call.usage = obj.get("usage")
        return dumps(obj)

    def answer_object(self, call: Call, obj: dict[str, Any]) -> Answer:
        """An answer the backend assembled itself."""
        data = self.secrets.data(dumps(obj))
        call.status, call.output, call.usage = 200, obj, obj.get("usage")
        self.answered(call, data)
        self.observe(call)
        return Answer(data, 200, [("Content-Type", JSON_TYPE)])

    def packaged(self, call: Call, obj: dict[str, Any]) -> Iterator[StreamItem]:
        """A whole answer as the chunks of a stream (client streams, upstream did not)."""
        if obj.get("object") == "text_completion":
            return streamconv.package_completion(obj, call.include_usage)
        return streamconv.package_chat(obj, call.include_usage)

    def encode_stream(self, call: Call, resp: UpstreamResponse, items: Iterable[StreamItem]) -> Answer:
        if call.client_stream:
            return self.sse_response(call, resp, items)
        try:
            obj = aggregate(call, items)
        finally:
            resp.close()
        call.status = 200
        data = self.secrets.data(dumps(obj))
        call.output, call.usage = obj, obj.get("usage")
        self.answered(call, data)
        self.observe(call)
        return Answer(data, 200, self.json_headers(resp, converted=True))

    def sse_response(self, call: Call, resp: UpstreamResponse, items: Iterable[StreamItem]) -> Answer:
        headers = response_headers(resp.headers, drop_encoding=True, replaced=SSE_HEADERS) \
            if self.backend.relay_headers else []
        headers = self.secrets.headers(headers)
        headers.extend(SSE_HEADERS.items())
        call.status = 200
        return Answer(self.relay(call, resp, self.encoded(call, items)), 200, headers, direct_passthrough=True)

    def encoded(self, call: Call, items: Iterable[StreamItem]) -> Iterator[bytes]:
        # Journals: the answer is assembled while what was sent stays under JOURNAL_BODY_BYTES (the relay's tap
        # measures it). Usage: only the last event that mentions it is kept, parsed once at the end.
        capture = StreamCapture(call.output_tap) if self.journal_bytes else None
        watch = bool(self.observers)
        last_usage: StreamItem | None = None
        meter: Meter | None = call.extra.get("meter")
        try:
            for item in items:
                if meter is not None:
                    item = meter.item(item)
                    if item is None:
                        continue
                if type(item) is bytes:
                    if b'"error"' in item:  # an upstream error event: its message may quote a key
                        item = self.sanitized_event(item)
                    if watch and b'"usage"' in item:
                        last_usage = item
                    if capture is not None:
                        capture.add(item)
                    yield item
                else:
                    if watch and item.get("usage"):
                        last_usage = item
                    if capture is not None:
                        capture.add(item)
                    yield sse.encode(item)
            yield sse.DONE
        except ProxyError as err:
            if not call.observed:  # observed already: the client left and the upstream was cut on purpose
                log.warning("stream %s ended with an error: %s", call.request_id, err.message)
            yield self.error_event(call, err)
        finally:
            if capture is not None:
                call.output = capture.result()
            if last_usage is not None:
                obj = sse_object(last_usage) if type(last_usage) is bytes else last_usage
                usage = obj.get("usage") if isinstance(obj, dict) else None
                call.usage = usage if isinstance(usage, dict) else None
            if meter is not None:
                call.usage, estimated = meter.settled(call.body)
                if estimated:
                    call.extra["usage_estimated"] = True

    def error_event(self, call: Call, err: ProxyError) -> bytes:
        """An error once a stream has begun: an SSE event in OpenAI's error shape, naming the request (a front
        door's own terminal events for its clients)."""
        call.status = err.status
        if call.exchange is not None:
            return self.fronts.error_events(call, err)
        body = err.body()
        body["error"]["request_id"] = call.request_id
        return sse.encode(body)

    def abandon(self, call: Call) -> None:
        """The client of a kept-alive stream left: record the call as it stands and cut the upstream off (a
        helper may be blocked reading it)."""
        self.observe(call)
        resp = call.extra.get("upstream_response")
        if resp is not None and not resp.raw.isclosed():  # a closed one may be back in the pool, in use
            try:
                resp.raw.shutdown()
            except Exception:  # noqa: BLE001 - already closed or never connected
                pass

    def sanitized_event(self, item: bytes) -> bytes:
        """An upstream SSE event holding an error, with its message cleaned of keys (others pass as they are)."""
        obj = sse_object(item)
        err = obj.get("error") if obj is not None else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            err["message"] = sanitize_message(err["message"], self._secrets)
        elif isinstance(err, str):
            obj["error"] = sanitize_message(err, self._secrets)
        else:
            return item
        return sse.encode(obj)

    def relay(self, call: Call, resp: UpstreamResponse, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield body bytes to the client; always close the upstream response (also when the client leaves).
        With secrets configured, every byte passes the scrubber (safe when a chunk splits a secret)."""
        scrubber = self.secrets.scrubber()
        if scrubber is not None:
            chunks = scrubber.scrub(chunks)
        if self.journal_bytes:
            call.output_tap = BodyTap(self.journal_bytes)
            chunks = call.output_tap.tapped(chunks)
        try:
            for hook in self.stream_hooks:
                hook(call)
            for data in chunks:
                if call.first_byte_at is None:
                    call.first_byte_at = time.perf_counter()
                call.bytes_out += len(data)
                yield data
        except READ_ERRORS as exc:
            log.warning("upstream broke off %s: %s", call.request_id, type(exc).__name__)
        finally:
            resp.close()
            self.observe(call)

    def scrubbed(self, response: Answer) -> Answer:
        """An answer a provider's own route built (ARGO's raw /v1/chat...), with configured secrets replaced
        like every other answer: streamed bodies through the scrubber, whole ones at once."""
        if not self.secrets:
            return response
        if response.is_streamed:
            response.response = self.secrets.scrubber().scrub(response.response)
        else:
            response.set_data(self.secrets.data(response.get_data()))
        return response

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

    def observe(self, call: Call) -> None:
        if call.observed:
            return
        call.observed = True
        for observer in self.observers:
            try:
                observer(call)
            except Exception:  # an observer must never break an answer
                log.exception("observer failed")


# ---------------------------------------------------------------- helpers on parsed data
def counts_tokens(call: Call) -> bool:
    """Is a token budget counting this call's usage (key_limits' tpm; a team key's tpm or budget)?"""
    limit, team = call.extra.get("key_limit"), call.extra.get("team_key")
    return bool(limit is not None and limit.tpm) or bool(team is not None and (team.tpm or team.budget))


def read_request_body(call: Call, max_bytes: int) -> bytes:
    """The client's request body, refusing more than max_bytes with a 413 (from its Content-Length, before
    reading it). Read from the server's input directly (Werkzeug's stream wrappers cost more than the read); a
    chunked body has no length and is cut and refused at the limit rather than forwarded truncated."""
    req = call.request
    stream = req.input
    length = req.content_length
    if length:
        if not length.isdigit():
            raise ProxyError(400, "The Content-Length header is not a number.", code="invalid_request")
        size = int(length)
        if size > max_bytes:
            raise _too_large(max_bytes)
        data = stream.read(size)
        if len(data) < size:
            raise ProxyError(400, "The request body ended before its Content-Length.", code="invalid_request")
        return data
    if not req.chunked:
        return b""  # no length and not chunked: HTTP/1.1 says there is no body
    parts, size = [], 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        parts.append(chunk)


def _too_large(max_bytes: int) -> ProxyError:
    return ProxyError(413, f"The request body is larger than the proxy accepts ({max_bytes} bytes).",
                      code="request_too_large")


def parse_upstream_json(payload: bytes) -> dict[str, Any]:
    obj = _try_json(payload)
    if not isinstance(obj, dict):
        raise ProxyError(502, "The upstream answer is not a JSON object.", code="upstream_bad_response")
    if isinstance(obj.get("error"), dict):
        raise ProxyError(502, sanitize_message(str(obj["error"].get("message") or "The upstream answered with an error.")),
                         code="upstream_error")
    return check_completion(obj)


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


def _without_refused(req: UpstreamRequest, resp: UpstreamResponse) -> tuple[UpstreamRequest, str] | None:
    """The request without the optional parameter the upstream's 400 names, and its name; None when it names
    none the request holds."""
    body = _try_json(req.body)
    if not isinstance(body, dict):
        return None
    param = refused_param(body, resp.content[:8192].decode("utf-8", "replace"))
    if param is None:
        return None
    del body[param]
    return dataclasses.replace(req, body=dumps(body)), param


def _try_json(payload: bytes) -> Any:
    try:
        return loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


def _encoded(resp: UpstreamResponse) -> bool:
    return resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")


def _mentions_tag(payload: bytes, cfg: ThinkConfig) -> bool:
    # The tag's name, so that JSON-escaped tags (\u003cthink\u003e) are seen too.
    for tag in (cfg.start, cfg.end):
        name = tag.strip("</>") or tag
        if name.encode() in payload:
            return True
    return False


def sse_object(item: bytes) -> dict | None:
    lines = item.split(b"\n")
    data = sse.event_data([line for line in lines if line])
    if data is None:
        return None
    obj = _try_json(data)
    return obj if isinstance(obj, dict) else None


def think_items(items: Iterable[StreamItem], cfg: ThinkConfig) -> Iterator[StreamItem]:
    """The think transform over a stream; raw events that cannot hold a tag pass without being parsed."""
    state = StreamThink(cfg)
    idle = state.idle  # changes only when a chunk goes through the state machine
    for item in items:
        if type(item) is bytes:
            if idle and b"<" not in item and b"\\u003c" not in item:
                yield item
                continue
            obj = sse_object(item)
            if obj is None:
                yield item
                continue
        else:
            obj = item
        out = state.chunk(obj)
        idle = state.idle
        if out is not None:
            yield out
    tail = state.flush()
    if tail is not None:
        yield tail


def aggregate(call: Call, items: Iterable[StreamItem]) -> dict[str, Any]:
    """A whole answer from a stream (upstream streams, client did not)."""
    chunks = (sse_object(item) if type(item) is bytes else item for item in items)
    chunks = (c for c in chunks if c is not None)
    if call.kind == "completions":
        return streamconv.aggregate_completion(chunks)
    return streamconv.aggregate_chat(chunks)


def _peeked(items: Iterator[StreamItem]) -> Iterator[StreamItem]:
    """Read the first item now, so an error the upstream reports at once is an HTTP error, not an SSE event."""
    try:
        first = next(items)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), items)


def _captured(call: Call, items: Iterable[StreamItem]) -> Iterator[StreamItem]:
    """Pass a stream through, assembling the upstream's own answer for journals while its bytes (the tap on the
    upstream response) stay under JOURNAL_BODY_BYTES."""
    capture = StreamCapture(call.upstream_tap)
    try:
        for item in items:
            capture.add(item)
            yield item
    finally:
        call.upstream_output = capture.result()


class StreamCapture:
    """A stream's answer assembled for a journal as its chunks pass, given up (and its memory freed) once the
    tap on the same bytes passes its limit: the journal then records the tap's prefix, length and hash."""

    __slots__ = ("tap", "fold")

    def __init__(self, tap: BodyTap | None) -> None:
        self.tap = tap
        self.fold: streamconv.Fold | None | bool = True  # True: no chunk yet; None: given up

    def add(self, item: StreamItem) -> None:
        if self.fold is None:
            return
        if self.tap is not None and self.tap.over:
            self.fold = None
            return
        chunk = sse_object(item) if type(item) is bytes else item
        if chunk is None:
            return
        try:
            if self.fold is True:
                self.fold = streamconv.Fold.for_chunk(chunk)
            self.fold.add(chunk)
        except Exception:  # noqa: BLE001 - an error event or a chunk it cannot fold: no copy, the stream goes on
            self.fold = None

    def result(self) -> dict | None:
        fold, self.fold = self.fold, None
        if not isinstance(fold, streamconv.Fold):
            return None
        try:
            return fold.result()
        except Exception:  # noqa: BLE001 - a journal's copy never breaks the answer
            return None


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
