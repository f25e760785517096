"""The Interactions door's Front: its routes (`POST /v1beta/interactions`, and /v1/, /v1alpha/), its keys
(Google's: `x-goog-api-key` or `?key=`), its errors, its SSE events, and what it keeps (kept.py, over
argoproxy/state/). What the API has beyond interactions (agents, webhooks, triggers, environments) answers 404 in
its error shape under /v1beta/ and /v1alpha/."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from argoproxy.edge.classify import Route
from argoproxy.edge.paths import encode_path
from argoproxy.errors import ProxyError
from argoproxy.fronts.front import DoorArgs, DoorRoute, Exchange, Front
from argoproxy.fronts.interactions.answer import (PREFIX, VERSIONS, InteractionsExchange, InteractionsStream,
                                                  chat_to_interaction, error_object)
from argoproxy.fronts.interactions.request import request_to_chat, thinks
from argoproxy.jsonfast import dumps
from argoproxy.state.records import response_id

# The API's other resources: not served (404 in the door's shape, never forwarded).
UNSERVED = frozenset(("agents", "webhooks", "triggers", "environments"))
# Fields only the store reads: refused here when nothing is stored (RESPONSES_STORE off).
STATEFUL = ("previous_interaction_id", "background")


class InteractionsFront(Front):
    name = "interactions"
    routes = tuple(DoorRoute(f"{version}/interactions", "interactions") for version in VERSIONS)
    key_headers = ("X-Goog-Api-Key",)
    key_params = frozenset({"key"})  # Google's `?key=`, read on this door's routes only
    key_hint = "`x-goog-api-key: <key>` or `?key=<key>`"
    passes_through = False  # no backend serves the Interactions API
    renamed = {"messages": "input", "max_tokens": "generation_config.max_output_tokens",
               "temperature": "generation_config.temperature", "top_p": "generation_config.top_p",
               "seed": "generation_config.seed", "stop": "generation_config.stop_sequences",
               "reasoning_effort": "generation_config.thinking_level", "response_format": "response_format",
               "tools": "tools", "tool_choice": "generation_config.tool_choice"}

    # ------------------------------------------------------------ routes
    def route(self, parts: tuple[str, ...]) -> Route | None:
        """The API's paths this door does not serve: /v1beta/interactions/{id}... without a store, agents,
        webhooks, triggers, environments: a 404 in its shape (they would otherwise be the Google door's). Under
        /v1/ only interactions: /v1/agents... stay the rest of the table's (an OpenAI-compatible server's own)."""
        key = tuple(p.lower() for p in parts[:2])
        if len(key) < 2 or key[0] not in VERSIONS:
            return None
        if key[1] == "interactions" or (key[1] in UNSERVED and key[0] != "v1"):
            return Route("unknown", "unknown", encode_path(parts), front=self.name)
        return None

    # ------------------------------------------------------------ translation
    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        for name in STATEFUL:  # kept.py takes them out of a request it serves: here, nothing is stored
            if body.get(name) not in (None, False):
                raise ProxyError(400, f"`{name}` needs stored interactions, and this proxy stores none "
                                 "(RESPONSES_STORE is off): send the whole conversation as `input` steps.",
                                 param=name, code="invalid_argument")
        chat, dropped = request_to_chat(body)
        asked = isinstance(body.get("generation_config"), dict) and \
            body["generation_config"].get("thinking_level") is not None
        ex = InteractionsExchange(model=chat["model"], stream=chat.get("stream") is True, request=body,
                                  thinking=thinks(body), asks_reasoning=asked, dropped=dropped,
                                  interaction_id=response_id(PREFIX))
        return chat, ex

    def answer_budget(self, max_sse_event_bytes: int, journal_bytes: int) -> int:
        # interaction.completed repeats every step: kept, up to one event's size
        return max_sse_event_bytes

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        ex.output = chat_to_interaction(completion, ex)
        if ex.keeper is not None:  # stored before it is sent (its JSON made once, for both)
            ex.output = ex.keeper.whole(ex.output)
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        events = InteractionsStream(ex).run(chunks)
        keeper = ex.keeper
        if keeper is None:
            return events
        if keeper.background:  # its events and progress kept as they go
            kept: Iterator[dict[str, Any]] = keeper.events(events)
            return kept
        return saved_at_the_end(events, keeper)

    def encode_event(self, event: dict[str, Any]) -> bytes:
        kind: str = event["event_type"]
        return b"event: " + kind.encode() + b"\ndata: " + dumps(event) + b"\n\n"

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        return error_object(status, err.get("message") or "", err.get("code"))

    def client_key(self, headers: Mapping[str, str]) -> str | None:
        return None  # a Google API key is never an upstream's credential

    def upstream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Google's own headers (x-goog-api-key, x-goog-api-client...) stay here."""
        return {k: v for k, v in headers.items() if not k.lower().startswith("x-goog-")}

    # ------------------------------------------------------------ stored state
    def kept(self, settings: Any, state: Any) -> Any:
        if state is None:
            return None
        from argoproxy.fronts.interactions.kept import KeptInteractions  # the store's modules: in the worker only
        return KeptInteractions(state, self.encode_event)


def saved_at_the_end(events: Iterator[dict[str, Any]], keeper: Any) -> Iterator[dict[str, Any]]:
    """A stored stream's interaction saved at `interaction.completed`, before that event is sent (a client that
    chains at once finds it)."""
    for event in events:
        if event["event_type"] == "interaction.completed":
            keeper.save(event["interaction"])
        yield event
