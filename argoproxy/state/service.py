"""What the gateway and the door call: ResponsesState, one per worker, over one store.

`serve` takes a Responses create request before the stateless door translates it: it rebuilds the history
(chain.py), hands the door a stateless request with a Keeper (keeper.py) that saves the answer, starts a
background run (background.py), and under `truncation: "auto"` asks again without the oldest turn while the
upstream says the context is exceeded."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.fronts.responses import compact
from argoproxy.fronts.responses.shapes import is_item_reference
from argoproxy.state import chain
from argoproxy.state.keeper import Attempt, Keeper
from argoproxy.sqlite_files import first_here, off_loop
from argoproxy.state.records import (StoredConversation, StoredResponse, StoreFull, made_within, owner_of,
                                     as_it_stands, response_id, response_of)
from argoproxy.state.write_behind import FRESH, WriteBehind

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.http_objects import Answer
    from argoproxy.pipeline.call import Call
    from argoproxy.state.background import Background

log = logging.getLogger("cot_proxy")

CONTEXT_CODE = "context_length_exceeded"


class ResponsesState:
    def __init__(self, settings: Settings, store: Any, offload: bool, answers: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.offload = offload  # SQLite: a call that would wait goes to gevent's threadpool
        # SQLite: new responses written in batches just after their answers (write_behind.py)
        self.behind = WriteBehind(self.io, store) if offload else None
        self.background: Background | None = None  # set by open_state
        # the worker's Answers (pipeline/answers.py): what the proxy answers itself is observed through it
        self.answers: Any = answers

    @staticmethod
    def serves(front: Any) -> bool:
        """Is this the door whose requests the store reads and keeps (the Responses door)?"""
        return front.name == "responses"

    @staticmethod
    def serves_routes(backend: Any, routed: bool) -> bool:
        """Are the state routes the proxy's? Not when the upstream serves the Responses API itself (pass-through:
        it holds the state, and /v1/responses/{id}... are forwarded to it)."""
        return routed or not backend.native_front("responses", None)

    # ---------------------------------------------------------------- store calls (off the loop)
    def io(self, fn: Callable[..., Any], *args: Any, pauses: tuple[float, ...] = ()) -> Any:
        """A store call; a store that fails (locked past its wait, a full disk, Redis away) is a 503 saying so,
        its error named by type only (what it says may quote stored text or Redis's address). `pauses`: how
        long a caller no client waits on sleeps before trying on the loop again (sqlite_files.first_here)."""
        try:
            if not self.offload:
                return fn(*args)
            value = first_here(lambda: fn(*args), pauses)  # on the loop unless it would wait (sqlite_files)
        except ProxyError:
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3's and redis-py's errors alike
            log.warning("response store: %s failed (%s)", getattr(fn, "__name__", "call"), type(exc).__name__)
            raise ProxyError(503, "The response store cannot be reached just now; try again, or send "
                             "`store: false` with the whole conversation in `input`.", code="store_unavailable",
                             type="service_unavailable") from None
        self.maintain()
        return value

    def maintain(self) -> None:
        """The store's sweep and checkpoint when due, after a call: their failure (a lock held past its wait by
        another process) is the next call's to retry, never this call's answer (it was a 503 after a write that
        had succeeded)."""
        try:
            if self.store.maintenance_due():
                off_loop(self.store.maintain)
        except Exception as exc:  # noqa: BLE001 - sqlite3's and redis-py's errors alike
            log.warning("response store: its upkeep failed (%s); it is tried again when next due", type(exc).__name__)

    def load(self, resp_id: str) -> StoredResponse | None:
        """A stored response (its cancel and heartbeat read with it); see load_many for what is pending."""
        if not storable(resp_id):
            return None
        behind = self.behind
        held = behind.get(resp_id) if behind is not None else None
        if held is not None:
            return held
        found: StoredResponse | None = self.io(self.store.get_response, resp_id)
        if found is None and behind is not None and behind.active() and made_within(resp_id, FRESH):
            return self.load_many([resp_id]).get(resp_id)
        return found

    def load_many(self, ids: list[str]) -> dict[str, StoredResponse]:
        """Stored responses by id: this worker's pending ones, else the store's; a fresh id the store lacks may be
        in another worker's batch still: waited for (at most FRESH seconds)."""
        behind = self.behind
        if behind is None:
            stored: dict[str, StoredResponse] = self.io(self.store.get_responses, ids)
            return stored
        found = behind.get_many(ids)
        found.update(self.io(self.store.get_responses, [i for i in ids if i not in found]))
        waiting = [i for i in ids if i not in found and made_within(i, FRESH)] if behind.active() else []
        deadline = time.monotonic() + FRESH
        while waiting and time.monotonic() < deadline:
            time.sleep(0.002)  # gevent's: the worker's other requests go on
            found.update(behind.get_many(waiting))
            found.update(self.io(self.store.get_responses, [i for i in waiting if i not in found]))
            waiting = [i for i in waiting if i not in found]
        return found

    def put(self, rec: StoredResponse) -> None:
        self.io(self.store.put_response, rec)

    def put_new(self, rec: StoredResponse) -> None:
        """A new response, not a background run's: written behind its answer where that is cheaper."""
        if self.behind is None:
            self.put(rec)
        else:
            self.behind.put(rec)

    def delete(self, resp_id: str) -> None:
        if self.behind is not None:
            self.behind.drop(resp_id)
        self.io(self.store.delete_response, resp_id)

    def update(self, rec: StoredResponse) -> bool:
        """A background run's own write: over its record only (False: deleted meanwhile, and left so)."""
        return bool(self.io(self.store.update_response, rec))

    def append(self, conv: StoredConversation, items: list[dict[str, Any]]) -> None:
        self.io(self.store.add_items, conv, items)

    def owner(self, call: Call) -> str:
        return owner_of(call.client.request, self.settings.enable_auth)

    # ---------------------------------------------------------------- POST /v1/responses
    def serve(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        if call.plan.kind == compact.KIND:
            return self.compaction(call, body, attempt)
        store, background, truncation = checked(body)
        if not store and not stateful(body):
            return attempt(call, body, None)  # nothing to read or keep: the plain door
        owner = self.owner(call)
        resp_id = response_id()
        history = self.history(owner, body, truncation == "auto", resp_id)
        if store:
            self.check_room(owner)
        echo = {"id": resp_id, "store": store, "background": background,
                "previous_response_id": body.get("previous_response_id"), "truncation": truncation or "disabled",
                "conversation": {"id": history.conversation.id} if history.conversation is not None else None}
        if background:
            assert self.background is not None
            return self.background.start(call, body, history, echo, attempt)
        keeper = Keeper(self, owner, history, echo, store)
        return self.attempts(call, body, history, keeper, attempt, truncation == "auto")

    def request_for(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """The request `serve` first hands the door (the history put before the input, the store's fields gone),
        as a token limit's reservation reads it before the request is served (meter/worst.py)."""
        compacting = call.plan.kind == compact.KIND
        store, _, truncation = checked(body) if not compacting else (False, False, None)
        if not store and not stateful(body):
            return body
        history = self.history(self.owner(call), body, truncation == "auto")
        return chain.stateless_body(body, history.sent(history.items))

    def compaction(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        """POST /v1/responses/compact: what it compacts read from the store (a previous_response_id chain,
        item_reference items); nothing is kept (its answer is the compacted window, for the client to send)."""
        if not stateful(body):
            return attempt(call, body, None)
        history = self.history(self.owner(call), body)
        return attempt(call, chain.stateless_body(body, history.sent(history.items)), None)

    def attempts(self, call: Call, body: dict[str, Any], history: chain.History, keeper: Keeper,
                 attempt: Attempt, auto: bool) -> Answer:
        """The request with its history; under truncation auto, again without the oldest turn while the
        upstream says the context is exceeded (no keepalive is sent first, so that error is still an HTTP one)."""
        items = history.items
        if auto and items:
            keeper.quiet = True
        while True:
            try:
                return attempt(call, chain.stateless_body(body, history.sent(items)), keeper)
            except ProxyError as err:
                if not auto or err.code != CONTEXT_CODE:
                    raise
                shorter = chain.without_oldest_turn(items)
                if shorter is None or not items:
                    raise
                log.info("%s: context exceeded; asking again without the oldest turn (truncation auto)",
                         call.client.request_id)
                items = shorter

    def history(self, owner: str, body: dict[str, Any], auto: bool = False,
                resp_id: str | None = None) -> chain.History:
        """The request's history (a chain's or a conversation's items), at most MAX_BODY_BYTES of it, as a client
        could send itself: past that, its oldest turns are left out under truncation auto, else a 400."""
        limit = self.settings.max_body_bytes
        previous, conversation = body.get("previous_response_id"), body.get("conversation")
        if previous is not None and conversation is not None:
            raise ProxyError(400, "Mutually exclusive parameters: `previous_response_id` and `conversation` cannot "
                             "both be given.", param="conversation", code="mutually_exclusive_parameters")
        history = chain.History()
        prev = None
        if previous is not None:
            if not isinstance(previous, str) or not previous:
                raise ProxyError(400, "`previous_response_id` must be a non-empty string.",
                                 param="previous_response_id", code="invalid_value")
            prev = self.owned_response(owner, previous, "previous_response_id")
            if prev.status in ("queued", "in_progress"):
                raise ProxyError(400, f"Previous response with id '{previous}' is still in progress.",
                                 param="previous_response_id", code="previous_response_in_progress")
            records, whole = chain.previous_chain(prev, self.load_many, limit)
            if not whole and not auto:
                raise chain.too_long(limit)
            history.items = chain.chain_items([r for r in records if r.owner == owner])
            if not whole:
                history.items = chain.whole_turns(history.items)
            history.chain = chain.new_chain(prev)
        if conversation is not None:
            conv_id = conversation.get("id") if isinstance(conversation, dict) else conversation
            if not isinstance(conv_id, str) or not conv_id:
                raise ProxyError(400, "`conversation` must be a conversation id or {\"id\": ...}.",
                                 param="conversation", code="invalid_value")
            history.conversation = self.owned_conversation(owner, conv_id, "conversation")
            history.items, whole = self.io(self.store.recent_items, conv_id, limit)
            if not whole and not auto:
                raise chain.too_long(limit)
            if not whole:
                history.items = chain.whole_turns(history.items)
        new = chain.own_input(body, resp_id)
        history.references = stateful_input(body)
        history.new = chain.resolved_references(new, history.items, lambda ref: self.owned_item(owner, ref)) \
            if history.references else new
        return history

    def check_room(self, owner: str) -> None:
        used = self.behind.used(owner) if self.behind is not None else None
        if used is None:
            used = self.io(self.store.used_bytes, owner)
        if used >= self.settings.responses_max_bytes_per_key:
            raise StoreFull(f"This key's stored responses and conversations hold {used} bytes, its bound "
                            f"(RESPONSES_MAX_BYTES_PER_KEY). Delete some (DELETE /v1/responses/{{id}}, "
                            "/v1/conversations/{id}) or send `store: false`.")

    # ---------------------------------------------------------------- owned objects (others': not found)
    def owned_response(self, owner: str, resp_id: str, param: str | None = None,
                       admin: bool = False) -> StoredResponse:
        rec = self.load(resp_id)
        if rec is None or not (rec.owner == owner or admin):
            status = 400 if param else 404
            raise chain.not_found("Response", resp_id, param, status)
        return as_it_stands(rec)

    def owned_conversation(self, owner: str, conv_id: str, param: str | None = None,
                           admin: bool = False) -> StoredConversation:
        conv = self.io(self.store.get_conversation, conv_id) if storable(conv_id) else None
        if conv is None or not (conv.owner == owner or admin):
            raise chain.not_found("Conversation", conv_id, param, 400 if param else 404)
        return conv

    def owned_item(self, owner: str, item_id: str) -> dict[str, Any] | None:
        """An item of one of the key's conversations, or of one of its stored responses (an input or an output
        item: its id ends with the response's digits)."""
        found = self.io(self.store.item, item_id) if storable(item_id) else None
        if found is not None:
            return found[2] if found[1] == owner else None
        resp_id = response_of(item_id)
        rec = self.load(resp_id) if resp_id is not None else None
        if rec is None or rec.owner != owner:
            return None
        return next((i for i in rec.input + rec.output if isinstance(i, dict) and i.get("id") == item_id), None)


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


def open_state(settings: Settings, answers: Any = None) -> ResponsesState:
    """The worker's state over REDIS_URL's Redis when set (replicas share it), else responses.db."""
    from argoproxy.state.background import Background
    args = (settings.responses_retention, settings.responses_max_bytes_per_key, settings.responses_max_bytes)
    if settings.redis_url:
        from argoproxy.state.redis_store import RedisResponseStore
        state = ResponsesState(settings, RedisResponseStore(settings.redis_url, *args), offload=False, answers=answers)
    else:
        from argoproxy.state.store import SQLiteResponseStore
        state = ResponsesState(settings, SQLiteResponseStore(settings.responses_db, *args), offload=True,
                               answers=answers)
    state.background = Background(state)
    return state


def storable(key: str) -> bool:
    """Could the store hold this id? A client's id may hold a lone surrogate (JSON allows one), which neither SQLite
    nor Redis can encode: no stored id has one (looking it up failed, a 503)."""
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return True
