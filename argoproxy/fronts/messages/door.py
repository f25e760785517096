"""The Messages door's Front: its routes, keys (`x-api-key`, or a Bearer token), errors and headers."""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Mapping

from argoproxy.fronts.front import DoorArgs, DoorRoute, Exchange, Front, bearer
from argoproxy.fronts.messages.answer import chat_to_message
from argoproxy.fronts.messages.batches import MessageBatches
from argoproxy.fronts.messages.errors import error_type
from argoproxy.fronts.messages.models import model_entry, model_list
from argoproxy.fronts.messages.request import request_to_chat, thinking_requested
from argoproxy.fronts.messages.stream import stream_events
from argoproxy.fronts.messages.versions import refused_params
from argoproxy.pipeline.adapt import Shape
from argoproxy.pipeline.reservation import Spelled


# A target refused before it has a route that is plainly meant for this door (`/v1/messages;x=1`,
# `/v1/./messages`): its error in Anthropic's shape, which Anthropic's SDK and Claude Code read.
LOOKS_MESSAGES = re.compile(r"(?i)^/v1/(?:[^?#]*/)?messages(?:[;%/?#]|$)")


class MessagesFront(Front):
    name = "messages"
    renamed = {"stop": "stop_sequences", "user": "metadata.user_id", "response_format": "output_config.format",
               "reasoning_effort": "thinking"}
    routes = (DoorRoute("v1/messages", "messages", bare=True),
              DoorRoute("v1/messages/count_tokens", "count_tokens", bare=True))
    forwarded_prefixes = (("v1", "messages"), ("messages",))  # Anthropic's message batches, forwarded
    key_headers = ("X-Api-Key",)
    counts_prompt_first = True  # message_start carries usage.input_tokens (Claude Code breaks without it)
    native_shape = Shape(("output_config", "effort"), "max_tokens", False)
    spelled = Spelled(limits=(("max_tokens",),), supply=("max_tokens",))  # max_tokens is required
    spelled_paths = (("/v1/messages", spelled),)  # a message batch's requests
    batch_routes = (("messages/batches", MessageBatches()),)

    def claims_client(self, headers: Mapping[str, str], query: str) -> bool:
        return "Anthropic-Version" in headers  # Anthropic's SDK and Claude Code send it on every request

    def looks_like_mine(self, target: str) -> bool:
        return LOOKS_MESSAGES.search(target) is not None

    def model_list(self, data: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        return model_list(data)

    def model_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return model_entry(entry)

    def withheld_params(self, headers: Mapping[str, str]) -> frozenset[str]:
        return refused_params(headers.get("Anthropic-Version"))  # from 2026-10-21: no sampling parameters

    def id_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}  # Anthropic's SDKs read the request id from `request-id`

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        dropped: dict[str, None] = {}
        chat = request_to_chat(body, count_only=count_only, dropped=dropped)
        stops = tuple(s for s in body.get("stop_sequences") or () if isinstance(s, str))
        asked = thinking_requested(body)
        return chat, Exchange(model=chat["model"], stream=chat.get("stream") is True, request=body, thinking=asked,
                              asks_reasoning=asked, stop_sequences=stops, dropped=tuple(dropped))

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        ex.output = chat_to_message(completion, ex)
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        return stream_events(chunks, ex)

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error_type(status), "message": err.get("message") or ""},
                "request_id": request_id}

    def client_key(self, headers: Mapping[str, str]) -> str | None:
        return (headers.get("X-Api-Key") or "").strip() or bearer(headers.get("Authorization"))

    def upstream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Anthropic-only headers stay here; the client's x-api-key becomes the Bearer token a chat upstream
        expects (when the proxy has no key of its own, the client's key is the upstream's credential)."""
        out = {k: v for k, v in headers.items() if not k.lower().startswith("anthropic-") and k.lower() != "x-api-key"}
        key = self.client_key(headers)
        if key and "Authorization" not in out:
            out["Authorization"] = f"Bearer {key}"
        return out
