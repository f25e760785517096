"""Stored interactions, the Interactions door's use of the state package (argoproxy/state/): `store` (on unless
false), `previous_interaction_id` chains, `background` runs, and the routes on a stored interaction (GET, DELETE,
POST .../cancel), over the worker's one StateService: the same store, per-key bounds and retention
(RESPONSES_RETENTION...) as the Responses door's stored responses. Another key's interaction, or a response's id,
is not found in the same words as an unknown id.

`serve` takes a create request before the stateless translation: the chain's steps (each stored interaction's
input steps, then its output steps, oldest first) are put before the new input, and a Keeper saves the answer
(whole before it is sent, a stream at `interaction.completed`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from argoproxy.edge.classify import Route
from argoproxy.edge.http_objects import Answer
from argoproxy.edge.paths import encode_path
from argoproxy.edge.request_models import query_values
from argoproxy.errors import ProxyError
from argoproxy.fronts.interactions.answer import PREFIX, VERSIONS, InteractionsExchange, interaction_object
from argoproxy.fronts.interactions.request import input_steps
from argoproxy.jsonfast import dumps
from argoproxy.state import chain
from argoproxy.state.background import follow_answer
from argoproxy.state.keeper import Attempt, Keeper
from argoproxy.state.records import response_id

if TYPE_CHECKING:
    from argoproxy.pipeline.call import Call
    from argoproxy.state.records import StoredResponse
    from argoproxy.state.service import StateService

STATE_FIELDS = frozenset(("previous_interaction_id", "store", "background"))
TERMINAL = frozenset(("interaction.completed",))


class InteractionsShapes:
    """What the Interactions door tells the state package of its API (state/shapes.py's DoorShapes)."""

    prefix = PREFIX

    def __init__(self, encode_event: Callable[[dict[str, Any]], bytes]) -> None:
        self.encode_event = encode_event  # the door's own SSE events

    @staticmethod
    def starts_turn(item: dict[str, Any]) -> bool:
        return item.get("type") == "user_input"

    @staticmethod
    def is_reference(item: Any) -> bool:
        return False  # the API has no references to stored steps

    @staticmethod
    def terminal(event: dict[str, Any]) -> dict[str, Any] | None:
        if event.get("event_type") in TERMINAL:
            final: dict[str, Any] = event["interaction"]
            return final
        return None

    @staticmethod
    def in_progress(event: dict[str, Any]) -> dict[str, Any] | None:
        return None  # the stored object says in_progress already (queued.py's first object)

    @staticmethod
    def sequence(event: dict[str, Any]) -> int:
        return int(event["event_id"])

    @staticmethod
    def failed(base: dict[str, Any], code: str, message: str) -> dict[str, Any]:
        return {"object": "interaction", **base, "status": "failed",
                "errors": [{"code": "internal" if code == "server_error" else code, "message": message}]}

    @staticmethod
    def failed_event(after: int, obj: dict[str, Any]) -> dict[str, Any]:
        error = (obj.get("errors") or [{"code": "internal", "message": "The interaction failed."}])[-1]
        return {"event_type": "error", "error": error, "event_id": str(after + 1)}

    @staticmethod
    def output(obj: dict[str, Any]) -> list[dict[str, Any]]:
        steps = obj.get("steps")
        return steps if isinstance(steps, list) else []


class KeptInteractions:
    """The Interactions door's stored state over the worker's StateService (`encode_event`: the door's own)."""

    def __init__(self, state: StateService, encode_event: Callable[[dict[str, Any]], bytes]) -> None:
        self.state = state
        self.shapes = InteractionsShapes(encode_event)

    # ---------------------------------------------------------------- the sequence's side: POST .../interactions
    def serve(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        store, background = checked(body)
        state = self.state
        owner = state.owner(call)
        rec_id = response_id(PREFIX)
        history = self.history(owner, body)
        if store:
            state.check_room(owner)
        echo: dict[str, Any] = {"id": rec_id}
        if body.get("previous_interaction_id") is not None:
            echo["previous_interaction_id"] = body["previous_interaction_id"]
        if background:
            return self.start(call, body, history, echo, attempt)
        keeper = Keeper(state, self.shapes, owner, history, echo, store)
        return attempt(call, stateless_body(body, history.sent(history.items)), keeper)

    def start(self, call: Call, body: dict[str, Any], history: chain.History, echo: dict[str, Any],
              attempt: Attempt) -> Answer:
        """`background: true`: the interaction answered at once (`in_progress`, or its stream followed from the
        store), its run going on in the worker; a cancel stops it."""
        state = self.state
        assert state.background is not None
        streamed = body.get("stream") is True
        keeper = Keeper(state, self.shapes, state.owner(call), history, echo, True, background=True,
                        keep_events=streamed)
        ex = InteractionsExchange(model=str(body.get("model")), stream=streamed, request=body,
                                  interaction_id=echo["id"])
        ex.state = {**echo, "background": True}
        keeper.echo = ex.state
        first = interaction_object(ex, "in_progress", None, None)
        inner = stateless_body({**body, "stream": True}, history.sent(history.items))
        return state.background.start(call, keeper, first, float(ex.created), inner, attempt)

    def request_for(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """The request `serve` first hands the door, as a token limit's reservation reads it."""
        if body.get("previous_interaction_id") is None:
            return stateless_body(body, None)
        history = self.history(self.state.owner(call), body)
        return stateless_body(body, history.sent(history.items))

    def history(self, owner: str, body: dict[str, Any]) -> chain.History:
        """The chain's steps before the request's own (at most MAX_BODY_BYTES of them, whole turns), and its
        own steps as stored."""
        history = chain.History()
        previous = body.get("previous_interaction_id")
        if previous is not None:
            if not isinstance(previous, str) or not previous:
                raise ProxyError(400, "`previous_interaction_id` must be a non-empty string.",
                                 param="previous_interaction_id", code="invalid_argument")
            prev = self.owned(owner, previous, "previous_interaction_id")
            if prev.status in ("queued", "in_progress"):
                raise ProxyError(400, f"Interaction with id '{previous}' is still in progress.",
                                 param="previous_interaction_id", code="failed_precondition")
            records, whole = chain.previous_chain(prev, self.state.load_many, self.state.settings.max_body_bytes)
            history.items = chain.chain_items([r for r in records if r.owner == owner], self.shapes.output)
            if not whole:
                history.items = chain.whole_turns(history.items, self.shapes.starts_turn)
            history.chain = chain.new_chain(prev)
            history.references = True  # the input is sent as steps after the chain's, whatever its form
        if body.get("input") is not None:
            history.new = input_steps(body["input"])
        return history

    def owned(self, owner: str, rec_id: str, param: str | None = None, admin: bool = False) -> StoredResponse:
        rec = self.state.owned(owner, rec_id, PREFIX, admin)
        if rec is None:
            raise chain.not_found("Interaction", rec_id, param, 400 if param else 404,
                                  "invalid_argument" if param else "not_found")
        return rec

    # ---------------------------------------------------------------- the door's side: its routes
    def serves_routes(self, backend: Any, routed: bool, name: str) -> bool:
        return True  # no upstream serves the Interactions API: the proxy holds its state

    @staticmethod
    def claim(parts: tuple[str, ...]) -> Route | None:
        """/v1beta/interactions/{id} (GET, DELETE) and /v1beta/interactions/{id}/cancel (POST); v1alpha too."""
        key = tuple(p.lower() for p in parts)
        if len(parts) not in (3, 4) or key[0] not in VERSIONS or key[1] != "interactions" or not parts[2]:
            return None
        if len(parts) == 4:
            if key[3] != "cancel":
                return None
            return Route("interaction_cancel", "state", encode_path((key[0], "interactions", parts[2], "cancel")),
                         frozenset({"POST"}), front="interactions")
        return Route("interaction", "state", encode_path((key[0], "interactions", parts[2])),
                     frozenset({"GET", "DELETE"}), front="interactions")

    def answer_route(self, call: Call, kind: str, ids: list[str], query: str, body: dict[str, Any] | None,
                     admin: bool) -> Answer:
        state = self.state
        rec_id = ids[0]
        rec = self.owned(state.owner(call), rec_id, admin=admin and state.settings.responses_admin_reads)
        if kind == "interaction_cancel":
            if not rec.background:
                raise ProxyError(400, "Only an interaction created with `background: true` can be cancelled.",
                                 code="failed_precondition")
            if rec.status in ("queued", "in_progress"):  # read as cancelled from now on (records.as_it_stands)
                state.io(state.store.set_cancelled, rec_id)
                rec.response = {**rec.response, "status": "cancelled"}
            return json_answer(rec.response)
        if call.client.method == "DELETE":  # a running background one stops too: its run sees it gone
            state.delete(rec_id)
            return json_answer({})
        if one(query, "stream") == "true":
            if not rec.background:
                raise ProxyError(400, "Only an interaction created with `background: true` and `stream: true` can "
                                 "be streamed again.", param="stream", code="failed_precondition")
            after = one(query, "last_event_id")
            try:
                start = int(after) if after is not None else -1
            except ValueError:
                raise ProxyError(400, "`last_event_id` must be an event_id of this interaction's stream.",
                                 param="last_event_id", code="invalid_argument") from None
            return follow_answer(state, self.shapes, rec_id, start)
        return json_answer(rec.response)


def checked(body: dict[str, Any]) -> tuple[bool, bool]:
    """A create request's `store` and `background`, checked."""
    store, background = body.get("store", True), body.get("background", False)
    for name, value in (("store", store), ("background", background)):
        if not isinstance(value, bool):
            raise ProxyError(400, f"`{name}` must be true or false.", param=name, code="invalid_argument")
    if background and not store:
        raise ProxyError(400, "Background interactions are stored: `background: true` needs `store` true.",
                         param="background", code="invalid_argument")
    return store, background


def stateless_body(body: dict[str, Any], steps: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The request as the stateless door takes it: the chain's steps and its own in `input`, the store's fields
    gone."""
    return chain.stateless_body(body, steps, STATE_FIELDS)


def one(query: str, name: str) -> str | None:
    values = query_values(query, name) if query else []
    return values[-1] if values else None


def json_answer(obj: Any) -> Answer:
    return Answer(dumps(obj), 200, content_type="application/json")
