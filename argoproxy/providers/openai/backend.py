"""The openai backend: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, ARGO's native API...).

Requests go out as the client sent them (re-encoded only when a transform changed the body); answers come
back as upstream bytes, parsed only when a transform needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.providers.base import Backend, StreamItem
from argoproxy.upstream.relay import read_whole, redirect_error, relay_sse, upstream_error
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse
from argoproxy.upstream.url import join_url

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.upstream.client import Upstream

OPENAI_HOST = "api.openai.com"  # where `developer` messages stay as they are (DEVELOPER_ROLE=auto)


class OpenAIBackend(Backend):
    name = "openai"
    server_counts = True  # vLLM and llama.cpp's server are OpenAI-compatible servers that count
    forwards_unknown = True
    relay_headers = True

    def __init__(self, settings: Settings, upstream: Upstream) -> None:
        super().__init__(settings, upstream)
        self.base = settings.target_base_url
        self.api_key = settings.openai_api_key
        if settings.developer_role == "auto":  # OpenAI's own API defined the role; other servers refuse it
            self.keeps_developer = urlsplit(self.base).hostname == OPENAI_HOST

    def url(self, path: str, query: str = "") -> str:
        return join_url(self.base, path, query)

    def upstream_headers(self, call: Call) -> dict[str, str]:
        headers = dict(call.plan.headers)
        if self.api_key:
            headers.pop("X-Api-Key", None)
            headers["Authorization"] = f"Bearer {self.api_key}"
        if "Accept-Encoding" not in headers:
            headers["Accept-Encoding"] = "identity"
        return headers

    def encode(self, call: Call) -> UpstreamRequest:
        headers = self.upstream_headers(call)
        if call.plan.changed:
            headers["Content-Type"] = "application/json"
        return UpstreamRequest(call.client.method, self.url(call.plan.path, call.plan.query), headers, call.plan.body_bytes(), call.plan.timeout)

    def native_front(self, front: str, model: str | None) -> bool:
        return front in self.settings.fronts_passthrough

    def front_request(self, call: Call, front: str, body: dict[str, Any], count_only: bool) -> UpstreamRequest:
        """FRONTS_PASSTHROUGH: the client's request to the same path upstream (an Anthropic-style upstream
        also gets the proxy's key as x-api-key)."""
        headers = self.upstream_headers(call)
        if self.api_key and front == "messages":
            headers["X-Api-Key"] = self.api_key
        if call.plan.changed:
            headers["Content-Type"] = "application/json"
        return UpstreamRequest("POST", self.url(call.plan.path, call.plan.query), headers, call.plan.body_bytes(), call.plan.timeout)

    def decode(self, call: Call, resp: UpstreamResponse) -> bytes:
        return read_whole(resp, call.plan.timeout or self.upstream.read_timeout)

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        return relay_sse(resp, self.upstream.read_timeout, self.settings.max_sse_event_bytes)

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        return upstream_error(resp)

    def list_models(self, call: Call) -> dict[str, Any]:
        # `call`: traced, this attempt goes in a span of its own whose context replaces the client's traceparent
        # (forwarded with the client's headers, it made the upstream's span a sibling of the request's)
        resp = self.upstream.send(UpstreamRequest("GET", self.url(call.plan.path, call.plan.query), self.upstream_headers(call),
                                                  None, call.plan.timeout, max_bytes=call.plan.answer_most), None, call)
        with resp:
            if resp.status_code >= 300:
                raise upstream_error(resp) if resp.status_code >= 400 else redirect_error(resp)
            try:
                listing = resp.json()
            except ValueError:
                raise ProxyError(502, "The upstream model list is not JSON.", code="upstream_bad_response") from None
        if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
            raise ProxyError(502, "The upstream model list is not an OpenAI list.", code="upstream_bad_response")
        return listing
