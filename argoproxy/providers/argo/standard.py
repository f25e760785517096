"""ARGO standard mode (use_native_openai off): OpenAI chat, legacy completions and embeddings translated to
ARGO's own JSON and back, with model aliases (unknown names: MODEL_FALLBACK or 404), per-family tool calls
(native or through the prompt) and ARGO's plain-text stream, real or pseudo (REAL_STREAM)."""

from __future__ import annotations

from typing import Any, Iterator

from argoproxy.meter import count_request_tokens, media_tokens
from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.providers.argo import convert, models, stream, text_call_answers, tools
from argoproxy.providers.argo.backend import ArgoBackend, ArgoState, raw_error
from argoproxy.providers.base import Prepared, Send
from argoproxy.providers.base import StreamItem
from argoproxy.upstream.client import READ_ERRORS, stream_error
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, read_chunks


class ArgoStandardBackend(ArgoBackend):
    mode = "standard"

    # ------------------------------------------------------------------ policy
    def upstream_streams(self, call: Call, wanted: bool) -> bool:
        if call.plan.body.get("tools"):  # the request's (policy is asked of the request, before it is planned)
            return False  # tool answers are parsed from a whole reply, so tool calls always pseudo-stream
        if self.settings.upstream_mode == "off":
            return wanted and self.settings.real_stream
        return wanted

    # ------------------------------------------------------------------ request side
    def prepare_body(self, call: Call, user: str, kind: models.Kind) -> Prepared:
        model_id = self.resolve(self.served_name(call), kind, fallback=self.fallback)
        if call.plan.kind == "chat":
            self.inline_images(call.planned.body)
        family = models.model_family(model_id)
        prompt_tools = tools.uses_prompt_tools(family, self.settings.tool_prompt)
        text_calls = self.text_calls(call) if family == "anthropic" and not prompt_tools else None
        return Prepared(ArgoState(user, model_id, family, prompt_tools, text_calls), upstream_model=model_id)

    def encode(self, call: Call) -> UpstreamRequest:
        x = self.state(call)
        body = call.planned.body
        if call.plan.kind == "chat":
            body = tools.encode_tools(body, x.family, x.prompt_tools) if body.get("tools") else body
            argo_body = convert.chat_request_to_argo(body, model_id=x.model_id, user=x.user,
                                                     stream=call.planned.upstream_stream)
        else:
            argo_body = convert.completion_request_to_argo(body, model_id=x.model_id, user=x.user,
                                                           stream=call.planned.upstream_stream)
        url = self.settings.argo_stream_url if call.planned.upstream_stream else self.settings.argo_url
        encoding = "identity" if call.planned.upstream_stream else "gzip"
        headers = {"Content-Type": "application/json", "Accept-Encoding": encoding}
        return UpstreamRequest("POST", url, headers, dumps(argo_body), call.planned.timeout)

    def complete(self, call: Call, send: Send) -> dict[str, Any] | None:
        """Embeddings: ARGO takes 16 inputs per call, so larger inputs take several."""
        if call.plan.kind != "embeddings":
            return None
        x = self.state(call)
        answers = []
        for argo_body in convert.embedding_request_to_argo(call.planned.body, model_id=x.model_id, user=x.user):
            req = UpstreamRequest("POST", self.settings.argo_embedding_url, {"Content-Type": "application/json"},
                                  dumps(argo_body), call.planned.timeout)
            with send(req, raw_error) as resp:
                answers.append(convert.parse_argo_json(resp.content))
        return convert.embeddings_to_openai(answers, request=call.planned.body, model=call.plan.model or x.model_id)

    # ------------------------------------------------------------------ answer side
    def decode(self, call: Call, resp: UpstreamResponse) -> dict[str, Any] | bytes:
        x = self.state(call)
        argo_body = convert.parse_argo_json(resp.content)
        prompt_tokens = count_request_tokens(call.planned.body) + media_tokens(call.planned.body, x.model_id)
        model = call.plan.model or x.model_id
        if call.plan.kind == "completions":
            return convert.completion_response_to_openai(argo_body, model=model, prompt_tokens=prompt_tokens)
        decode_tools = (lambda r: tools.decode_tool_calls(r, x.family, x.prompt_tools)) \
            if call.planned.body.get("tools") else None
        obj = convert.chat_response_to_openai(argo_body, model=model, prompt_tokens=prompt_tokens,
                                              decode_tools=decode_tools)
        if x.text_calls:
            text_call_answers.transform_completion(obj, x.text_calls, self.text_call_limit)
        return obj

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        return self._argo_stream(call, resp)  # ARGO's streamchat takes no tools: tool answers come whole

    def _argo_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[dict[str, Any]]:
        chunker = stream.stream_completion_chunks if call.plan.kind == "completions" else stream.stream_chat_chunks
        chunks = chunker(read_chunks(resp), model=call.plan.model or self.state(call).model_id,
                         prompt_tokens=count_request_tokens(call.planned.body)
                         + media_tokens(call.planned.body, self.state(call).model_id),
                         include_usage=call.planned.include_usage or not call.planned.client_stream)
        try:
            yield from chunks
        except READ_ERRORS as exc:
            raise stream_error(exc, resp.url, self.upstream.read_timeout) from None

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        return convert.error_from_argo(resp.status_code, resp.content)
