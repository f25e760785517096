"""Background runs (the Responses door's `background: true`): the request answers at once (`queued`), and the answer is produced by a greenlet (a
thread under gthread) of the same worker, to completion whether the client stays or not, within that worker's
life: a worker that stops (restart, max_requests, SIGTERM past the graceful timeout) ends its runs, which then
read as failed (records.as_it_stands). The door makes the queued object, the keeper and the run's request; the
run streams internally, so its progress (and, for a streamed
request, its events, for `starting_after`) is written as it goes. A cancel (POST /v1/responses/{id}/cancel) or a
delete asked on any worker or replica (the door's cancel route: StateService.cancel) is written to the store, which the run's Watch reads every STOP_POLL
seconds: the run's upstream request is closed then, even while the upstream is still reading the prompt, and
the response reads `cancelled` from the moment the cancel is written (a deleted one stays deleted: the run
writes only over its record).

Bounded: RESPONSES_BACKGROUND_MAX runs in flight on one instance (all its workers: counted in the store) and
RESPONSES_BACKGROUND_PER_KEY per key."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Generator, Iterator

from msgspec import structs

from argoproxy.errors import ProxyError
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.guard import handed_over
from argoproxy.state.keeper import Attempt, Keeper
from argoproxy.state.records import STALE_SECONDS, StoredResponse, as_it_stands
from argoproxy.turns import under_gevent

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Answer
    from argoproxy.state.shapes import DoorShapes

StateService = Any  # service.py's (which makes the Background): named so, not imported, to keep no circle

log = logging.getLogger("cot_proxy")

HEARTBEAT_SECONDS = 5.0  # a running background response says it lives this often (STALE_SECONDS: 30)
STOP_POLL = 0.25  # how often a run looks for a cancel or a delete asked: its upstream is closed within about this
POLL_SECONDS = 0.1  # how often a client following a run (stream=true, starting_after) reads its events
LAST_EVENTS_SECONDS = 10.0  # how long a follower waits for a completed run's last events (written after it)
FOLLOW_LIMIT = 3600.0  # the longest a follower waits on a run that sends nothing more


class Background:
    def __init__(self, state: StateService) -> None:
        self.state = state
        self.settings = state.settings

    def start(self, call: Call, keeper: Keeper, queued: dict[str, Any], created: float, inner: dict[str, Any],
              attempt: Attempt) -> Answer:
        """A run of `inner` (the stateless request, streamed), `queued` (the door's first object) answered at once,
        or (a keeper that keeps its events) its events followed as they are kept."""
        owner = keeper.owner
        # Counted first, then the caps read with it in: two requests racing for the last room can both be
        # refused for a moment, never both run past the cap.
        self.state.put(StoredResponse(keeper.id, owner, created, queued, keeper.history.new,
                                      keeper.history.chain, True, False, time.time()))
        try:
            self.check_caps(owner)
        except ProxyError:
            self.state.io(self.state.store.delete_response, keeper.id)
            raise
        run = self.detached(call)
        handed_over(call, run)  # the run holds its key's slot and reservation until it ends or is cancelled
        spawn(self.run, run, inner, keeper, attempt)
        answers = self.state.answers  # the request is observed (metrics, journals, its log line) as any
        if keeper.keep_events:
            answer = follow_answer(self.state, keeper.shapes, keeper.id, -1)
            answer.response = answers.produced(call, 200, answer.chunks)
            return answer
        return answers.whole(call, queued, [("Content-Type", "application/json")])

    def check_caps(self, owner: str) -> None:
        mine, every = self.state.io(self.state.store.live_runs, owner, time.time() - STALE_SECONDS)
        mine, every = mine - 1, every - 1  # this one is counted in already
        if self.settings.responses_background_max == 0:
            raise ProxyError(400, "Background responses are off on this proxy (RESPONSES_BACKGROUND_MAX=0).",
                             param="background", code="unsupported_parameter")
        if every >= self.settings.responses_background_max:
            raise ProxyError(429, f"{every} background responses are running on this proxy, its bound "
                             "(RESPONSES_BACKGROUND_MAX); try again when one has finished.",
                             code="background_limit_reached", headers={"x-should-retry": "false"})
        if mine >= self.settings.responses_background_per_key:
            raise ProxyError(429, f"This key has {mine} background responses running, its bound "
                             "(RESPONSES_BACKGROUND_PER_KEY); wait for one to finish or cancel it.",
                             code="background_limit_reached", headers={"x-should-retry": "false"})

    @staticmethod
    def detached(call: Call) -> Call:
        """The call a run makes: the request's client and plan, no client connection (no keepalives, no
        departure watch), its own outcome (observed once, as any call)."""
        req, trace = call.client.request, call.client.trace
        client = structs.replace(call.client, request=structs.replace(req, server_write=None)
                                     if req is not None else None,
                                     trace=trace.detached(call) if trace is not None else None)  # a span of its own
        run = Call(client, structs.replace(call.plan))
        run.outcome.kept_alive = True  # keepalives run for this stream now
        return run

    def run(self, call: Call, body: dict[str, Any], keeper: Keeper, attempt: Attempt) -> None:
        answer = None
        watch = Watch(self.state, call, keeper)
        spawn(watch.run)
        try:
            keeper.progress(None)  # in_progress, with a heartbeat
            answer = attempt(call, body, keeper)
            for _ in answer.chunks:  # the events pass the keeper, which saves them
                pass
        except ProxyError as err:
            call.outcome.status = call.outcome.status or err.status
            if not keeper.cancelled:  # a cancel's cut is no failure
                keeper.save(failed(keeper, err.message, err.code or "server_error"))
        except Exception as exc:  # noqa: BLE001 - a run must end in a stored state, whatever failed
            if not keeper.cancelled:
                log.exception("background response %s failed", keeper.id)
                keeper.save(failed(keeper, f"The proxy failed to produce this response ({type(exc).__name__}).",
                                   "server_error"))
        finally:  # also when its watcher killed it before its upstream answered (gevent's GreenletExit)
            watch.living = False
            close = getattr(answer.response, "close", None) if answer is not None else None
            if close is not None:
                close()
            self.ended(call, keeper)

    def ended(self, call: Call, keeper: Keeper) -> None:
        """The run's last word in the store (over its record only: a deleted one stays deleted), and its call
        observed (metrics, journals, the key's usage) however it ended."""
        if keeper.cancelled:
            latest = keeper.saved or {**failed(keeper, "", ""), "error": None}
            keeper.save({**latest, "status": "cancelled"})
        elif keeper.saved is None:
            keeper.save(failed(keeper, "The run ended without an answer.", "server_error"))
        answers = self.state.answers
        if answers is not None and not call.outcome.observed:  # cut before its answer began, or failed before it
            if keeper.cancelled:
                call.outcome.status = 499  # stopped at the client's word, as nginx names it
            answers.observe(call)
        if keeper.cancelled:
            log.info("background response %s cancelled: its run has stopped", keeper.id)


class Watch:
    """Beside a background run while it lives: its heartbeat every HEARTBEAT_SECONDS, and every STOP_POLL
    seconds a look at the store for a cancel (or a delete) asked on any worker or replica. A stop closes the
    run's upstream request where it stands: its answer's connection is shut once the upstream has begun to answer;
    before that (a long prompt read in silence, no byte yet) the run itself is killed, and urllib3 closes the
    connection it was waiting on. Under threads (gthread) a thread cannot be killed: a run stopped before its
    upstream's first byte is cut off when that byte comes."""

    def __init__(self, state: StateService, call: Call, keeper: Keeper) -> None:
        self.state, self.call, self.keeper = state, call, keeper
        self.runner = current_greenlet()  # the run's greenlet under gevent (called from the run); else None
        self.living = True
        self.killed = False

    def run(self) -> None:
        beat_at = time.monotonic() + HEARTBEAT_SECONDS
        while True:
            time.sleep(STOP_POLL)
            if not self.living:
                return
            if not self.keeper.cancelled and self.stop_asked():
                self.keeper.cancelled = True
            if self.keeper.cancelled:  # asked here, or seen by the run itself as it wrote its progress
                self.cut()
            if time.monotonic() >= beat_at:
                beat_at = time.monotonic() + HEARTBEAT_SECONDS
                self.beat()

    def stop_asked(self) -> bool:
        try:
            return bool(self.state.io(self.state.store.stop_asked, self.keeper.id))
        except ProxyError:  # the store away: asked again at the next look
            return False

    def cut(self) -> None:
        """Close the run's upstream request (again at each look until the run has ended: a thread's answer that
        arrives after the stop is cut when it does)."""
        resp = self.call.outcome.upstream_response
        if resp is not None and not resp.raw.isclosed():
            resp.cut()
        elif self.runner is not None and not self.killed and self.living:  # never once it is writing its end
            self.killed = True
            self.runner.kill(block=False)

    def beat(self) -> None:
        """The run's heartbeat while it lives, whether its upstream sends anything or not (a long prompt read in
        silence): a run whose heartbeat stops for STALE_SECONDS died with its worker."""
        try:
            self.state.io(self.state.store.touch, self.keeper.id, time.time())
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            log.warning("background response %s: heartbeat not written (%s)", self.keeper.id, type(exc).__name__)


def current_greenlet() -> Any:
    if not under_gevent():
        return None
    import gevent
    return gevent.getcurrent()


def failed(keeper: Keeper, message: str, code: str) -> dict[str, Any]:
    try:
        stored = keeper.state.load(keeper.id)
    except ProxyError:  # the store is away: the failure is saved if it is back by then (Keeper.save)
        stored = None
    base = stored.response if stored is not None else {"id": keeper.id}
    return keeper.shapes.failed(base, code, message)


def spawn(fn: Any, *args: Any) -> None:
    if under_gevent():
        import gevent
        gevent.spawn(fn, *args)
    else:
        threading.Thread(target=fn, args=args, daemon=True, name="background-response").start()


def follow_answer(state: StateService, shapes: DoorShapes, resp_id: str, after: int) -> Answer:
    """A run's events as SSE from sequence number `after` + 1 on, read from the store as they are written (any
    worker or replica can follow), until its terminal event."""
    from argoproxy.edge.http_objects import Answer
    return Answer(follow(state, shapes, resp_id, after), 200, [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")],
                  content_type="text/event-stream; charset=utf-8", direct_passthrough=True)


def follow(state: StateService, shapes: DoorShapes, resp_id: str, after: int) -> Iterator[bytes]:
    idle_since = time.monotonic()
    while True:
        fresh = state.io(state.store.events_after, resp_id, after)
        for event in fresh:
            after = shapes.sequence(event)
            yield shapes.encode_event(event)
            if shapes.terminal(event) is not None:
                return
        if fresh:
            idle_since = time.monotonic()
            continue
        rec = state.load(resp_id)
        if rec is None:
            return
        rec = as_it_stands(rec)
        if rec.status not in ("queued", "in_progress"):
            # The run stores its last object before its last events (a client that retrieves it once the stream
            # ended finds it whole): a follower that looked in between waits a moment for them.
            # (a completed run's events end in a terminal event, when they were kept: some were seen)
            wait = LAST_EVENTS_SECONDS if rec.status in ("completed", "incomplete") and after >= 0 else 0.0
            last = yield from last_events(state, shapes, resp_id, after, wait)
            if last is None:
                return
            after = last
            if rec.status == "failed":  # ended without a terminal event of its own
                yield shapes.encode_event(shapes.failed_event(after, rec.response))
            return  # cancelled: the stream ends there
        if time.monotonic() - idle_since > FOLLOW_LIMIT:
            return
        time.sleep(POLL_SECONDS)  # gevent's under gevent


def last_events(state: StateService, shapes: DoorShapes, resp_id: str, after: int,
                wait: float) -> Generator[bytes, None, int | None]:
    """An ended run's events still to come, until its terminal event (then None) or for `wait` seconds (then the
    last sequence number sent: a run whose events were no longer kept has written no terminal event)."""
    deadline = time.monotonic() + wait
    while True:
        for event in state.io(state.store.events_after, resp_id, after):
            after = shapes.sequence(event)
            yield shapes.encode_event(event)
            if shapes.terminal(event) is not None:
                return None
        if time.monotonic() > deadline:
            return after
        time.sleep(POLL_SECONDS)
