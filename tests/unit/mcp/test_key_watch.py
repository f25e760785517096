"""A team key's tool-call stream watched for its revocation (argoproxy/mcp/key_watch.py), with threads (the gevent
workers' greenlets are run through the app in tests/integration/test_mcp_revocation.py): the key is asked at most
every CHECK_SECONDS however many events pass, a silent stream is checked on the timer, a stream that ends first
ends as it was, and the store's 503 ends it too."""

from __future__ import annotations

import threading
import time
from typing import Iterator

from argoproxy.errors import ProxyError
from argoproxy.mcp import key_watch
from argoproxy.mcp.key_watch import CHECK_SECONDS, KeyWatch, KeyWithdrawn, watched
from argoproxy.teamkeys.records import KeyRecord


class Keys:
    """The team keys service as the watch asks it: lookup (counted) and refusal."""

    def __init__(self) -> None:
        self.record: KeyRecord | None = KeyRecord(name="bot", digest="x", prefix="sk-proxy-x")
        self.lookups = 0
        self.down = False

    def lookup(self, presented):
        self.lookups += 1
        if self.down:
            raise ProxyError(503, "The key store is unavailable; try again shortly.")
        return self.record

    def refusal(self, record):
        return record.refusal(time.time())


def revoke(keys: Keys) -> None:
    assert keys.record is not None
    keys.record = KeyRecord(name="bot", digest="x", prefix="sk-proxy-x", revoked=time.time())


def events(count: int, every: float = 0.0) -> Iterator[dict]:
    for n in range(count):
        if every:
            time.sleep(every)  # a server reporting progress this often
        yield {"method": "notifications/progress", "params": {"progress": n}}
    yield {"id": 1, "result": {}}


def test_many_events_ask_the_key_at_most_every_check():
    keys = Keys()
    started = time.monotonic()
    got = list(watched(events(2000), KeyWatch(keys, ("sk-proxy-x",))))
    assert len(got) == 2001 and got[-1] == {"id": 1, "result": {}}
    assert keys.lookups <= (time.monotonic() - started) / CHECK_SECONDS + 1


def test_a_silent_stream_is_checked_on_the_timer():
    keys = Keys()
    never = threading.Event()

    def silent() -> Iterator[dict]:
        never.wait(30)  # a server that never answers
        yield {"id": 1, "result": {}}
    stream = watched(silent(), KeyWatch(keys, ("sk-proxy-x",)))
    threading.Timer(0.1, revoke, (keys,)).start()
    started = time.monotonic()
    got = next(stream)
    assert isinstance(got, KeyWithdrawn) and got == "This API key was revoked."
    assert time.monotonic() - started < 10  # the timer, not the server (silent for 30 s), ended the wait
    assert list(stream) == []  # nothing after the refusal
    never.set()


def test_a_revoked_key_ends_a_stream_of_events_between_them():
    keys = Keys()
    stream = watched(events(10_000, every=0.005), KeyWatch(keys, ("sk-proxy-x",)))
    assert "method" in next(stream)
    revoke(keys)
    got = list(stream)
    assert isinstance(got[-1], KeyWithdrawn) and all(isinstance(g, dict) for g in got[:-1])
    assert len(got) < 10_000


def test_the_store_gone_past_its_grace_ends_the_stream_as_the_door_refuses():
    keys = Keys()
    keys.down = True
    got = list(watched(events(200, every=0.005), KeyWatch(keys, ("sk-proxy-x",))))
    assert isinstance(got[-1], KeyWithdrawn) and "key store is unavailable" in got[-1]


def test_an_error_of_the_stream_reaches_its_reader():
    def broken() -> Iterator[dict]:
        yield {"method": "notifications/progress", "params": {}}
        raise ValueError("not JSON")
    stream = watched(broken(), KeyWatch(Keys(), ("sk-proxy-x",)))
    assert "method" in next(stream)
    try:
        next(stream)
    except ValueError as err:
        assert str(err) == "not JSON"
    else:
        raise AssertionError("the stream's error was lost")


def test_a_reader_that_leaves_lets_the_helper_go():
    left = threading.Event()

    def endless() -> Iterator[dict]:
        try:
            while True:
                yield {"method": "notifications/progress", "params": {}}
        finally:
            left.set()
    stream = watched(endless(), KeyWatch(Keys(), ("sk-proxy-x",)))
    next(stream)
    stream.close()  # the client left
    assert left.wait(5 * key_watch.CHECK_SECONDS + 2)  # the helper stopped reading the server's stream
