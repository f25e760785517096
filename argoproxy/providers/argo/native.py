"""ARGO native mode (use_native_openai): OpenAI requests sent untransformed to ARGO's OpenAI-compatible API
(aliases mapped, any other name passed through, the user set, image URLs inlined) and answers relayed as they
come; Claude models' /v1/messages go to ARGO's Anthropic endpoint (argo-proxy's --native-anthropic)."""

from __future__ import annotations

import base64
import logging
from typing import Any, Iterator

from argoproxy.upstream import images
from argoproxy.pipeline.call import Call
from argoproxy.meter import OPENAI
from argoproxy.errors import ProxyError
from argoproxy.providers.argo import models, text_call_answers
from argoproxy.providers.argo.normalize import CLAUDE_NON_STREAMING_MAX_TOKENS, over_cap
from argoproxy.providers.argo.backend import ArgoBackend, ArgoState, native_model, pop_timeout
from argoproxy.providers.base import Prepared, StreamItem, set_member
from argoproxy.upstream.relay import relay_sse, upstream_error
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse
from argoproxy.upstream.url import join_url

log = logging.getLogger("cot_proxy")
NATIVE_PATHS = {"chat": "chat/completions", "completions": "completions", "embeddings": "embeddings"}


class ArgoNativeBackend(ArgoBackend):
    mode = "native"
    relay_headers = True
    transparent = True
    reading = OPENAI  # ARGO's OpenAI-compatible endpoint is sent the request as written

    # ------------------------------------------------------------------ policy
    def transforms_answers(self, call: Call) -> bool:
        return False  # answers reach the client as they were

    # ------------------------------------------------------------------ request side
    def prepare_body(self, call: Call, user: str, kind: models.Kind) -> Prepared:
        body = call.planned.body
        changed: list[str] = []
        served = self.served_name(call)
        if served:
            set_member(body, "model", native_model(served, kind, self.models_table(served, kind)), changed)
        model = body.get("model")
        state = ArgoState(user, model if isinstance(model, str) else "")
        adapted: tuple[str, ...] = ()
        if "claude" in str(model).lower():  # ARGO's OpenAI-compatible endpoint leaks them too
            state.text_calls = self.text_calls(call)
            if not call.planned.upstream_stream:
                adapted = _cap_whole_claude(body, changed)
        if user:  # username passthrough without a configured user: a client without a key sends its own
            set_member(body, "user", user, changed)
        inlined = call.plan.kind == "chat" and self.inline_images(body)
        return Prepared(state, model if isinstance(model, str) else None, tuple(changed), inlined, adapted=adapted)

    def encode(self, call: Call) -> UpstreamRequest:
        url = join_url(self.settings.native_openai_base_url, NATIVE_PATHS[call.plan.kind])
        headers = {"Content-Type": "application/json"}
        if "Authorization" in call.plan.headers:
            headers["Authorization"] = call.plan.headers["Authorization"]
        if call.planned.upstream_stream:
            headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        return UpstreamRequest("POST", url, headers, call.planned.body_bytes(), call.planned.timeout)

    def native_front(self, front: str, model: str | None) -> bool:
        """Claude models' /v1/messages go to ARGO's Anthropic endpoint; other models and fronts go through
        the chat translation."""
        return front == "messages" and "claude" in native_model(model or "", "chat", self.models_table(model)).lower()

    def prepare_front(self, call: Call, front: str, body: dict[str, Any], count_only: bool) -> Prepared:
        """The Messages request for ARGO's native Anthropic endpoint: alias mapped, user set (in metadata.user_id;
        front_request sends it as the key), image URLs inlined, as native OpenAI mode does."""
        assert body is call.planned.body, "the door's body: its members are the client's bytes"
        changed: list[str] = []
        timed = "timeout" in body
        timeout = pop_timeout(body) if timed else None  # the proxy's, never sent upstream
        if timed:
            changed.append("timeout")
        model = body.get("model") or ""
        upstream_model = native_model(model, "chat", self.models_table(model))
        set_member(body, "model", upstream_model, changed)
        adapted: tuple[str, ...] = ()
        inlined = False
        if not count_only:
            if body.get("stream") is not True:
                adapted = _cap_whole_claude(body, changed)
            metadata = body.get("metadata")
            body["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "user_id": self.user_for(call)}
            changed.append("metadata")
            inlined = self.inline_anthropic_images(body)
        return Prepared(None, upstream_model, tuple(changed), inlined, timeout, adapted)

    def front_request(self, call: Call, front: str, body: dict[str, Any], count_only: bool) -> UpstreamRequest:
        """The prepared Messages request (prepare_front) to ARGO's native Anthropic endpoint."""
        plan = call.plan
        base = self.settings.native_anthropic_base_url
        url = join_url(base, "/count_tokens") if count_only else base
        headers = {"Content-Type": "application/json", "X-Api-Key": self.user_for(call),
                   "Anthropic-Version": plan.headers.get("Anthropic-Version") or "2023-06-01"}
        if plan.headers.get("Anthropic-Beta"):
            headers["Anthropic-Beta"] = plan.headers["Anthropic-Beta"]
        if body.get("stream") is True and not count_only:
            headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        return UpstreamRequest("POST", url, headers, call.planned.body_bytes(), call.planned.timeout)

    def inline_anthropic_images(self, body: dict[str, Any]) -> bool:
        """Image blocks with a URL source become base64 sources (a failed download keeps its URL); True when
        there were any."""
        sources = _url_image_sources(body)
        if not sources:
            return False
        if self._image_session is None:
            self._image_session = images.image_session(self.settings.concurrent_downloads)
        for source in sources:
            try:
                image = images.fetch_image(source["url"], self.image_options, self._image_session)
            except images.ImageFetchError as exc:
                log.warning("image not inlined: %s", exc)
                continue
            source.clear()
            source.update(type="base64", media_type=image.mime, data=base64.b64encode(image.data).decode("ascii"))
        return True

    # ------------------------------------------------------------------ answer side
    def decode(self, call: Call, resp: UpstreamResponse) -> dict[str, Any] | bytes:
        names = self.state(call).text_calls
        if names:
            return text_call_answers.transform_body(resp.content, names, self.text_call_limit)
        return resp.content

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        events = relay_sse(resp, self.upstream.read_timeout, self.settings.max_sse_event_bytes)
        names = self.state(call).text_calls
        return text_call_answers.stream_items(events, names, self.text_call_limit) if names else events

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        err = upstream_error(resp)
        err.raw = resp.content
        err.headers["Content-Type"] = resp.headers.get("Content-Type") or "application/json"
        return err


def _url_image_sources(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `source` objects of a Messages body's image blocks that name a URL."""
    found = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            source = block.get("source") if isinstance(block, dict) and block.get("type") == "image" else None
            if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
                found.append(source)
    return found


def _cap_whole_claude(body: dict[str, Any], changed: list[str]) -> tuple[str, ...]:
    """A Claude request answered whole asks for at most 21000 tokens, as standard mode's: ARGO answers a longer
    one with "Streaming is required for operations that may take longer than 10 minutes" (argo-proxy #107).
    Returns the changes for X-Adapted-Params."""
    adapted = []
    for key in over_cap(body):
        set_member(body, key, CLAUDE_NON_STREAMING_MAX_TOKENS, changed)
        adapted.append(f"{key}={CLAUDE_NON_STREAMING_MAX_TOKENS}")
    return tuple(adapted)
