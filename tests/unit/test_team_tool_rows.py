"""A team's MCP tool rows (teamkeys/service.py, `TeamKeys.flush`) on the real SQLite key store: each key's calls are
its row and, while it is in a team, its team's row too; a row the store refused is written again once, never counted
twice; while the store cannot name the keys' teams, the rows wait rather than go without their team's."""

from __future__ import annotations

import sqlite3
import threading

from argoproxy.teamkeys.records import TEAM_WINDOWS, KeyRecord, TeamRecord
from argoproxy.teamkeys.service import TeamKeys
from argoproxy.teamkeys.store import SQLiteKeyStore

DAY = 86400 * 20000


class Flaky(SQLiteKeyStore):
    """The real store, told to refuse its next writes of some rows, or its next reads of the keys."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.refuse_rows: set[str] = set()
        self.refuse_records = 0

    def record_tool_usage(self, name, *args, **kwargs):
        if name in self.refuse_rows:
            self.refuse_rows.discard(name)
            raise sqlite3.OperationalError("database is locked")
        return super().record_tool_usage(name, *args, **kwargs)

    def records(self):
        if self.refuse_records:
            self.refuse_records -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().records()


def calls(store: Flaky) -> dict[str, int]:
    return {row[0]: row[4] for row in store.tool_usage()}


def make(tmp_path) -> tuple[Flaky, TeamKeys]:
    store = Flaky(tmp_path / "keys.db")
    store.create_team(TeamRecord("ops"))
    store.create(KeyRecord("bot", "d1", 0.0, team="ops"))
    store.create(KeyRecord("alone", "d2", 0.0))
    keys = TeamKeys(store, clock=lambda: DAY + 60)
    keys._start_flusher = lambda: None  # flushed by the test
    return store, keys


def test_a_keys_calls_are_its_teams_rows_too(tmp_path):
    store, keys = make(tmp_path)
    for name in ("bot", "bot", "alone"):
        keys.tool_used(name, "git", "git__status", False, 0.01, 10, 20)
    keys.flush()
    assert calls(store) == {"bot": 2, "alone": 1, TEAM_WINDOWS + "ops": 2}


def test_a_refused_row_is_written_again_once(tmp_path):
    store, keys = make(tmp_path)
    keys.tool_used("bot", "git", "git__status", False, 0.01, 10, 20)
    store.refuse_rows = {"bot"}
    keys.flush()
    assert calls(store) == {TEAM_WINDOWS + "ops": 1}
    keys.flush()
    assert calls(store) == {"bot": 1, TEAM_WINDOWS + "ops": 1}
    keys.tool_used("bot", "git", "git__status", False, 0.01, 10, 20)
    keys.flush()
    assert calls(store) == {"bot": 2, TEAM_WINDOWS + "ops": 2}


def test_rows_wait_while_the_store_cannot_name_their_teams(tmp_path):
    store, keys = make(tmp_path)
    keys.tool_used("bot", "git", "git__status", False, 0.01, 10, 20)
    store.refuse_records = 1
    keys.flush()
    assert calls(store) == {}
    keys.flush()
    assert calls(store) == {"bot": 1, TEAM_WINDOWS + "ops": 1}


class Slow(Flaky):
    """The real store, whose next tool row waits for the test (a flush with its batch in hand)."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.writing, self.go = threading.Event(), threading.Event()

    def record_tool_usage(self, name, *args, **kwargs):
        if not self.go.is_set():
            self.writing.set()
            self.go.wait(30)
        return super().record_tool_usage(name, *args, **kwargs)


def test_a_leaving_flush_waits_for_the_batch_the_flusher_holds(tmp_path):
    """The flusher takes its rows out of the queue before it writes them: a worker leaving meanwhile (its own flush,
    then the process ends) must not find the queue empty and go while those rows are still unwritten."""
    store = Slow(tmp_path / "keys.db")
    store.create(KeyRecord("alone", "d2", 0.0))
    keys = TeamKeys(store, clock=lambda: DAY + 60)
    keys._start_flusher = lambda: None
    keys.tool_used("alone", "git", "git__status", False, 0.01, 10, 20)
    flusher = threading.Thread(target=keys.flush)
    flusher.start()
    assert store.writing.wait(30)
    leaving = threading.Thread(target=keys.flush)
    leaving.start()
    leaving.join(0.3)
    assert leaving.is_alive()  # it waits for the batch in hand ...
    store.go.set()
    leaving.join(30)
    flusher.join(30)
    assert calls(store) == {"alone": 1}  # ... which is written before it returns
