"""ARGO native mode (use_native_openai): OpenAI requests sent untransformed to ARGO's OpenAI-compatible API
(aliases mapped, any other name passed through, the user set, image URLs inlined) and answers relayed as they
come; Claude models' /v1/messages go to ARGO's Anthropic endpoint (argo-proxy's --native-anthropic)."""

from __future__ import annotations

import base64
import logging
from typing import Any, Iterator

from argoproxy.upstream import images
from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.providers.argo import models, text_call_answers
from argoproxy.providers.argo.backend import ArgoBackend, native_model, pop_timeout
from argoproxy.providers.base import StreamItem
from argoproxy.upstream.relay import relay_sse, upstream_error
from argoproxy.upstream.client import UpstreamRequest, UpstreamResponse
from argoproxy.upstream.url import join_url

log = logging.getLogger("cot_proxy")
NATIVE_PATHS = {"chat": "chat/completions", "completions": "completions", "embeddings": "embeddings"}


class ArgoNativeBackend(ArgoBackend):
    mode = "native"
    relay_headers = True
    transparent = True

    # ------------------------------------------------------------------ policy
    def transforms_answers(self, call: Call) -> bool:
        return False  # answers reach the client as they were

    # ------------------------------------------------------------------ request side
    def prepare_body(self, call: Call, user: str, kind: models.Kind) -> None:
        body = call.body
        if call.model:
            body["model"] = native_model(call.model, kind)
        call.upstream_model = body.get("model")
        if "claude" in str(call.upstream_model).lower():  # ARGO's OpenAI-compatible endpoint leaks them too
            self.watch_text_calls(call)
        if user:  # username passthrough without a configured user: a client without a key sends its own
            body["user"] = user
        if call.kind == "chat":
            self.inline_images(body)
        call.body_changed = True

    def encode(self, call: Call) -> UpstreamRequest:
        url = join_url(self.settings.native_openai_base_url, NATIVE_PATHS[call.kind])
        headers = {"Content-Type": "application/json"}
        if "Authorization" in call.headers:
            headers["Authorization"] = call.headers["Authorization"]
        if call.upstream_stream:
            headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        return UpstreamRequest("POST", url, headers, call.body_bytes(), call.timeout)

    def native_front(self, front: str, model: str | None) -> bool:
        """Claude models' /v1/messages go to ARGO's Anthropic endpoint; other models and fronts go through
        the chat translation."""
        return front == "messages" and "claude" in native_model(model or "", "chat").lower()

    def front_request(self, call: Call, front: str, body: dict[str, Any], count_only: bool) -> UpstreamRequest:
        """The Messages request for ARGO's native Anthropic endpoint: alias mapped, user set (as the key and
        in metadata.user_id), image URLs inlined, as native OpenAI mode does."""
        if "timeout" in body:
            call.timeout = pop_timeout(body)
        user = self.user_for(call)
        body["model"] = call.upstream_model = native_model(body.get("model") or "", "chat")
        if not count_only:
            body["metadata"] = {**(body.get("metadata") if isinstance(body.get("metadata"), dict) else {}),
                                "user_id": user}
            self.inline_anthropic_images(body)
        base = self.settings.native_anthropic_base_url
        url = join_url(base, "/count_tokens") if count_only else base
        headers = {"Content-Type": "application/json", "X-Api-Key": user,
                   "Anthropic-Version": call.headers.get("Anthropic-Version") or "2023-06-01"}
        if call.headers.get("Anthropic-Beta"):
            headers["Anthropic-Beta"] = call.headers["Anthropic-Beta"]
        if body.get("stream") is True and not count_only:
            headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        return UpstreamRequest("POST", url, headers, dumps(body), call.timeout)

    def inline_anthropic_images(self, body: dict[str, Any]) -> None:
        """Image blocks with a URL source become base64 sources (a failed download keeps its URL)."""
        sources = [block["source"] for message in body.get("messages") or () if isinstance(message, dict)
                   for block in (message.get("content") if isinstance(message.get("content"), list) else ())
                   if isinstance(block, dict) and block.get("type") == "image" and isinstance(block.get("source"), dict)
                   and block["source"].get("type") == "url" and isinstance(block["source"].get("url"), str)]
        if not sources:
            return
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

    # ------------------------------------------------------------------ answer side
    def decode(self, call: Call, resp: UpstreamResponse) -> dict[str, Any] | bytes:
        names = call.extra.get("text_calls")
        if names:
            return text_call_answers.transform_body(resp.content, names, self.text_call_limit)
        return resp.content

    def decode_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        events = relay_sse(resp, self.upstream.read_timeout, self.settings.max_sse_event_bytes)
        names = call.extra.get("text_calls")
        return text_call_answers.stream_items(events, names, self.text_call_limit) if names else events

    def error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        err = upstream_error(resp)
        err.raw = resp.content
        err.headers["Content-Type"] = resp.headers.get("Content-Type") or "application/json"
        return err
