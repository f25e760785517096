"""The ToyBackend, written against the Backend interface alone: auth, validation, think tags, stream <->
non-stream, errors and metrics all come from the pipeline, none from this module.

The toy wire protocol (deliberately not OpenAI's; tests/fakes/fake_toy.py serves it):
  POST {base}generate  {"model", "prompt", "max_new_tokens", "temperature", "stream"}  Authorization: Bearer key
    -> {"text": "...", "input_tokens": n, "output_tokens": m}
    -> stream: NDJSON lines {"token": "..."} ... then {"done": true, "input_tokens": n, "output_tokens": m}
  GET  {base}models    -> {"models": ["toy-small", ...]}
  errors: any 4xx/5xx  -> {"problem": "..."}
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterator

import requests

from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.providers.base import Backend, StreamItem
from argoproxy.upstream.sse import iter_lines
from argoproxy.upstream.client import READ_ERRORS, stream_error
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, read_chunks

if TYPE_CHECKING:
    from cot_proxy_provider_toy.settings import ToyConfig


class ToyBackend(Backend):
    name = "toy"
    settings: ToyConfig  # the core settings and its own, typed
    kinds = frozenset({"chat"})  # /v1/completions and /v1/embeddings answer 404 for this backend

    def __init__(self, settings, upstream) -> None:
        super().__init__(settings, upstream)
        self.base = settings.target_base_url  # ends with "/"

    # --- request side: OpenAI chat request -> toy request
    def encode(self, call: Call) -> UpstreamRequest:
        body = call.planned.body
        prompt = "\n".join(f"{m['role']}: {_text(m.get('content'))}" for m in body["messages"])
        toy = {"model": call.planned.upstream_model, "prompt": prompt, "stream": call.planned.upstream_stream,
               "max_new_tokens": body.get("max_tokens") or 256, "temperature": body.get("temperature", 1.0)}
        headers = {"Content-Type": "application/json", **self.credential()}
        return UpstreamRequest("POST", self.base + "generate", headers, dumps(toy), call.planned.timeout)

    def credential(self) -> dict[str, str]:
        """The provider's key comes from the proxy's settings (TOY_API_KEY, or a routing entry's api_key_env),
        never from the client."""
        return {"Authorization": f"Bearer {self.settings.toy_api_key}"} if self.settings.toy_api_key else {}

    # --- answer side: toy answer -> OpenAI objects
    def decode(self, call: Call, resp: UpstreamResponse) -> dict[str, Any]:
        try:
            obj = resp.json()
        except ValueError:
            raise ProxyError(502, "The toy upstream answered with something that is not JSON.",
                             code="upstream_bad_response") from None
        return {"id": _id(), "object": "chat.completion", "created": int(time.time()), "model": call.plan.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": obj.get("text", "")},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": _usage(obj)}

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        base = {"id": _id(), "object": "chat.completion.chunk", "created": int(time.time()), "model": call.plan.model}
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        try:
            for line in iter_lines(read_chunks(resp)):
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("done"):
                    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    if call.planned.include_usage or not call.planned.client_stream:
                        yield {**base, "choices": [], "usage": _usage(event)}
                    return
                yield {**base, "choices": [{"index": 0, "delta": {"content": event.get("token", "")},
                                            "finish_reason": None}]}
        except READ_ERRORS as exc:
            raise stream_error(exc, resp.url, self.upstream.read_timeout) from None
        raise ProxyError(502, "The toy upstream ended the stream before it was done.", code="upstream_stream_incomplete")

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        try:
            problem = resp.json().get("problem")
        except (ValueError, AttributeError, requests.RequestException):
            problem = None
        return ProxyError(resp.status_code, str(problem or f"The toy upstream answered {resp.status_code}."),
                          code=f"upstream_{resp.status_code}")

    # --- other routes
    def list_models(self, call: Call) -> dict[str, Any]:
        resp = self.upstream.send(UpstreamRequest("GET", self.base + "models", self.credential(), None, call.plan.timeout))
        with resp:
            if resp.status_code >= 400:
                raise self.error(call, resp)
            names = resp.json().get("models", [])
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "toy"} for n in names]}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _usage(obj: dict) -> dict[str, int]:
    prompt, completion = int(obj.get("input_tokens") or 0), int(obj.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _id() -> str:
    return "chatcmpl-toy-" + uuid.uuid4().hex[:12]
