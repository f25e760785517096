"""The dashscope backend: OpenAI chat/completions and embeddings over Alibaba DashScope's native API
(translation in translate.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from argoproxy.pipeline.answer_shape import bad_answer
from argoproxy.pipeline.call import Call
from argoproxy.meter import DASHSCOPE
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.providers.base import Backend, Prepared, StreamItem
from argoproxy.providers.dashscope import translate as dashscope
from argoproxy.upstream.client import READ_ERRORS
from argoproxy.upstream.relay import upstream_events
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse
from argoproxy.upstream.url import join_url
from argoproxy.edge.validation import require_model

# What the translation raises on an answer of another shape (a field of the wrong type, bytes that are not UTF-8).
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError)

# DashScope's native API has no model listing; these are the commonly used public model names.
KNOWN_MODELS = ("qwen-max", "qwen-plus", "qwen-turbo", "qwen-long", "qwen3-max", "qwq-plus", "text-embedding-v3",
                "text-embedding-v4")


if TYPE_CHECKING:
    from argoproxy.providers.dashscope.settings import DashScopeConfig
    from argoproxy.upstream.client import Upstream


class DashScopeBackend(Backend):
    name = "dashscope"
    kinds = frozenset({"chat", "embeddings"})
    reading = DASHSCOPE  # parameters.max_tokens; n is not sent
    settings: DashScopeConfig  # the core settings and DashScope's own, typed

    def __init__(self, settings: DashScopeConfig, upstream: Upstream) -> None:
        super().__init__(settings, upstream)
        self.base = settings.target_base_url

    def api_key(self, call: Call) -> str:
        if self.settings.dashscope_api_key:
            return self.settings.dashscope_api_key
        auth = call.plan.headers.get("Authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else auth.strip()
        if not key:
            raise ProxyError(401, "No DashScope API key: set DASHSCOPE_API_KEY or send Authorization: Bearer KEY.",
                             code="missing_api_key")
        return key

    def prepare(self, call: Call) -> Prepared:
        # no default model
        return Prepared(upstream_model=dashscope.native_model(require_model(call.planned.body.get("model"))))

    def encode(self, call: Call) -> UpstreamRequest:
        if call.plan.kind == "embeddings":
            url, body = join_url(self.base, dashscope.EMBEDDINGS_PATH), dashscope.encode_embeddings(call.planned.body)
        else:
            url = join_url(self.base, dashscope.TEXT_GENERATION_PATH)
            body = dashscope.encode_chat(call.planned.body, call.planned.upstream_stream)
        headers = dashscope.request_headers(self.api_key(call), call.planned.upstream_stream)
        return UpstreamRequest("POST", url, headers, dumps(body), call.planned.timeout)

    def decode(self, call: Call, resp: UpstreamResponse) -> dict[str, Any]:
        try:
            obj = resp.json()
        except ValueError:
            raise ProxyError(502, "DashScope answered with something that is not JSON.",
                             code="upstream_bad_response") from None
        try:
            if call.plan.kind == "embeddings":
                return dashscope.decode_embeddings(obj, call.plan.model or "", call.planned.body.get("encoding_format"))
            return dashscope.decode_chat(obj, call.plan.model or "")
        except SHAPE_ERRORS:
            raise bad_answer("it does not have the shape of DashScope's API") from None

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        include_usage = call.planned.include_usage or not call.planned.client_stream
        decoder = dashscope.ChatStreamDecoder(call.plan.model or "", incremental=True, include_usage=include_usage)
        events = upstream_events(resp, self.upstream.read_timeout, self.settings.max_sse_event_bytes)
        try:
            yield from decoder.decode(line for event in events for line in event.split(b"\n"))
        except SHAPE_ERRORS:
            raise bad_answer("a stream event does not have the shape of DashScope's API") from None

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        try:
            obj = resp.json()
        except (ValueError, *READ_ERRORS):  # an error's body broken off or stalled: its status alone is said
            obj = {}
        return dashscope.error_from(resp.status_code, obj if isinstance(obj, dict) else {})

    def list_models(self, call: Call) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "dashscope"}
                                           for m in KNOWN_MODELS]}
