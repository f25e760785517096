"""Where 2025-11-25 sessions (`Mcp-Session-Id`) are kept: with the instance's supervisor (InstanceSessions: they
outlive a worker, not the instance), or with REDIS_URL in Redis (SharedSessions: every replica knows them, and they
outlive a restart). Either way a session belongs to the key that opened it: another key's id is no session.

Only the session's existence and revision are shared. A call runs on the replica that received it, so following
its progress needs that replica; a cancellation sent to another reaches it through Redis (replicas.py), and so
does a DELETE, which stops the session's per_session processes on every replica."""

from __future__ import annotations

import json
import secrets
import time
from contextlib import contextmanager
from typing import Any, Iterator, Protocol

from argoproxy.mcp.link import Link

SESSION_IDLE = 24 * 3600  # a session not used for this long is gone (the supervisor's own bound too)
MAX_PER_OWNER = 1_000  # one key's (or this machine's, with auth off) sessions at once: its oldest go first
PREFIX = "cot_proxy:mcp:session:"
OWNED = "cot_proxy:mcp:sessions:"  # per owner: its sessions by last use (a sorted set)


class SessionStoreDown(Exception):
    """The shared store cannot be reached: the request is answered 503, as when the supervisor is away."""


class SessionStore(Protocol):
    # True: the supervisor holds them, and checks the one a call carries on the call's own trip (link.py's
    # `owner`), so a request that calls a server needs no trip of its own to ask about its session.
    checked_by_calls: bool

    def new(self, owner: str, version: str, asks: list[str] | None = None) -> str: ...

    def version(self, session: str, owner: str) -> str | None:
        """The revision the session speaks (its use noted), or None: no such session of this owner's."""

    def held(self, session: str, owner: str) -> dict[str, Any] | None:
        """The session's record ("version", and "asks": what its client may be asked, client_requests.py), its use
        noted; None: no such session of this owner's."""

    def end(self, session: str, owner: str) -> bool: ...

    def alive(self, session: str) -> bool:
        """Whether the session is still held, its use not noted: its GET streams ask now and then, and end once it
        is gone (expired, or pushed out by its key's newer sessions)."""


class InstanceSessions:
    """The supervisor's (supervisor.py's Sessions), reached over the worker's link."""

    checked_by_calls = True

    def __init__(self, link: Link) -> None:
        self.link = link

    def new(self, owner: str, version: str, asks: list[str] | None = None) -> str:
        return str(self.link.session("new", owner=owner, version=version, asks=asks or []).get("id"))

    def version(self, session: str, owner: str) -> str | None:
        found = self.held(session, owner)
        return str(found.get("version", "")) if found else None

    def held(self, session: str, owner: str) -> dict[str, Any] | None:
        return self.link.session("get", id=session, owner=owner) or None

    def end(self, session: str, owner: str) -> bool:
        return bool(self.link.session("end", id=session, owner=owner))

    def alive(self, session: str) -> bool:
        return True  # the supervisor ends the streams of a session it drops itself


class SharedSessions:
    """Sessions in Redis: a key per session (its owner and revision, expiring SESSION_IDLE after its last use) and
    a sorted set per owner that bounds how many it holds."""

    checked_by_calls = False  # the supervisor knows none of them: each request asks Redis

    def __init__(self, client: Any) -> None:
        self.redis = client

    def new(self, owner: str, version: str, asks: list[str] | None = None) -> str:
        session, now = secrets.token_urlsafe(24), time.time()
        record = json.dumps({"owner": owner, "version": version, "asks": asks or []}, separators=(",", ":"))
        with _reached():
            pipe = self.redis.pipeline()
            pipe.set(PREFIX + session, record, ex=SESSION_IDLE)
            pipe.zadd(OWNED + owner, {session: now})
            pipe.zremrangebyscore(OWNED + owner, "-inf", now - SESSION_IDLE)
            pipe.expire(OWNED + owner, SESSION_IDLE)
            pipe.zcard(OWNED + owner)
            held = pipe.execute()[-1]
            if held > MAX_PER_OWNER:  # its least recently used go
                oldest = self.redis.zpopmin(OWNED + owner, held - MAX_PER_OWNER)
                self.redis.delete(*(PREFIX + str(sid) for sid, _ in oldest))
        return session

    def version(self, session: str, owner: str) -> str | None:
        record = self.held(session, owner)
        return str(record.get("version", "")) if record is not None else None

    def held(self, session: str, owner: str) -> dict[str, Any] | None:
        with _reached():
            raw = self.redis.getex(PREFIX + session, ex=SESSION_IDLE)  # read, and its idle time starts again
            record = _record(raw)
            if record is None or record.get("owner") != owner:
                return None
            self.redis.zadd(OWNED + owner, {session: time.time()}, xx=True)
        return record

    def end(self, session: str, owner: str) -> bool:
        with _reached():
            record = _record(self.redis.get(PREFIX + session))
            if record is None or record.get("owner") != owner:
                return False
            pipe = self.redis.pipeline()
            pipe.delete(PREFIX + session)
            pipe.zrem(OWNED + owner, session)
            return bool(pipe.execute()[0])

    def alive(self, session: str) -> bool:
        try:
            with _reached():
                return bool(self.redis.exists(PREFIX + session))
        except SessionStoreDown:
            return True  # unknown while Redis is away: a stream is not ended for that alone



@contextmanager
def _reached() -> Iterator[None]:
    """Redis's errors (it is away, or answers past its deadline) become SessionStoreDown."""
    import redis
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise SessionStoreDown(type(exc).__name__) from None


def _record(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def sessions_for(link: Link, redis_url: str) -> SessionStore:
    """Redis's when the proxy has one (replicas share it), else the instance's. Each request asks (no worker's
    memory of sessions): a session ended on one worker or replica is refused on every other at once, as the
    specification requires after a DELETE."""
    if not redis_url:
        return InstanceSessions(link)
    from argoproxy.teamkeys.redis_store import connect
    return SharedSessions(connect(redis_url))
