"""One request's stored object: the fields its answer object echoes (its id and the stored fields: the door's
`echo`), and the save as the client gets the answer: a whole answer before it is sent, a stream at its terminal
event (before that event is sent, so a client that chains at once finds it, whichever worker or replica it
reaches). A background run also keeps its events and its progress, and stops when a cancel is asked. What an
event or an object holds is read through the door's DoorShapes (shapes.py)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import Encoded, dumps
from argoproxy.state.chain import History
from argoproxy.state.records import StoredResponse, StoreFull

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Answer
    from argoproxy.state.shapes import DoorShapes

log = logging.getLogger("cot_proxy")

# How a request is served once it is stateless: the door's translation and the sequence (Gateway.front_call).
# (a background run's call is its own, detached from the client's).
Attempt = Callable[[Any, dict[str, Any], "Keeper | None"], "Answer"]

FLUSH_SECONDS = 0.25  # a background run's progress (events, heartbeat) written at most this often
MAX_EVENTS = 100_000  # events a streamed background run keeps for `starting_after` (the rest: the final object)


class Keeper:
    """`state`: the worker's StateService (service.py: load, put, append); `shapes`: the door's."""

    def __init__(self, state: Any, shapes: DoorShapes, owner: str, history: History, echo: dict[str, Any],
                 store: bool, background: bool = False, keep_events: bool = False) -> None:
        self.state, self.shapes, self.owner, self.history, self.echo = state, shapes, owner, history, echo
        self.store, self.background, self.keep_events = store, background, keep_events
        self.id: str = echo["id"]
        self.pending: list[dict[str, Any]] = []  # a streamed background run's events not written yet
        self.kept = 0  # events written
        self.flushed = 0.0
        self.cancelled = False
        self.quiet = False  # no keepalives first (truncation auto's retries): the sequence plans it so
        self.saved: dict[str, Any] | None = None

    def attach(self, ex: Any) -> None:
        """Ride on the door's exchange (fronts/front.py's Exchange): its objects echo `echo`, and its encoder calls
        this keeper's hooks below as the answer is made."""
        ex.state, ex.keeper = self.echo, self

    # ---------------------------------------------------------------- the door's hooks (its Front's encoder)
    def whole(self, response: dict[str, Any]) -> dict[str, Any]:
        """A whole answer, kept before it is sent: one the store has no room for is refused (StoreFull). Returned
        as it is sent, its JSON made once for the store and its client."""
        if not self.store:
            self.save(response, refuse=True)
            return response
        sent = Encoded(response, dumps(response))
        self.save(response, refuse=True, response_json=sent.raw)
        return sent

    def events(self, events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        terminal = self.shapes.terminal
        for event in events:
            final = terminal(event)
            if self.cancelled:
                return  # cancelled (its watcher cut the upstream off): nothing more is kept, a cut's error neither
            if self.background:
                if self.keep_events and self.kept + len(self.pending) < MAX_EVENTS:
                    self.pending.append(event)
                if final is None and self.due() and not self.progress(self.shapes.in_progress(event)):
                    return  # cancelled: the answer stops here (the upstream is closed behind it)
            if final is not None:
                self.save(final)
                self.write_events()  # after the final object: a follower that reads the end finds it stored
            yield event

    # ---------------------------------------------------------------- saving
    def due(self) -> bool:
        now = time.monotonic()
        if now - self.flushed < FLUSH_SECONDS:
            return False
        self.flushed = now
        return True

    def record(self, response: dict[str, Any], response_json: bytes | None = None) -> StoredResponse:
        return StoredResponse(self.id, self.owner, float(response.get("created_at") or time.time()), response,
                              self.history.new, self.history.chain, self.background, self.cancelled,
                              time.time(), response_json=response_json)

    def write_events(self) -> None:
        if not self.pending:
            return
        events, self.pending = self.pending, []
        try:
            sequence = self.shapes.sequence
            self.state.io(self.state.store.add_events, self.record({}), [(sequence(e), e) for e in events])
            self.kept += len(events)
        except StoreFull as err:
            log.warning("background response %s: its events are no longer kept: %s", self.id, err.message)
            self.keep_events = False

    def progress(self, response: dict[str, Any] | None) -> bool:
        """A background run's events and heartbeat written; False when a cancel was asked, or its response was
        deleted."""
        stored = self.state.load(self.id)
        if stored is None or stored.cancelled:
            self.cancelled = True
            return False
        latest = response or {**stored.response, "status": "in_progress"}
        try:
            if not self.state.update(self.record(latest)):
                self.cancelled = True  # deleted since it was read
                return False
        except StoreFull as err:
            log.warning("background response %s: %s", self.id, err.message)
        self.write_events()
        return True

    def save(self, response: dict[str, Any], refuse: bool = False, response_json: bytes | None = None) -> None:
        """The final object kept, and its input and output appended to its conversation. `refuse`: a store
        without room for it raises StoreFull (a whole answer not sent yet); else that is logged only (a stream
        whose text went out already)."""
        self.saved = response
        if not self.store:
            return
        try:
            if self.background:  # over its record only: a response deleted while it ran stays deleted
                if not self.state.update(self.record(response)):
                    return
            elif self.history.conversation is None:
                self.state.put_new(self.record(response, response_json))  # behind its answer where that is cheaper
            else:
                self.state.put(self.record(response, response_json))  # before its items join the conversation
            conv = self.history.conversation
            if conv is not None and response.get("status") in ("completed", "incomplete"):
                self.state.append(conv, self.history.new + self.shapes.output(response))
        except ProxyError as err:  # StoreFull, or the store away (503)
            if refuse:
                raise
            log.warning("response %s not stored: %s", self.id, err.message)
        except Exception as exc:  # noqa: BLE001 - a store failure must not break an answer already made
            log.warning("response %s not stored: %s", self.id, type(exc).__name__)
