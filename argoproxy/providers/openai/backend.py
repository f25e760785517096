"""The openai backend: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, ARGO's native API...).

Requests go out as the client sent them (re-encoded only when a transform changed the body); answers come
back as upstream bytes, parsed only when a transform needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

from argoproxy.edge.body_members import encode_members
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.providers.base import Backend, StreamItem
from argoproxy.providers.openai.template_switch import KWARGS, template_kwargs
from argoproxy.upstream.local_server import says_local, windows_per_model
from argoproxy.upstream.relay import redirect_error, relay_sse, upstream_error
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, read_whole
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
        self.refused: str | None = None  # the last upstream refusal of the proxy's key, until it answers again
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
        planned = call.planned
        body = self.template_switched(call) or planned.body_bytes()
        if body is not planned.raw_body:  # encoded anew: a changed body, or the template's switch added
            headers["Content-Type"] = "application/json"
        return UpstreamRequest(call.client.method, self.url(call.plan.path, call.plan.query), headers, body,
                               planned.timeout)

    def template_switched(self, call: Call) -> bytes | None:
        """A chat request asking for a reasoning effort, to vLLM or llama.cpp's server: its body with the chat
        template's reasoning switch (template_switch.py); None: the planned body goes as it is."""
        planned = call.planned
        if call.plan.kind != "chat" or "reasoning_effort" not in planned.body:
            return None
        kwargs = template_kwargs(planned.body, says_local(self.base, self.api_key).name)
        if kwargs is None:
            return None
        body = {**planned.body, KWARGS: kwargs}
        if planned.members is not None and not planned.rewritten:  # the other members as the client wrote them
            return encode_members(planned.members, body, planned.touched | {KWARGS})
        return dumps(body)

    def native_front(self, front: str, model: str | None) -> bool:
        return front in self.settings.fronts_passthrough

    def front_request(self, call: Call, front: str, body: dict[str, Any], count_only: bool) -> UpstreamRequest:
        """FRONTS_PASSTHROUGH: the client's request to the same path upstream (an Anthropic-style upstream
        also gets the proxy's key as x-api-key)."""
        headers = self.upstream_headers(call)
        if self.api_key and front == "messages":
            headers["X-Api-Key"] = self.api_key
        planned = call.planned
        data = planned.body_bytes()
        if data is not planned.raw_body:  # encoded anew: the body changed
            headers["Content-Type"] = "application/json"
        return UpstreamRequest("POST", self.url(call.plan.path, call.plan.query), headers, data, planned.timeout)

    def decode(self, call: Call, resp: UpstreamResponse) -> bytes:
        self.refused = None  # the upstream answers: a refusal /health said is over
        return read_whole(resp, call.planned.timeout or self.upstream.read_timeout)

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        self.refused = None
        return relay_sse(resp, self.upstream.read_timeout, self.settings.max_sse_event_bytes)

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        err = upstream_error(resp)
        if resp.status_code in (401, 403):  # the client would read it as its own key refused: whose it was
            whose, ours = self.whose_key(call)
            err.message = f"The upstream refused {whose} ({resp.status_code}): {err.message}"
            if ours:
                self.refused = err.message  # /health says it until the upstream answers a request
        return err

    def whose_key(self, call: Call) -> tuple[str, bool]:
        """(whose key an upstream's 401 or 403 refused, whether it was the proxy's own doing)."""
        if self.api_key:
            return "the proxy's key (OPENAI_API_KEY, where the proxy runs)", True
        if not any(name.lower() == "authorization" for name in call.plan.headers):
            return "the request: the proxy sends no key (set OPENAI_API_KEY where the proxy runs)", True
        return ("the client's own key, passed on because the proxy has no OPENAI_API_KEY (set it where the proxy "
                "runs, or send a key of the upstream's)", False)

    def health(self, query: str = "") -> dict[str, Any] | None:
        """Unhealthy while the upstream refuses the proxy's key (or wants one it has not); else the probe of the
        base URL (observe/health.py)."""
        if self.refused is not None:
            raise ProxyError(503, f"Health check failed: {self.refused}", code="unhealthy")
        return None

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
        self.served_windows(listing["data"])
        return listing

    def served_windows(self, data: list[Any]) -> None:
        """llama.cpp lists a model's training context (`meta.n_ctx_train`), not the window a request gets there:
        each entry gets the context of one of its slots (its /props, asked once) as `context_length`, which every
        reader of windows takes first (reservations, the doors' model lists, `cot-proxy run`'s agents). Ollama
        lists none: each entry gets its model's `num_ctx` or Ollama's default (upstream/local_server.py)."""
        if not any(isinstance(m, dict) and isinstance(m.get("meta"), dict) for m in data):
            self.model_windows(data)
            return
        window = says_local(self.base, self.api_key).context
        for entry in data if window is not None else ():
            if isinstance(entry, dict):
                entry["context_length"] = window

    def model_windows(self, data: list[Any]) -> None:
        """Each entry's own window, where the server says one per model (upstream/local_server.py)."""
        entries = [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)
                   and not isinstance(m.get("context_length"), int)]
        if not entries:
            return
        windows = windows_per_model(self.base, self.api_key, [m["id"] for m in entries])
        for entry in entries:
            if entry["id"] in windows:
                entry["context_length"] = windows[entry["id"]]
