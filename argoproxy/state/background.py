"""`background: true`: the request answers at once (`queued`), and the answer is produced by a greenlet (a
thread under gthread) of the same worker, to completion whether the client stays or not, within that worker's
life: a worker that stops (restart, max_requests, SIGTERM past the graceful timeout) ends its runs, which then
read as failed (service.stale_checked). The run streams internally, so its progress (and, for a streamed
request, its events, for `starting_after`) is written as it goes, and a cancel asked on any worker or replica
(POST /v1/responses/{id}/cancel) stops it at its next write.

Bounded: RESPONSES_BACKGROUND_MAX runs in flight on one instance (all its workers: counted in the store) and
RESPONSES_BACKGROUND_PER_KEY per key."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.fronts import front_named
from argoproxy.fronts.front import Exchange
from argoproxy.fronts.responses import response_object
from argoproxy.pipeline.call import Call
from argoproxy.state import chain
from argoproxy.state.keeper import TERMINAL, Attempt, Keeper
from argoproxy.state.records import STALE_SECONDS, StoredResponse, stale_checked
from argoproxy.turns import under_gevent

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Answer

ResponsesState = Any  # service.py's (which makes the Background): named so, not imported, to keep no circle

log = logging.getLogger("cot_proxy")

HEARTBEAT_SECONDS = 5.0  # a running background response says it lives this often (STALE_SECONDS: 30)
POLL_SECONDS = 0.1  # how often a client following a run (stream=true, starting_after) reads its events
FOLLOW_LIMIT = 3600.0  # the longest a follower waits on a run that sends nothing more


class Background:
    def __init__(self, state: ResponsesState) -> None:
        self.state = state
        self.settings = state.settings

    def start(self, call: Call, body: dict[str, Any], history: chain.History, echo: dict[str, Any],
              attempt: Attempt) -> Answer:
        owner = self.state.owner(call)
        streamed = body.get("stream") is True
        keeper = Keeper(self.state, owner, history, echo, True, background=True, keep_events=streamed)
        ex = Exchange(model=str(body.get("model")), stream=streamed, request=body)
        ex.state = echo
        queued = response_object(ex, echo["id"], "queued", [])
        # Counted first, then the caps read with it in: two requests racing for the last room can both be
        # refused for a moment, never both run past the cap.
        self.state.put(StoredResponse(echo["id"], owner, float(queued["created_at"]), queued, history.new,
                                      history.chain, True, False, time.time()))
        try:
            self.check_caps(owner)
        except ProxyError:
            self.state.io(self.state.store.delete_response, echo["id"])
            raise
        run = self.detached(call)
        inner = chain.stateless_body({**body, "stream": True}, history.items + history.new)
        spawn(self.run, run, inner, keeper, attempt)
        answers = self.state.answers  # the request is observed (metrics, journals, its log line) as any
        if streamed:
            answer = follow_answer(self.state, echo["id"], -1)
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
        req = call.client.request
        client = dataclasses.replace(call.client, request=dataclasses.replace(req, server_write=None)
                                     if req is not None else None)
        plan = dataclasses.replace(call.plan, adapted=[], touched=set(), kept_alive=True)
        return Call(client, plan)

    def run(self, call: Call, body: dict[str, Any], keeper: Keeper, attempt: Attempt) -> None:
        answer = None
        beating = [True]
        spawn(self.beat, keeper.id, beating)
        try:
            keeper.progress(None)  # in_progress, with a heartbeat
            answer = attempt(call, body, keeper)
            for _ in answer.chunks:  # the events pass the keeper, which saves them
                pass
        except ProxyError as err:
            keeper.save(failed(keeper, err.message, err.code or "server_error"))
        except Exception as exc:  # noqa: BLE001 - a run must end in a stored state, whatever failed
            log.exception("background response %s failed", keeper.id)
            keeper.save(failed(keeper, f"The proxy failed to produce this response ({type(exc).__name__}).",
                               "server_error"))
        finally:
            close = getattr(answer.response, "close", None) if answer is not None else None
            if close is not None:
                close()
            beating[0] = False
        if keeper.cancelled:
            latest = keeper.saved or {**failed(keeper, "", ""), "error": None}
            keeper.save({**latest, "status": "cancelled"})
        elif keeper.saved is None:
            keeper.save(failed(keeper, "The run ended without an answer.", "server_error"))

    def beat(self, resp_id: str, beating: list[bool]) -> None:
        """The run's heartbeat while it lives, whether its upstream sends anything or not (a long prompt read in
        silence): a run whose heartbeat stops for STALE_SECONDS died with its worker."""
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            if not beating[0]:
                return
            try:
                self.state.io(self.state.store.touch, resp_id, time.time())
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("background response %s: heartbeat not written (%s)", resp_id, type(exc).__name__)


def failed(keeper: Keeper, message: str, code: str) -> dict[str, Any]:
    try:
        stored = keeper.state.load(keeper.id)
    except ProxyError:  # the store is away: the failure is saved if it is back by then (Keeper.save)
        stored = None
    base = stored.response if stored is not None else {"id": keeper.id, "object": "response"}
    return {**base, "status": "failed", "error": {"code": code, "message": message}}


def spawn(fn: Any, *args: Any) -> None:
    if under_gevent():
        import gevent
        gevent.spawn(fn, *args)
    else:
        threading.Thread(target=fn, args=args, daemon=True, name="background-response").start()


def follow_answer(state: ResponsesState, resp_id: str, after: int) -> Answer:
    """A run's events as SSE from sequence_number `after` + 1 on, read from the store as they are written (any
    worker or replica can follow), until its terminal event."""
    from argoproxy.edge.http_objects import Answer
    return Answer(follow(state, resp_id, after), 200, [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")],
                  content_type="text/event-stream; charset=utf-8", direct_passthrough=True)


def follow(state: ResponsesState, resp_id: str, after: int) -> Iterator[bytes]:
    front = front_named("responses")
    assert front is not None
    idle_since = time.monotonic()
    while True:
        fresh = state.io(state.store.events_after, resp_id, after)
        for event in fresh:
            after = event["sequence_number"]
            yield front.encode_event(event)
            if event.get("type") in TERMINAL:
                return
        if fresh:
            idle_since = time.monotonic()
            continue
        rec = state.load(resp_id)
        if rec is None:
            return
        rec = stale_checked(rec)
        if rec.status not in ("queued", "in_progress"):  # ended without a terminal event of its own
            if rec.status == "failed":
                yield front.encode_event({"type": "response.failed", "sequence_number": after + 1,
                                          "response": rec.response})
            return  # cancelled: the stream ends there
        if time.monotonic() - idle_since > FOLLOW_LIMIT:
            return
        time.sleep(POLL_SECONDS)  # gevent's under gevent
