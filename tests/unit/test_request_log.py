"""The request log (argoproxy/requestlog/) on the real stores (an SQLite key store file and a real redis-server):
rows written in batches, paged newest first with each filter and a time range, keyset cursors that neither repeat
nor skip a row, the oldest removed past the cap; a request's detail reads its own journal line at its offset (a
real Journal's), never beyond the file, and says so when the line is gone."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from argoproxy.observe.journal import Journal, journal_observer
from argoproxy.requestlog import Filters, LogRow, RequestIndex, detail, page
from argoproxy.requestlog.query import index_of
from argoproxy.teamkeys.store import SQLiteKeyStore

T0 = 1_900_000_000.0
DOORS = ("openai", "responses", "messages", "google", "ollama")


def row(n: int, file: str = "/nonexistent", offset: int = 0, length: int = 0) -> LogRow:
    return LogRow(T0 + n, f"req{n:05d}", f"key{n % 3}", f"person{n % 2}", ("gpt-4o", "claude")[n % 2],
                  (200, 429, 500)[n % 3], DOORS[n % 5], f"s{n % 4}", n, 2 * n, 1000 * n, file, offset, length)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteKeyStore(tmp_path / "keys.db")
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    found = RedisKeyStore(request.getfixturevalue("redis_url"))
    found.redis.flushdb()
    return found


def written(store, rows: list[LogRow], most: int = 100_000) -> RequestIndex:
    index = RequestIndex(store, most)
    index._start = lambda: None  # flushed by the test
    for r in rows:
        index.add(r)
    index.flush()
    return index


def every_page(store, filters: Filters, limit: int) -> list[LogRow]:
    rows, cursor, pages = [], None, 0
    while True:
        got = page(store, filters, cursor, limit)
        rows += got.rows
        pages += 1
        assert pages < 1000
        if got.cursor is None:
            return rows
        cursor = got.cursor


@pytest.mark.parametrize("filters", [
    Filters(), Filters(owner="person1"), Filters(key="key2"), Filters(model="claude"), Filters(status=429),
    Filters(door="messages"), Filters(session="s3"), Filters(since=T0 + 10, until=T0 + 40),
    Filters(key="key1", model="gpt-4o", status=429, since=T0 + 5)])
def test_pages_with_each_filter_are_the_rows_it_admits_newest_first(store, filters):
    rows = [row(n) for n in range(60)]
    written(store, rows)
    expected = sorted((r for r in rows if filters.admits(r)), key=lambda r: (r.time, r.request_id), reverse=True)
    assert expected  # each filter admits some, and not all but the first
    assert every_page(store, filters, 7) == expected
    first = page(store, filters, None)
    assert first.rows == expected[:50] and (first.cursor is None) == (len(expected) <= 50)


def test_the_oldest_rows_go_past_the_cap_and_bad_cursors_are_refused(store):
    written(store, [row(n) for n in range(40)], most=10)
    kept = every_page(store, Filters(), 50)
    assert [r.request_id for r in kept] == [f"req{n:05d}" for n in range(39, 29, -1)]
    assert page(store, Filters(key="key0"), None).rows == [r for r in kept if r.key == "key0"]  # the sets pruned too
    for bad in ("nonsense", "nan~x", "1~", "1e400~x", "1~" + "x" * 200):
        with pytest.raises(ValueError):
            page(store, Filters(), bad)
    with pytest.raises(ValueError):
        page(store, Filters(), None, 0)


def test_detail_reads_the_requests_own_journal_line(store, tmp_path):
    journal = Journal(tmp_path / "logs")
    index = RequestIndex(store, 1000)
    index._start = lambda: None
    observe = journal_observer(journal, index)
    for n in range(5):
        client = SimpleNamespace(request_id=f"r{n}", client_request_id="", session=f"s{n}", front="messages",
                                 path="v1/messages", started=0.0)
        start = SimpleNamespace(kind="chat", client=client, send_mode="non_stream", return_mode="non_stream",
                                raw_body=json.dumps({"n": n}).encode(), model="claude", adapted=(), key_name="k",
                                team_key=SimpleNamespace(owner="person-1"))
        end = SimpleNamespace(status=200, output={"answer": n}, output_tap=None, usage_estimated=False,
                              upstream_request=None, upstream_status=None, asked_whole=False, client_left=False,
                              deployment=None, used=SimpleNamespace(input=3, output=4),
                              cost=SimpleNamespace(nanos=9, priced=True))
        observe(start, end)
    index.flush()
    found = detail(store, "r3")
    assert found["line"]["input"] == {"n": 3} and found["line"]["output"] == {"answer": 3}
    assert found["line"]["session"] == "s3"
    assert {k: found["row"][k] for k in ("key", "owner", "door", "session", "input_tokens", "cost")} == \
        {"key": "k", "owner": "person-1", "door": "messages", "session": "s3", "input_tokens": 3, "cost": 9}
    assert detail(store, "nobody") is None
    path = journal.paths["client"]
    with open(path, "r+b") as f:  # the journal cut short (rotated, truncated): the line is gone, said so
        f.truncate(found["row"]["offset"] + 5)
    gone = detail(store, "r3")
    assert gone["line"] is None and "no longer holds" in gone["line_missing"]
    with open(path, "wb") as f:  # another journal in its place: another line at the offset
        f.write(b"x" * 10_000)
    assert detail(store, "r1")["line"] is None
    os.unlink(path)  # a row read on another host than the one that wrote its line: said so, not a failure
    assert "the journal cannot be read" in detail(store, "r1")["line_missing"]


def test_the_index_is_the_key_stores_own(store):
    assert type(index_of(store)).__name__ == ("RedisIndex" if hasattr(store, "redis") else "SQLiteIndex")
