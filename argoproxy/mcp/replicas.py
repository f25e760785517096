"""What one replica's supervisor tells the others over Redis (with REDIS_URL, where 2025-11-25 sessions are
shared: sessions.py), for what runs on one replica only:

- a client's notifications/cancelled that reached a replica not running the call (a session's requests may land
  on any replica): the replica running it cancels it on its server;
- a client's response to a request its call's server made of it (client_requests.py) that reached a replica not
  running the call: the replica holding the request gives it to the server, checked as its own are (the session
  that owns it, once, before the call ends);
- a session ended (DELETE) on one replica: its per_session processes on the others go (per_session.py).

One channel for the instances (CHANNEL), told only when the replica that got the message found nothing of its own
to act on: a call costs nothing here. Each supervisor listens on a thread of its own, and connects again after a
pause while Redis is away. A cancellation or a response that cannot be told (Redis cannot be reached, or refuses
it) is lost: its client is answered 503 (-32001) saying so, and the supervisor logs one line. One told while the
replica running its call is connecting again is lost unseen (the call ends at its deadline, a session's process
when idle).

Runs in the supervisor (argoproxy/mcp/supervisor.py): plain threads, no gevent."""

from __future__ import annotations

import json
import logging
import secrets
import threading
from typing import Any, Protocol

log = logging.getLogger("cot_proxy")

CHANNEL = "cot_proxy:mcp:replicas"
RETRY_SECONDS = 2.0
SOCKET_SECONDS = 5.0  # longer than a listening wait (1 s), which is no read of the socket's own
MAX_MESSAGE = 4 * 1024 * 1024 + 65536  # a response POSTed (at most the endpoint's 4 MiB) and its envelope


class Told(Protocol):
    def cancelled(self, session: str, request_id: Any) -> bool: ...

    def ended(self, session: str) -> None: ...

    def replied(self, session: str, message: dict[str, Any]) -> bool: ...


class Replicas:
    def __init__(self, redis_url: str, told: Told) -> None:
        self.url, self.told = redis_url, told
        self.me = secrets.token_hex(8)  # what this replica says is not acted on again here
        self.stopping = threading.Event()
        self.client: Any = None
        self.listening = threading.Event()  # subscribed (tests wait for it)

    def start(self) -> None:
        if self.url:
            import redis
            self.client = redis.Redis.from_url(self.url, socket_timeout=SOCKET_SECONDS,
                                               socket_connect_timeout=SOCKET_SECONDS, health_check_interval=30)
            threading.Thread(target=self._listen, name="mcp-replicas", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()

    def tell(self, said: dict[str, Any]) -> bool | None:
        """Tell the other replicas: True once told; False without Redis; None when Redis could not be reached (or
        refused it), so what was said is lost (logged here; the worker's client is answered so)."""
        if self.client is None:
            return False
        try:
            self.client.publish(CHANNEL, json.dumps({**said, "from": self.me}, separators=(",", ":"),
                                                   ensure_ascii=False))
        except Exception as exc:  # noqa: BLE001 - Redis away: the client hears its word is lost
            log.warning("mcp: the other replicas could not be told of a %s (Redis: %s): it is lost",
                        next((k for k in ("cancel", "reply", "ended") if k in said), "message"), type(exc).__name__)
            return None
        return True

    def _listen(self) -> None:
        while not self.stopping.is_set():
            try:
                subscription = self.client.pubsub(ignore_subscribe_messages=True)
                subscription.subscribe(CHANNEL)
                self.listening.set()
                while not self.stopping.is_set():
                    message = subscription.get_message(timeout=1.0)
                    if message is not None:
                        self.heard(message.get("data"))
            except Exception as exc:  # noqa: BLE001 - Redis away: listened to again after a pause
                self.listening.clear()
                log.warning("mcp: not listening to the other replicas (Redis: %s); trying again",
                            type(exc).__name__)
                self.stopping.wait(RETRY_SECONDS)

    def heard(self, data: Any) -> None:
        """Another replica's word: a call to cancel, a session ended or a response, acted on when it is here."""
        if not isinstance(data, (bytes, str)) or len(data) > MAX_MESSAGE:
            return
        try:
            said = json.loads(data)
        except ValueError:
            return
        if not isinstance(said, dict) or said.get("from") == self.me:
            return
        if isinstance(said.get("cancel"), str) and said["cancel"]:
            self.told.cancelled(said["cancel"], said.get("id"))
        elif isinstance(said.get("ended"), str) and said["ended"]:
            self.told.ended(said["ended"])
        elif isinstance(said.get("reply"), str) and said["reply"] and isinstance(said.get("message"), dict):
            self.told.replied(said["reply"], said["message"])
