"""What a door that keeps state calls: StateService, one per worker, over one store that every such door shares
(the same bounds per key and per instance, the same retention). It stores, reads and deletes a door's objects and
conversations, each key seeing only its own; the door rebuilds a request's history from them (chain.py), saves its
answer through a Keeper (keeper.py) and starts background runs (background.py). It reads no request: what a
request asks of the store is the door's to say (fronts/responses/kept.py, fronts/interactions/kept.py)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.sqlite_files import first_here, off_loop
from argoproxy.state.records import (StoredConversation, StoredResponse, StoreFull, as_it_stands, made_within,
                                     owner_of, response_of)
from argoproxy.state.write_behind import FRESH, WriteBehind

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.pipeline.call import Call
    from argoproxy.state.background import Background

log = logging.getLogger("cot_proxy")


class StateService:
    def __init__(self, settings: Settings, store: Any, offload: bool, answers: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.offload = offload  # SQLite: a call that would wait goes to gevent's threadpool
        # SQLite: new responses written in batches just after their answers (write_behind.py)
        self.behind = WriteBehind(self.io, store) if offload else None
        self.background: Background | None = None  # set by open_state
        # the worker's Answers (pipeline/answers.py): what the proxy answers itself is observed through it
        self.answers: Any = answers

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

    def check_room(self, owner: str) -> None:
        used = self.behind.used(owner) if self.behind is not None else None
        if used is None:
            used = self.io(self.store.used_bytes, owner)
        if used >= self.settings.responses_max_bytes_per_key:
            raise StoreFull(f"This key's stored responses and conversations hold {used} bytes, its bound "
                            "(RESPONSES_MAX_BYTES_PER_KEY). Delete some (DELETE on their routes) or send "
                            "`store: false`.")

    # ---------------------------------------------------------------- owned objects (others': not found)
    def owned(self, owner: str, rec_id: str, prefix: str, admin: bool = False) -> StoredResponse | None:
        """A stored object of the door whose ids start with `prefix`, as it stands, if it is the key's (or `admin`
        may read others'); None otherwise: the door says "not found" in its own words, for another key's object
        as for an unknown id, so that ids cannot be probed."""
        rec = self.load(rec_id) if rec_id.startswith(prefix) else None
        if rec is None or not (rec.owner == owner or admin):
            return None
        return as_it_stands(rec)

    def owned_conversation(self, owner: str, conv_id: str, admin: bool = False) -> StoredConversation | None:
        conv = self.io(self.store.get_conversation, conv_id) if storable(conv_id) else None
        if conv is None or not (conv.owner == owner or admin):
            return None
        return conv

    def owned_item(self, owner: str, item_id: str, prefix: str,
                   output: Any) -> dict[str, Any] | None:
        """An item of one of the key's conversations, or of one of its stored objects (an input or an output item,
        `output` reading the latter: its id ends with the object's digits)."""
        found = self.io(self.store.item, item_id) if storable(item_id) else None
        if found is not None:
            return found[2] if found[1] == owner else None
        resp_id = response_of(item_id, prefix)
        rec = self.load(resp_id) if resp_id is not None else None
        if rec is None or rec.owner != owner:
            return None
        return next((i for i in rec.input + output(rec.response) if isinstance(i, dict) and i.get("id") == item_id),
                    None)


def open_state(settings: Settings, answers: Any = None) -> StateService:
    """The worker's state over REDIS_URL's Redis when set (replicas share it), else responses.db."""
    from argoproxy.state.background import Background
    args = (settings.responses_retention, settings.responses_max_bytes_per_key, settings.responses_max_bytes)
    if settings.redis_url:
        from argoproxy.state.redis_store import RedisResponseStore
        state = StateService(settings, RedisResponseStore(settings.redis_url, *args), offload=False, answers=answers)
    else:
        from argoproxy.state.store import SQLiteResponseStore
        state = StateService(settings, SQLiteResponseStore(settings.responses_db, *args), offload=True,
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
