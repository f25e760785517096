"""The write-behind of stored responses (argoproxy/state/write_behind.py), without a loop: a batch driven by
hand over a real SQLite store."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from argoproxy.state.records import StoredResponse, StoreFull, encoded, made_within, response_id
from argoproxy.state.store import SQLiteResponseStore
from argoproxy.state.write_behind import WriteBehind
from tests.proxy_process import ROOT


class Woken:
    def set(self) -> None:
        pass


def record(owner: str = "o", text: str = "hi") -> StoredResponse:
    rid = response_id("resp_")
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


def test_a_response_deleted_while_its_batch_waits_for_the_lock_is_left_out_of_it(tmp_path):
    """A batch that meets another process's lock tries again after a pause (sqlite_files.first_here): a response
    deleted during the pause is not written by the next try (another worker would read it until it is deleted
    again)."""
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    written = []
    put = store.put_encoded

    def recorded(batch):
        written.append([rec.id for rec, _ in batch])
        return put(batch)
    store.put_encoded = recorded

    def io(fn, *args, pauses=()):
        if pauses:  # the flusher's write: a first try meets the lock, a DELETE is served during the pause
            wb.drop(gone.id)
        return fn(*args)
    wb = WriteBehind(io, store)
    wb._active, wb.wake = True, Woken()
    kept, gone = record(), record()
    wb.put(kept)
    wb.put(gone)
    wb.flush()
    assert written == [[kept.id]] and store.get_response(gone.id) is None and store.get_response(kept.id)


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
    rid = response_id("resp_")
    assert rid.startswith("resp_") and len(rid) == 29 and made_within(rid, 2.0)
    assert not made_within("resp_" + "0" * 24, 2.0) and not made_within("msg_123", 2.0)


def test_a_batch_being_written_is_read_from_memory_and_counted_until_it_is_in_the_file(behind):
    wb, store = behind
    rec = record(owner="p")
    wb.put(rec)
    wb.flush()  # known from here on: used() reads memory, not the file
    later = record(owner="p")
    wb.put(later)
    put = store.put_encoded
    seen = []

    def reading_meanwhile(batch):
        seen.append((wb.get(later.id), wb.get_many([later.id, rec.id]), wb.used("p")))
        return put(batch)
    store.put_encoded = reading_meanwhile
    wb.flush()
    held, many, used = seen[0]
    assert held is later and list(many) == [later.id] and used == store.used_bytes("p")
    assert wb.get(later.id) is None and store.get_response(later.id) is not None


def test_a_worker_stopping_writes_what_it_holds_a_batch_cut_short_included(behind):
    wb, store = behind
    cut, held = record(), record()
    wb.put(cut)
    wb.writing, wb.pending = wb.pending, type(wb.pending)()  # as flush does, its write never finishing
    wb.put(held)
    wb.at_exit()
    assert store.get_response(cut.id) is not None and store.get_response(held.id) is not None


def test_a_response_deleted_while_its_batch_is_written_stays_deleted_when_the_worker_stops_meanwhile(behind):
    """The batch's write went through (a pool thread's), its DELETE came while it ran, and the worker stopped
    before the flusher deleted it again: the stopping worker deletes it."""
    wb, store = behind
    rec = record()
    wb.put(rec)
    wb.writing, wb.pending = wb.pending, type(wb.pending)()  # as flush does
    store.put_encoded(list(wb.writing.records.values()))  # the batch's write, done; its flusher never resumes
    wb.drop(rec.id)  # DELETE served meanwhile (its own delete from the file ran before the write)
    wb.at_exit()
    assert store.get_response(rec.id) is None


LOCKED = r"""
from gevent import monkey; monkey.patch_all()
import gevent, os, subprocess, sys, tempfile, time
from argoproxy import sqlite_files
from argoproxy.state import write_behind
from argoproxy.state.records import StoredResponse, response_id
from argoproxy.state.store import SQLiteResponseStore

path = os.path.join(tempfile.mkdtemp(), "responses.db")
store = SQLiteResponseStore(path, 3600, 1 << 20, 1 << 30)
pooled = []
real = sqlite_files.off_loop
sqlite_files.off_loop = lambda work: (pooled.append(1), real(work))[1]
behind = write_behind.WriteBehind(lambda fn, *args, pauses=(): sqlite_files.first_here(lambda: fn(*args), pauses),
                                  store)

def record():
    rid = response_id("resp_")
    return StoredResponse(rid, "o", time.time(), {"id": rid, "status": "completed", "output": []}, [])

def written(rec, seconds=10):
    deadline = time.monotonic() + seconds
    while store.get_response(rec.id) is None:
        assert time.monotonic() < deadline, "never written"
        gevent.sleep(0.005)

def holding():
    # another worker's write: the file's write lock held until told to let go
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys\n"
        f"db = sqlite3.connect({path!r}, isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "db.execute('COMMIT')\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder

def let_go(holder):
    holder.stdin.write("go\n"); holder.stdin.flush(); holder.wait(10)

first = record(); behind.put(first); written(first)  # the file opened, the flusher started

# The lock let go while the flusher sleeps between its tries: written from the loop, no pool.
write_behind.LOCKED_PAUSES = (0.01,) * 1000  # ten seconds of tries: the holder's pace cannot decide it
pooled.clear()
holder = holding()
rec = record(); behind.put(rec)
gevent.sleep(0.05)  # the batch met the lock and is waiting; the loop runs
assert store.get_response(rec.id) is None and behind.get(rec.id) is rec
let_go(holder)
written(rec)
assert pooled == [], pooled

# Held past every pause: the batch goes to the pool, where it waits for the lock.
write_behind.LOCKED_PAUSES = (0.001,)
holder = holding()
rec = record(); behind.put(rec)
deadline = time.monotonic() + 10
while not pooled:
    assert time.monotonic() < deadline, "never sent to the pool"
    gevent.sleep(0.005)
let_go(holder)
written(rec)
print("ok")
"""


def test_a_batch_that_meets_another_workers_lock_tries_again_on_the_loop_before_the_pool():
    """At 16 connections one worker's batches met the other's lock 16 times in 75: each went to gevent's thread
    pool, whose hop cost more CPU than the write. Under gevent, in a process of its own (a worker's kind)."""
    done = subprocess.run([sys.executable, "-c", LOCKED], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
