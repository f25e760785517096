"""System calls a request no longer makes (issue 70; bench/syscalls.py counts a whole request's): the process's pid
asked of the kernel once per process, not by every metric update and watcher; a request id without a read of the
OS's randomness; the status page's writes under one file lock. Each is counted here by wrapping the call."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from argoproxy import per_process
from argoproxy.edge.request_ids import new_request_id
from argoproxy.observe.status_page import StatusPage
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.call_records import ended, started
from argoproxy.shared_cells import SHARED_DIR_ENV, SharedCells
from argoproxy.spend.pricer import Cost

ROOT = Path(__file__).resolve().parents[2]


class Counted:
    """A function's calls, counted."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args):
        self.calls += 1
        return self.real(*args)


class Watched(per_process.PerProcess):
    pass


def test_the_pid_is_read_once_and_again_in_a_forked_child(monkeypatch):
    assert per_process.pid() == os.getpid()
    first = Watched.get()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports what it sees, then leaves without the parent's exit handlers
        os.close(read)
        os.write(write, f"{per_process.pid() == os.getpid()} {Watched.get() is not first}".encode())
        os._exit(0)
    os.close(write)
    seen = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(child, 0)
    assert seen == "True True"  # its own pid, and its own instance
    getpid = Counted(os.getpid)
    monkeypatch.setattr(os, "getpid", getpid)
    assert Watched.get() is first and per_process.pid() > 0
    assert getpid.calls == 0


def test_a_request_id_reads_no_randomness_of_its_own(monkeypatch):
    urandom = Counted(os.urandom)
    monkeypatch.setattr(os, "urandom", urandom)
    ids = {new_request_id() for _ in range(300)}
    assert len(ids) == 300 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert urandom.calls <= 2  # 4 KiB read at a time: 256 ids a read (argoproxy/ids.py)


def test_the_status_page_writes_a_request_under_one_lock(monkeypatch, tmp_path):
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    page = StatusPage(None, lambda: [])
    flock = Counted(fcntl.flock)
    monkeypatch.setattr(fcntl, "flock", flock)
    call = Call.of("chat", "POST", "v1/chat/completions")
    call.plan.model, call.outcome.status = "m", 200
    call.outcome.cost = Cost(5000, True, "test", "m")
    page.observe(started(call), ended(call))
    assert flock.calls == 2  # one LOCK_EX, one LOCK_UN: the record, the minute's counts and the spend together
    assert [r["model"] for r in page.recent.last()] == ["m"]
    assert page.history.minutes()[-1]["requests"] == 1
    assert page.spend.series("model")[0]["name"] == "m"


def test_cells_guarded_by_anothers_lock_keep_out_other_processes(tmp_path):
    """Two processes adding to cells whose lock is another file's: none of the additions is lost."""
    guard = SharedCells("guard.cells", 1, str(tmp_path))
    cells = SharedCells("guarded.cells", 1, str(tmp_path), guard=guard)
    children = []
    for _ in range(2):
        child = os.fork()
        if child == 0:
            mine = SharedCells("guarded.cells", 1, str(tmp_path),
                               guard=SharedCells("guard.cells", 1, str(tmp_path)))
            for _ in range(2000):
                with mine.lock() as c:
                    value = c[0]
                    os.sched_yield()
                    c[0] = value + 1
            os._exit(0)
        children.append(child)
    for child in children:
        os.waitpid(child, 0)
    with guard.lock():
        assert cells.cells[0] == 4000


METRICS = r"""
import os
calls = [0]
real = os.getpid
def counted():
    calls[0] += 1
    return real()
os.getpid = counted  # before prometheus_client takes os.getpid as its default process_identifier

from argoproxy.config.settings import load_settings
from argoproxy.observe.metrics import Metrics
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.call_records import ended, started

metrics = Metrics(load_settings(environ={}))
call = Call.of("chat", "POST", "v1/chat/completions")
call.plan.model, call.outcome.status = "m", 200
metrics.observe(started(call), ended(call))  # the series' values made, their files opened
calls[0] = 0
for _ in range(10):
    metrics.observe(started(call), ended(call))
print("getpid", calls[0])
child = os.fork()
if child == 0:  # another worker: its values in files of its own pid, summed with this process's by a scrape
    for _ in range(5):
        metrics.observe(started(call), ended(call))
    os._exit(0)
os.waitpid(child, 0)
print(sorted(name.split("_")[-1] for name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
             if name.startswith("counter_")) == sorted([f"{real()}.db", f"{child}.db"]))
body = metrics.exposition()[0].decode()
print([line for line in body.splitlines() if line.startswith("cot_proxy_requests_total{")])
"""


def test_metric_files_ask_no_pid_per_update_and_still_add_up_across_processes(tmp_path):
    """prometheus_client in multiprocess mode (its value class is chosen at import: a fresh interpreter) with the
    cached pid as its process_identifier; a forked process writes files of its own, and a scrape sums both."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", METRICS], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out[0] == "getpid 0"
    assert out[1] == "True"
    assert "16.0" in out[2] and out[2].count("cot_proxy_requests_total") == 1, out[2]


def test_a_known_team_key_is_admitted_and_settled_in_one_critical_section_each(monkeypatch, tmp_path):
    """A limited team key's admission read its slot under the lock, let go, and took it again to count: two flock
    pairs where one does (two again only for a key this instance meets for the first time: its store read between)."""
    from argoproxy.teamkeys.local_windows import CELLS_NAME, SLOTS, WIDTH, LocalWindows
    from argoproxy.teamkeys.records import KeyRecord, digest
    windows = LocalWindows(lambda record, now: 0, SharedCells(CELLS_NAME, SLOTS * WIDTH, str(tmp_path)))
    key = KeyRecord("k", digest("sk-k"), "sk-k", rpm=100, tpm=10**6, created=0.0)
    team = KeyRecord("team:t", digest("team:t"), "", rpm=100, created=0.0)
    assert windows.admit_with_team(key, team, 1000.0, reserve=10) == (0.0, "")  # met here: two sections
    flock = Counted(fcntl.flock)
    monkeypatch.setattr(fcntl, "flock", flock)
    assert windows.admit(key, 1001.0, reserve=10) == (0.0, "")
    assert windows.settle(key, 10, 7, 1002.0) is True
    assert windows.admit_with_team(key, team, 1003.0, reserve=10) == (0.0, "")
    assert flock.calls == 6  # three sections, one LOCK_EX and one LOCK_UN each
    assert windows.in_flight(key) == 2  # the first and the last admissions' holds, the second's given back


def test_admission_seats_a_request_and_keeps_its_wait_in_one_critical_section(monkeypatch, tmp_path):
    """The status page's record of each key's waits took a lock of its own after the seat's: it is written under the
    queue's, in the section that seats the request."""
    from argoproxy.admission.queue import Admission
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    admission = Admission([[0]], 1, [4], name="t")
    waits = admission.keep_waits()
    admission.release(admission.enter(0, "k", 1, label="k"))
    flock = Counted(fcntl.flock)
    monkeypatch.setattr(fcntl, "flock", flock)
    seat = admission.enter(0, "k", 1, label="k")
    assert flock.calls == 2
    admission.release(seat)
    assert waits.recent()["k"]["waits"] == 2
