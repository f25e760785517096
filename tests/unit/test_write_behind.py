"""The write-behind of stored responses (argoproxy/state/write_behind.py), without a loop: a batch driven by
hand over a real SQLite store."""

from __future__ import annotations

import time

import pytest

from argoproxy.state.records import StoredResponse, StoreFull, encoded, made_within, response_id
from argoproxy.state.store import SQLiteResponseStore
from argoproxy.state.write_behind import WriteBehind


class Woken:
    def set(self) -> None:
        pass


def record(owner: str = "o", text: str = "hi") -> StoredResponse:
    rid = response_id()
    return StoredResponse(rid, owner, time.time(), {"id": rid, "status": "completed", "output": [text]}, [])


@pytest.fixture
def behind(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    wb = WriteBehind(lambda fn, *args, **waits: fn(*args), store)
    wb._active, wb.wake = True, Woken()  # as under gevent, with the flusher driven by hand
    return wb, store


def test_pending_responses_are_read_from_memory_then_from_the_file_in_one_batch(behind):
    wb, store = behind
    recs = [record(text=str(n)) for n in range(3)]
    for rec in recs:
        wb.put(rec)
    assert store.get_response(recs[0].id) is None and wb.get_many([recs[1].id])[recs[1].id] is recs[1]
    assert wb.used("o") is None  # nothing known yet: check_room reads the store
    wb.flush()
    assert not wb.pending and {store.get_response(r.id).response["output"][0] for r in recs} == {"0", "1", "2"}
    assert wb.used("o") == store.used_bytes("o") > 0


def test_a_response_deleted_while_its_batch_is_written_stays_deleted(behind):
    wb, store = behind
    rec = record()
    wb.put(rec)
    put = store.put_encoded

    def deleting_meanwhile(batch):
        wb.drop(rec.id)  # a DELETE served while the batch is being written
        return put(batch)
    store.put_encoded = deleting_meanwhile
    wb.flush()
    assert store.get_response(rec.id) is None and not wb.pending


def test_a_failed_batch_makes_the_next_answers_wait_for_their_write(behind):
    wb, store = behind
    wb.put(record())

    def broken(batch):
        raise OSError("disk full")
    store.put_encoded = broken
    wb.flush()  # logged, and nothing pending is kept
    assert not wb.pending and not wb.healthy
    rec = record()
    wb.put(rec)  # written before its answer now
    assert store.get_response(rec.id) is not None and wb.healthy and not wb.pending


def test_past_the_bound_a_batch_leaves_the_response_out_and_a_direct_write_refuses(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1200, 1 << 30)
    big = record(text="x" * 400)
    store.put_response(big)
    more = record(text="y" * 400)
    assert store.put_encoded([(more, encoded(more))]) == {"o": store.used_bytes("o")}
    assert store.get_response(more.id) is None
    with pytest.raises(StoreFull):
        store.put_response(more)


def test_response_ids_carry_their_second():
    rid = response_id()
    assert rid.startswith("resp_") and len(rid) == 29 and made_within(rid, 2.0)
    assert not made_within("resp_" + "0" * 24, 2.0) and not made_within("msg_123", 2.0)
