"""One WebSocket connection's life: client messages read and answered through the session, one response at a
time. While a response streams, the socket is looked at between its events (and at each keepalive while the
upstream is silent): a ping is answered, a close ends the response (its upstream call is closed), and any other
message, a response.create above all, is answered with an error event. Between responses the connection waits
for the next message until its idle limit, its lifetime limit (an error event, then a normal close, as OpenAI's
60-minute limit does) or the worker leaving (1001: clients reconnect)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from argoproxy.fronts.responses.websocket.frames import Frames
from argoproxy.fronts.responses.websocket.session import (FAILURE, GOING_AWAY, NORMAL, Closing, Session,
                                                          error_event)

log = logging.getLogger("cot_proxy")

LOOK = 1.0  # seconds between looks at whether the worker is leaving, while the connection waits
BUSY = error_event(400, "A response is in progress on this connection: send the next response.create after its "
                        "last event (response.completed, response.incomplete, response.failed or error); one "
                        "response runs at a time.", code="conversation_already_has_active_response")


LAST_EVENTS = tuple(f'{{"type":"{kind}"' for kind in ("response.completed", "response.incomplete", "response.failed",
                                                      "error"))


@dataclass(frozen=True)
class ConnectionLimits:
    lifetime: float  # seconds a connection lasts at most (OpenAI's: 60 minutes)
    idle: float  # seconds it may wait for the client's next message between responses


def limit_reached(lifetime: float) -> str:
    return error_event(400, f"This WebSocket connection reached its limit of {lifetime:g} seconds: open a new "
                            "connection to continue (a stored response's id continues there too).",
                       code="websocket_connection_limit_reached")


def serve(frames: Frames, session: Session, limits: ConnectionLimits, leaving: Callable[[], bool],
          clock: Callable[[], float] = time.monotonic) -> int:
    """Run the connection to its end; the close code it ended with."""
    start = last = clock()
    try:
        while True:
            now = clock()
            if leaving():
                raise Closing(GOING_AWAY, "the server is restarting: reconnect")
            if now - start >= limits.lifetime:
                frames.send_text(limit_reached(limits.lifetime))
                raise Closing(NORMAL, "connection lifetime reached")
            if now - last >= limits.idle:
                raise Closing(NORMAL, "idle for too long")
            wait = min(LOOK, start + limits.lifetime - now, last + limits.idle - now)
            for text in frames.read(max(wait, 0.001)):
                answer(frames, session, text)
                last = clock()
    except Closing as end:
        frames.close(end.code, end.reason)
        return end.code
    except Exception:  # noqa: BLE001 - a bug ends this connection with 1011, logged, never the worker
        log.exception("the Responses WebSocket failed")
        frames.close(FAILURE, "the proxy failed; see its log")
        return FAILURE


def last_event(text: str) -> bool:
    """A response's last event: the client may send its next response.create once it has it."""
    return text.startswith(LAST_EVENTS)


def answer(frames: Frames, session: Session, text: str) -> None:
    """One client message answered; messages that come while its response runs get the busy error."""
    replies, running = session.respond(text), True
    try:
        for reply in replies:
            if reply:
                frames.send_text(reply)
                running = running and not last_event(reply)
            while running and frames.waiting():  # (once its last event is out, the next message is the next's)
                for _ in frames.read(LOOK):
                    frames.send_text(BUSY)
    finally:
        replies.close()  # a client gone mid-response: the door's answer, and its upstream call, closed
