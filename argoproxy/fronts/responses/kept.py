"""Stored responses, the Responses door's use of the state package (argoproxy/state/): `store`,
`previous_response_id`, `conversation`, `item_reference` items, `background` and `truncation: "auto"`.

`serve` takes a create request before the stateless translation: it rebuilds the history from the store (a chain's
or a conversation's items), hands the door a stateless request with a Keeper that saves the answer, starts a
background run, and under `truncation: "auto"` asks again without the oldest turn while the upstream says the
context is exceeded. KeptResponses is what the fronts' registry hands the sequence for this door (fronts/kept.py);
its routes (GET/DELETE /v1/responses/{id}, /v1/conversations...) are kept_routes.py's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from argoproxy.edge.classify import Route
from argoproxy.errors import ProxyError
from argoproxy.fronts.responses import compact
from argoproxy.fronts.responses.kept_items import own_input, stateless_body, too_long
from argoproxy.fronts.responses.kept_routes import StateRoutes, state_route
from argoproxy.fronts.responses.kept_shapes import ResponsesShapes
from argoproxy.fronts.responses.response import response_object
from argoproxy.fronts.responses.shapes import is_item_reference
from argoproxy.fronts.front import Exchange
from argoproxy.state import chain
from argoproxy.state.keeper import Attempt, Keeper
from argoproxy.state.records import StoredConversation, StoredResponse, response_id

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Answer
    from argoproxy.pipeline.call import Call
    from argoproxy.state.service import StateService

log = logging.getLogger("cot_proxy")

CONTEXT_CODE = "context_length_exceeded"


class KeptResponses:
    """The Responses door's stored state over the worker's StateService (`encode_event`: the door's own)."""

    def __init__(self, state: StateService, encode_event: Any) -> None:
        self.state = state
        self.shapes = ResponsesShapes(encode_event)
        self.routes = StateRoutes(self)

    # ---------------------------------------------------------------- the sequence's side: POST /v1/responses
    def serve(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        if call.plan.kind == compact.KIND:
            return self.compaction(call, body, attempt)
        store, background, truncation = checked(body)
        if not store and not stateful(body):
            return attempt(call, body, None)  # nothing to read or keep: the plain door
        state = self.state
        owner = state.owner(call)
        resp_id = response_id(self.shapes.prefix)
        history = self.history(owner, body, truncation == "auto", resp_id)
        if store:
            state.check_room(owner)
        echo = {"id": resp_id, "store": store, "background": background,
                "previous_response_id": body.get("previous_response_id"), "truncation": truncation or "disabled",
                "conversation": {"id": history.conversation.id} if history.conversation is not None else None}
        if background:
            return self.start(call, body, history, echo, attempt)
        keeper = Keeper(state, self.shapes, owner, history, echo, store)
        return self.attempts(call, body, history, keeper, attempt, truncation == "auto")

    def start(self, call: Call, body: dict[str, Any], history: chain.History, echo: dict[str, Any],
              attempt: Attempt) -> Answer:
        """`background: true`: answered at once (`queued`, or a stream followed from the store), run on."""
        state = self.state
        assert state.background is not None
        streamed = body.get("stream") is True
        keeper = Keeper(state, self.shapes, state.owner(call), history, echo, True, background=True,
                        keep_events=streamed)
        ex = Exchange(model=str(body.get("model")), stream=streamed, request=body)
        ex.state = echo
        queued = response_object(ex, echo["id"], "queued", [])
        inner = stateless_body({**body, "stream": True}, history.sent(history.items))
        return state.background.start(call, keeper, queued, float(queued["created_at"]), inner, attempt)

    def request_for(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """The request `serve` first hands the door (the history put before the input, the store's fields gone),
        as a token limit's reservation reads it before the request is served (meter/worst.py)."""
        compacting = call.plan.kind == compact.KIND
        store, _, truncation = checked(body) if not compacting else (False, False, None)
        if not store and not stateful(body):
            return body
        history = self.history(self.state.owner(call), body, truncation == "auto")
        return stateless_body(body, history.sent(history.items))

    def compaction(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        """POST /v1/responses/compact: what it compacts read from the store (a previous_response_id chain,
        item_reference items); nothing is kept (its answer is the compacted window, for the client to send)."""
        if not stateful(body):
            return attempt(call, body, None)
        history = self.history(self.state.owner(call), body)
        return attempt(call, stateless_body(body, history.sent(history.items)), None)

    def attempts(self, call: Call, body: dict[str, Any], history: chain.History, keeper: Keeper,
                 attempt: Attempt, auto: bool) -> Answer:
        """The request with its history; under truncation auto, again without the oldest turn while the
        upstream says the context is exceeded (no keepalive is sent first, so that error is still an HTTP one)."""
        items = history.items
        if auto and items:
            keeper.quiet = True
        while True:
            try:
                return attempt(call, stateless_body(body, history.sent(items)), keeper)
            except ProxyError as err:
                if not auto or err.code != CONTEXT_CODE:
                    raise
                shorter = chain.without_oldest_turn(items, self.shapes.starts_turn)
                if shorter is None or not items:
                    raise
                log.info("%s: context exceeded; asking again without the oldest turn (truncation auto)",
                         call.client.request_id)
                items = shorter

    def history(self, owner: str, body: dict[str, Any], auto: bool = False,
                resp_id: str | None = None) -> chain.History:
        """The request's history (a chain's or a conversation's items), at most MAX_BODY_BYTES of it, as a client
        could send itself: past that, its oldest turns are left out under truncation auto, else a 400."""
        state, starts_turn = self.state, self.shapes.starts_turn
        limit = state.settings.max_body_bytes
        previous, conversation = body.get("previous_response_id"), body.get("conversation")
        if previous is not None and conversation is not None:
            raise ProxyError(400, "Mutually exclusive parameters: `previous_response_id` and `conversation` cannot "
                             "both be given.", param="conversation", code="mutually_exclusive_parameters")
        history = chain.History()
        if previous is not None:
            if not isinstance(previous, str) or not previous:
                raise ProxyError(400, "`previous_response_id` must be a non-empty string.",
                                 param="previous_response_id", code="invalid_value")
            prev = self.owned_response(owner, previous, "previous_response_id")
            if prev.status in ("queued", "in_progress"):
                raise ProxyError(400, f"Previous response with id '{previous}' is still in progress.",
                                 param="previous_response_id", code="previous_response_in_progress")
            records, whole = chain.previous_chain(prev, state.load_many, limit)
            if not whole and not auto:
                raise too_long(limit)
            history.items = chain.chain_items([r for r in records if r.owner == owner], self.shapes.output)
            if not whole:
                history.items = chain.whole_turns(history.items, starts_turn)
            history.chain = chain.new_chain(prev)
        if conversation is not None:
            conv_id = conversation.get("id") if isinstance(conversation, dict) else conversation
            if not isinstance(conv_id, str) or not conv_id:
                raise ProxyError(400, "`conversation` must be a conversation id or {\"id\": ...}.",
                                 param="conversation", code="invalid_value")
            history.conversation = self.owned_conversation(owner, conv_id, "conversation")
            history.items, whole = state.io(state.store.recent_items, conv_id, limit)
            if not whole and not auto:
                raise too_long(limit)
            if not whole:
                history.items = chain.whole_turns(history.items, starts_turn)
        new = own_input(body, resp_id)
        history.references = stateful_input(body)
        history.new = self.resolved(owner, new, history.items) if history.references else new
        return history

    def resolved(self, owner: str, items: list[dict[str, Any]], known: list[dict[str, Any]],
                 where: str = "input") -> list[dict[str, Any]]:
        """item_reference items replaced by the key's items they name (in `known` first, then the store)."""
        return chain.resolved_references(items, known, lambda ref: self.owned_item(owner, ref), is_item_reference,
                                         where)

    # ---------------------------------------------------------------- owned objects (others': not found)
    def owned_response(self, owner: str, resp_id: str, param: str | None = None,
                       admin: bool = False) -> StoredResponse:
        rec = self.state.owned(owner, resp_id, self.shapes.prefix, admin)
        if rec is None:
            if param == "previous_response_id":
                raise chain.not_found("Previous response", resp_id, param, 400, "previous_response_not_found")
            raise chain.not_found("Response", resp_id, param, 400 if param else 404)
        return rec

    def owned_conversation(self, owner: str, conv_id: str, param: str | None = None,
                           admin: bool = False) -> StoredConversation:
        conv = self.state.owned_conversation(owner, conv_id, admin)
        if conv is None:
            raise chain.not_found("Conversation", conv_id, param, 400 if param else 404)
        return conv

    def owned_item(self, owner: str, item_id: str) -> dict[str, Any] | None:
        return self.state.owned_item(owner, item_id, self.shapes.prefix, self.shapes.output)

    # ---------------------------------------------------------------- the door's side: its routes
    def serves_routes(self, backend: Any, routed: bool, name: str) -> bool:
        """Are the state routes the proxy's? Not when the upstream serves the Responses API itself (pass-through:
        it holds the state, and /v1/responses/{id}... are forwarded to it)."""
        return routed or not backend.native_front(name, None)

    @staticmethod
    def claim(parts: tuple[str, ...]) -> Route | None:
        return state_route(parts)

    def answer_route(self, call: Call, kind: str, ids: list[str], query: str, body: dict[str, Any] | None,
                     admin: bool) -> Answer:
        return self.routes.answer(call, kind, ids, query, body, admin)


def checked(body: dict[str, Any]) -> tuple[bool, bool, Any]:
    """A create request's `store`, `background` and `truncation`, checked."""
    store = flag(body, "store", True)
    background = flag(body, "background", False)
    truncation = body.get("truncation")
    if truncation not in (None, "auto", "disabled"):
        raise ProxyError(400, "`truncation` must be auto or disabled.", param="truncation", code="invalid_value")
    if background and not store:
        raise ProxyError(400, "Background responses are stored: `background: true` needs `store` true.",
                         param="background", code="invalid_value")
    return store, background, truncation


def flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ProxyError(400, f"`{name}` must be true or false.", param=name, code="invalid_type")
    return value


def stateful(body: dict[str, Any]) -> bool:
    """Does the request read the store (a chain, a conversation, an item_reference)?"""
    if body.get("previous_response_id") is not None or body.get("conversation") is not None:
        return True
    return stateful_input(body)


def stateful_input(body: dict[str, Any]) -> bool:
    """Does the request's input name stored items (item_reference)?"""
    items = body.get("input")
    return isinstance(items, list) and any(map(is_item_reference, items))
