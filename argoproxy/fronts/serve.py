"""Serving a front door through the Gateway: the client's request becomes the one internal chat request, which
then takes the chat path's every step (validation, LLM_PARAMS, stream modes, think transform, backend, allow-
list, retries, observers); the chat answer (whole, or its chunks after the think transform) is translated back.

When the upstream itself serves the front's API (FRONTS_PASSTHROUGH, or ARGO's native Anthropic endpoint for
Claude models in native mode), the request goes there instead, after the same guards, and its answer is
relayed as it came.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from argoproxy.edge.http_objects import Answer

from argoproxy.pipeline import streamconv
from argoproxy.pipeline.answer_shape import check_chunk
from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.fronts import DoorArgs, Exchange, Front, front_named
from argoproxy.edge.header_policy import response_headers
from argoproxy.jsonfast import dumps
from argoproxy.config.llm_params import apply_rule
from argoproxy.observe.logs import listing
from argoproxy.redaction import sanitize_message
from argoproxy.edge.request_body import parse_object
from argoproxy.pipeline.tokens import count_request_tokens
from argoproxy.upstream.client import READ_ERRORS, UpstreamResponse, read_chunks, stream_error
from argoproxy.edge.validation import check_allowed_model, validate

if TYPE_CHECKING:
    from argoproxy.pipeline.gateway import Gateway

log = logging.getLogger("cot_proxy")

JSON_TYPE = "application/json"
SSE_HEADERS = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
               ("X-Accel-Buffering", "no")]


class FrontService:
    """The front doors' entry points and answer side, over one Gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.backend = gateway.backend
        self._secrets = gateway._secrets

    # ---------------------------------------------------------------- requests
    def api(self, call: Call, front: Front, count_only: bool = False, args: DoorArgs | None = None) -> Answer:
        """POST /v1/responses, /v1/messages, /v1/messages/count_tokens, /v1beta/models/{model}:{method} (args:
        what the path says: the Google door names the model and the method there)."""
        from argoproxy.pipeline.gateway import read_request_body
        call.front = front.name
        call.raw_body = read_request_body(call, self.settings.max_body_bytes)
        body = parse_object(call.raw_body)
        model = args.model if args is not None and args.model is not None else body.get("model")
        call.model = model if isinstance(model, str) else None
        gateway = self.gateway
        gateway.admit(call)
        if gateway.routing is None and self.backend.native_front(front.name, call.model):
            return self.relay_native(call, front, body, count_only)
        chat, ex = front.to_chat(body, count_only, args)
        if ex.dropped:  # Codex and Claude Code send tools only OpenAI or Anthropic run (docs/decisions.md)
            log.warning("%s %s: left out what a chat backend cannot run: %s", front.name, call.request_id,
                        listing(ex.dropped))
        if count_only:
            return self.count_tokens(call, front, chat)
        if front.name == "messages" and ex.stream:
            ex.input_tokens = count_request_tokens(chat)  # message_start needs a count before usage arrives
        ex.chat = chat
        ex.keep = front.answer_budget(self.settings.max_sse_event_bytes, gateway.journal_bytes)
        call.exchange = ex
        call.body, call.body_changed = chat, True
        call.extra["client_path"] = call.path
        call.kind, call.path, call.query = "chat", front.chat_path, ""
        call.headers = front.upstream_headers(call.headers)
        try:
            validate("chat", chat)
        except ProxyError as err:
            raise front.own_error(err) from None
        if gateway.routing is not None:  # `models`: the chat request goes to a deployment (argoproxy/routing)
            return gateway.routing.api(call)
        gateway.plan(call)
        gateway.prepare(call)
        check_allowed_model(self.settings.allowed_models, call.upstream_model or call.model)
        return gateway.finish(call, self.backend.encode(call))

    def count_tokens(self, call: Call, front: Front, chat: dict[str, Any]) -> Answer:
        """An estimate (argoproxy/pipeline/tokens.py) over messages, system and tools: chat upstreams have no count route."""
        call.kind = "count_tokens"
        check_allowed_model(self.settings.allowed_models, call.model)
        if self.gateway.routing is not None:  # counted here, but only for a model a request could be sent to
            self.gateway.routing.chain(chat["model"])
        return self.whole(call, front.count_answer(count_request_tokens(chat)))

    def relay_native(self, call: Call, front: Front, body: dict[str, Any], count_only: bool) -> Answer:
        """The upstream serves this API itself: the guards and LLM_PARAMS apply, the answer is relayed as it
        comes (no think transform or stream-mode conversion: the proxy does not parse it)."""
        if count_only:
            call.kind = "count_tokens"
        check_allowed_model(self.settings.allowed_models, call.model)
        rule = self.settings.llm_params.rule_for(call.model) if self.settings.llm_params else None
        if rule is not None:
            call.rule = rule
            apply_rule(body, rule)
            call.body_changed = True
        call.body = body
        call.client_stream = body.get("stream") is True and not count_only
        gateway = self.gateway
        gateway.adapt(call, body, front.name, self.backend.front_model(front.name, call.model),
                      supply_limit=not count_only)
        req = self.backend.front_request(call, front.name, body, count_only)
        call.upstream_request = req
        resp = gateway.send(call, req)
        gateway.tap_upstream(call, resp)
        call.upstream_status = resp.status_code
        if resp.status_code >= 400:
            with resp:
                data = resp.content[:1 << 20]
            message = sanitize_message(data.decode("utf-8", "replace")[:2000], self._secrets)
            raise ProxyError(resp.status_code, message, code=f"upstream_{resp.status_code}",
                             raw=sanitize_message(data.decode("utf-8", "replace"), self._secrets).encode())
        headers = gateway.secrets.headers(response_headers(resp.headers, drop_encoding=True))
        call.status = resp.status_code
        return Answer(gateway.relay(call, resp, read_chunks(resp)), resp.status_code, headers,
                        direct_passthrough=True)

    # ---------------------------------------------------------------- answers
    # The Gateway decodes a 2xx answer to a translated request and runs the think transform
    # (Gateway.decoded_stream / decoded_whole / completion_of); these encode it in the front's shape.
    def encode_stream(self, call: Call, resp: UpstreamResponse, items: Iterable[Any]) -> Answer:
        from argoproxy.pipeline.gateway import sse_object
        chunks = self.chunks((sse_object(i) if type(i) is bytes else i for i in items), resp)
        if call.client_stream:
            return self.events(call, resp, chunks)
        try:
            completion = streamconv.aggregate_chat(chunks)
        finally:
            resp.close()
        return self.translated(call, completion)

    def encode_whole(self, call: Call, resp: UpstreamResponse, payload: dict[str, Any] | bytes) -> Answer:
        completion = self.gateway.completion_of(call, payload)
        if call.client_stream:
            return self.events(call, resp, streamconv.package_chat(completion, True))
        return self.translated(call, completion)

    def events(self, call: Call, resp: UpstreamResponse, chunks: Iterable[dict[str, Any]]) -> Answer:
        """A chat chunk stream as the front's SSE events."""
        front, ex = front_named(call.front), call.exchange
        call.status = 200
        events = self.encoded(call, front, ex, front.stream(chunks, ex))
        return Answer(self.gateway.relay(call, resp, events), 200, self.stream_headers(call),
                      direct_passthrough=True)

    def chunks(self, chunks: Iterable[dict | None], resp: UpstreamResponse) -> Iterator[dict]:
        """Parsed chunks; an upstream error event or a broken stream becomes a (sanitized) ProxyError."""
        try:
            for chunk in chunks:
                if chunk is None:
                    continue
                if "error" in chunk:
                    streamconv.raise_if_error(chunk)
                yield check_chunk(chunk)
        except READ_ERRORS as exc:
            raise stream_error(exc, resp.url, self.gateway.upstream.read_timeout) from None
        except ProxyError as err:
            err.message = sanitize_message(err.message, self._secrets)
            raise

    def encoded(self, call: Call, front: Front, ex: Exchange, events: Iterable[dict]) -> Iterator[bytes]:
        try:
            for event in events:
                yield from front.encode_pieces(event)
        finally:
            call.usage, call.output = ex.usage, ex.output
            if ex.usage_estimated:
                call.extra["usage_estimated"] = True
            if ex.cut:
                log.warning("stream %s: its output passed what the %s door keeps for its closing events (%d "
                            "characters, MAX_SSE_EVENT_BYTES): ended as incomplete", call.request_id, front.name, ex.keep)
            if ex.error is not None:
                call.status = ex.error.status
                log.warning("stream %s ended with an error: %s", call.request_id, ex.error.message)

    def error_events(self, call: Call, err: ProxyError) -> bytes:
        """A stream that failed before its first chunk, in the front's own events (start, then the error)."""
        front = front_named(call.front)

        def failing() -> Iterator[dict]:
            raise err
            yield  # a generator that raises at its first step

        return b"".join(self.encoded(call, front, call.exchange, front.stream(failing(), call.exchange)))

    def translated(self, call: Call, completion: dict[str, Any]) -> Answer:
        ex: Exchange = call.exchange
        obj = front_named(call.front).from_chat(completion, ex)
        call.usage = ex.usage
        if ex.usage_estimated:
            call.extra["usage_estimated"] = True
        return self.whole(call, obj)

    def whole(self, call: Call, obj: dict[str, Any]) -> Answer:
        data = self.gateway.secrets.data(dumps(obj))
        call.status, call.output = 200, obj
        self.gateway.answered(call, data)
        self.gateway.observe(call)
        return Answer(data, 200, self.headers(call, [("Content-Type", JSON_TYPE)]))

    def stream_headers(self, call: Call) -> list[tuple[str, str]]:
        """The headers of the front's stream (a Google stream without `alt=sse` is one JSON array)."""
        content_type = front_named(call.front).stream_type(call.exchange)
        return self.headers(call, [("Content-Type", content_type)] + SSE_HEADERS[1:])

    def keepalive_beat(self, call: Call) -> bytes:
        return front_named(call.front).keepalive_beat

    def headers(self, call: Call, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if call.front == "messages":  # Anthropic's SDKs read the request id from `request-id`
            return headers + [("request-id", call.request_id)]
        return headers


def front_for_kind(kind: str, front_name: str = "openai") -> tuple[Front, bool] | None:
    """The front door serving a route kind (on the API a client speaks), and whether it only counts tokens."""
    if front_name == "google":
        return front_named("google"), kind == "count_tokens"
    if kind == "count_tokens":
        return front_named("messages"), True
    front = front_named(kind)
    return (front, False) if front is not None else None
