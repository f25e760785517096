"""The response store and chain rebuilding in-process (argoproxy/state/): SQLite store rows, bounds, expiry,
cancel flags and events; history cut into turns; item references; list pages; the route claims."""

from __future__ import annotations

import time

import pytest

from argoproxy.edge.paths import canonical
from argoproxy.errors import ProxyError
from argoproxy.fronts.responses.kept_items import input_items
from argoproxy.fronts.responses.kept_routes import state_route
from argoproxy.fronts.responses.kept_shapes import ResponsesShapes
from argoproxy.state import chain
from argoproxy.state.records import StoredConversation, StoredResponse, StoreFull, page
from argoproxy.state.store import SQLiteResponseStore

SHAPES = ResponsesShapes(lambda event: b"")  # the Responses door's, as it hands them to the state package


def record(resp_id: str, owner: str = "o", text: str = "answer", chain_ids: list[str] | None = None,
           created: float | None = None) -> StoredResponse:
    out = [{"type": "message", "id": "msg_" + resp_id, "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    return StoredResponse(resp_id, owner, created or time.time(), {"id": resp_id, "status": "completed",
                                                                   "output": out},
                          input_items("question " + resp_id), chain_ids or [])


def test_put_get_delete_and_the_chain_in_one_read(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    store.put_response(record("r1"))
    store.put_response(record("r2", chain_ids=["r1"]))
    prev = store.get_response("r2")
    history = chain.chain_items(chain.previous_chain(prev, store.get_responses)[0], SHAPES.output)
    assert [i["type"] for i in history] == ["message"] * 4
    assert history[0]["content"][0]["text"] == "question r1" and history[-1]["content"][0]["text"] == "answer"
    assert store.delete_response("r1") and store.get_response("r1") is None
    assert [r.id for r in chain.previous_chain(prev, store.get_responses)[0]] == ["r2"]  # deleted: left out


def test_bounds_refuse_per_key_and_per_instance(tmp_path):
    one = len(record("x").as_json().__repr__())
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 3 * one, 5 * one)
    store.put_response(record("a1", owner="a"))
    store.put_response(record("a2", owner="a"))
    with pytest.raises(StoreFull) as err:
        for n in range(10):
            store.put_response(record(f"a{n + 3}", owner="a"))
    assert "RESPONSES_MAX_BYTES_PER_KEY" in err.value.message and err.value.status == 400
    assert store.used_bytes("a") <= 3 * one
    with pytest.raises(StoreFull) as err:
        for n in range(10):
            store.put_response(record(f"b{n}", owner=f"b{n}"))
    assert "RESPONSES_MAX_BYTES" in err.value.message
    store.put_response(record("a1", owner="a", text="same size"))  # a replacement counts its new size only


def test_expired_rows_are_not_read_and_are_swept(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 60, 1 << 20, 1 << 30)
    store.put_response(record("old", created=time.time() - 120))
    store.put_conversation(StoredConversation("conv_old", "o", time.time() - 120, {}), input_items("hi"))
    assert store.get_response("old") is None and store.get_conversation("conv_old") is None
    store.sweep()
    assert store.used_bytes("o") == 0


def test_a_cancel_survives_the_runs_next_write_and_events_read_after_a_number(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    rec = record("bg")
    rec.background = True
    rec.response["status"] = "in_progress"
    store.put_response(rec)
    store.set_cancelled("bg")
    store.put_response(rec)  # the run's progress, written by a worker that has not seen the cancel
    assert store.get_response("bg").cancelled
    store.add_events(rec, [(n, {"type": "e", "sequence_number": n}) for n in range(5)])
    assert [e["sequence_number"] for e in store.events_after("bg", 2)] == [3, 4]
    store.touch("bg", 123456789.0)
    assert store.get_response("bg").heartbeat >= 123456789.0


def deleted_while_running(store) -> StoredResponse:
    """A background run's record, deleted while the run goes on; what the run then writes."""
    rec = record("bg")
    rec.background = True
    rec.response["status"] = "in_progress"
    store.put_response(rec)
    assert not store.stop_asked("bg")
    assert store.delete_response("bg")
    assert store.stop_asked("bg")  # gone: the run stops as for a cancel
    return rec


def test_a_run_never_writes_back_a_response_deleted_while_it_ran(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    rec = deleted_while_running(store)
    assert store.update_response(rec) is False and store.get_response("bg") is None
    store.add_events(rec, [(0, {"type": "e", "sequence_number": 0})])
    assert store.events_after("bg", -1) == [] and store.used_bytes("o") == 0
    store.put_response(record("live"))
    live = record("live")
    live.response["status"] = "in_progress"
    assert store.update_response(live) and store.get_response("live").status == "in_progress"


def test_a_cancel_reads_at_once_whatever_the_run_writes_next(tmp_path):
    from argoproxy.state.records import as_it_stands
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    rec = record("bg")
    rec.background, rec.heartbeat = True, time.time()
    rec.response["status"] = "in_progress"
    store.put_response(rec)
    store.set_cancelled("bg")
    assert store.stop_asked("bg")
    store.update_response(rec)  # the run's progress, written before it saw the cancel
    assert as_it_stands(store.get_response("bg")).status == "cancelled"
    rec.response["status"] = "completed"  # a run that finished as the cancel came: completed it stays
    store.update_response(rec)
    assert as_it_stands(store.get_response("bg")).status == "completed"


def test_turns_keep_a_call_with_its_output():
    items = input_items([{"role": "user", "content": "q1"},
                         {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                         {"type": "function_call_output", "call_id": "c1", "output": "r"},
                         {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}])
    shorter = chain.without_oldest_turn(items, SHAPES.starts_turn)
    assert [i.get("role") or i["type"] for i in shorter] == ["user"]
    assert chain.without_oldest_turn([], SHAPES.starts_turn) is None


def test_item_references_resolve_from_history_then_store():
    known = input_items([{"role": "user", "content": "kept", "id": "msg_1"}])
    got = chain.resolved_references([{"type": "item_reference", "id": "msg_1"},
                                     {"type": "item_reference", "id": "msg_2"}], known,
                                    lambda ref: {"id": ref, "type": "message"} if ref == "msg_2" else None,
                                    SHAPES.is_reference)
    assert [i["id"] for i in got] == ["msg_1", "msg_2"]
    with pytest.raises(ProxyError) as err:
        chain.resolved_references([{"type": "item_reference", "id": "nope"}], [], lambda ref: None,
                                  SHAPES.is_reference)
    assert err.value.status == 400 and err.value.param == "input[0].id"


def test_pages_in_openai_list_shape():
    items = [{"id": f"i{n}"} for n in range(5)]
    first = page(items, None, 2, "desc")
    assert [i["id"] for i in first["data"]] == ["i4", "i3"] and first["has_more"] and first["last_id"] == "i3"
    rest = page(items, "i1", 10, "desc")
    assert [i["id"] for i in rest["data"]] == ["i0"] and not rest["has_more"]


@pytest.mark.parametrize("path,kind", [("/v1/responses/resp_AbC", "response"),
                                       ("/v1/responses/resp_1/input_items", "response_input_items"),
                                       ("/V1/Responses/resp_1/Cancel", "response_cancel"),
                                       ("/conversations", "conversations"),
                                       ("/v1/conversations/conv_1/items/msg_1", "conversation_item")])
def test_state_routes_are_claimed(path, kind):
    route = state_route(canonical(path).parts)
    assert route is not None and route.kind == kind and route.family == "state" and route.front == "responses"
    assert "resp_AbC" in route.path if "AbC" in path else True


def test_other_paths_are_not_claimed():
    for path in ("/v1/responses", "/v1/responses/x/other", "/v1/conversations/c/items/i/more", "/v1/chat"):
        assert state_route(canonical(path).parts) is None


def test_the_totals_the_bounds_read_equal_what_is_stored(tmp_path):
    from argoproxy.state.store import ALL_BYTES, COUNTED
    store = SQLiteResponseStore(tmp_path / "r.db", 60, 1 << 20, 1 << 30)
    store.put_response(record("r1", owner="a"))
    store.put_response(record("r1", owner="a", text="a longer answer replacing the first"))
    store.put_response(record("r2", owner="b"))
    store.put_response(record("old", owner="b", created=time.time() - 120))
    conv = StoredConversation("conv_1", "a", time.time(), {})
    store.put_conversation(conv, input_items("hello"))
    store.add_items(conv, input_items([{"role": "user", "content": "more"}]))
    rec = record("r1", owner="a")
    store.add_events(rec, [(0, {"type": "e", "sequence_number": 0})])
    item_id = store.items("conv_1")[0]["id"]
    store.delete_item("conv_1", item_id)
    store.delete_response("r2")
    store.sweep()

    def summed(owner: str | None) -> int:
        where = " WHERE owner = ?" if owner else ""
        return store._read(f"SELECT COALESCE(SUM(size), 0) FROM ({COUNTED}){where}", (owner,) if owner else ())[0][0]
    assert store.used_bytes("a") == summed("a") > 0
    assert store.used_bytes("b") == summed("b") == 0
    assert store._read(ALL_BYTES)[0][0] == summed(None)
    store.delete_conversation("conv_1")
    assert store.used_bytes("a") == summed("a")


def test_a_history_is_read_newest_first_up_to_a_bound(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 30, 1 << 30)
    ids: list[str] = []
    for n in range(150):
        store.put_response(record(f"r{n}", chain_ids=list(ids)))
        ids.append(f"r{n}")
    last = store.get_response("r149")
    records, whole = chain.previous_chain(last, store.get_responses)
    assert whole and [r.id for r in records] == ids
    size = last.stored_size
    records, whole = chain.previous_chain(last, store.get_responses, limit=10 * size)
    assert not whole and [r.id for r in records] == ids[-len(records):] and 5 <= len(records) <= 10
    conv = StoredConversation("conv_1", "o", time.time(), {})
    store.put_conversation(conv, input_items([{"role": "user", "content": f"m{n}"} for n in range(20)]))
    items, whole = store.recent_items("conv_1", 1 << 20)
    assert whole and [i["content"][0]["text"] for i in items] == [f"m{n}" for n in range(20)]
    items, whole = store.recent_items("conv_1", 500)
    assert not whole and items[-1]["content"][0]["text"] == "m19" and len(items) < 20
    calls = input_items([{"type": "function_call_output", "call_id": "c", "output": "x"},
                         {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert [i["type"] for i in chain.whole_turns(calls, SHAPES.starts_turn)] == ["message", "message"]


def test_a_deleted_body_is_not_left_in_the_file(tmp_path):
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    store.put_response(record("gone", text="TOP-SECRET-" * 50))
    store.delete_response("gone")
    store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"TOP-SECRET-" not in (tmp_path / "r.db").read_bytes()


def test_one_response_past_its_bound_is_refused_before_the_store_copies_it():
    from argoproxy.state.records import MAX_RESPONSE_BYTES, StoredResponse, StoreFull, encoded
    big = StoredResponse("resp_big", "owner", 0.0, {"output": [{"type": "message", "content": [
        {"type": "output_text", "text": "x" * (MAX_RESPONSE_BYTES + 1)}]}]}, [])
    with pytest.raises(StoreFull):
        encoded(big)
    small = StoredResponse("resp_small", "owner", 0.0, {"output": []}, [])
    assert encoded(small).startswith(b"{")


def test_a_failed_upkeep_does_not_fail_the_call_it_follows(tmp_path, monkeypatch, caplog):
    """The sweep and checkpoint run after a store call when due; another process holding the file's lock past
    the wait made them fail, and that turned the call before them (done) into a 503 (seen in CI: one of 60
    background runs started at once)."""
    import sqlite3
    from types import SimpleNamespace

    from argoproxy import sqlite_files
    from argoproxy.state.service import StateService
    monkeypatch.setattr(sqlite_files, "BUSY_SECONDS", 0.2)
    store = SQLiteResponseStore(tmp_path / "r.db", 3600, 1 << 20, 1 << 30)
    store.put_response(record("r1"))
    state = StateService(SimpleNamespace(), store, offload=True)
    other = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker's write, held past the wait
    try:
        store._swept = 0.0  # the sweep is due
        assert state.io(store.get_response, "r1").id == "r1"
        assert "its upkeep failed (OperationalError)" in caplog.text
    finally:
        other.execute("ROLLBACK")
    store._swept = 0.0
    assert state.io(store.get_response, "r1").id == "r1"  # and done when the lock is gone


def test_running_background_responses_are_counted_through_an_index_of_them_alone(tmp_path):
    """Only live_runs reads responses by owner: a file made with the older index on every response's owner
    loses it when opened, and both of live_runs' counts read the index of running background rows."""
    import sqlite3
    path = tmp_path / "r.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE responses (id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL, "
                      "size INTEGER NOT NULL, background INTEGER NOT NULL, live INTEGER NOT NULL, heartbeat REAL "
                      "NOT NULL, cancelled INTEGER NOT NULL, data BLOB NOT NULL);"
                      "CREATE INDEX responses_owner ON responses (owner, size);")
    old.close()
    store = SQLiteResponseStore(path, 3600, 1 << 20, 1 << 30)
    running = record("r1")
    running.background, running.response["status"], running.heartbeat = True, "in_progress", time.time()
    store.put_response(running)
    store.put_response(record("r2"))
    assert store.live_runs("o", time.time() - 60) == (1, 1) and store.live_runs("p", time.time() - 60) == (0, 1)
    db = sqlite3.connect(path)
    indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "responses_owner" not in indexes and "responses_live" in indexes
    for sql in ("SELECT COUNT(*) FROM responses WHERE live = 1 AND heartbeat >= 0 AND owner = 'o'",
                "SELECT COUNT(*) FROM responses WHERE live = 1 AND heartbeat >= 0"):
        assert "responses_live" in str(db.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
    db.close()


def test_an_unknown_id_is_named_in_its_error_at_most_200_characters_long():
    from argoproxy.state.chain import not_found
    assert not_found("Item", "msg_1", "input[0].id", 400).message == "Item with id 'msg_1' not found."
    long = not_found("Item", "x" * 300_000, "input[0].id", 400).message
    assert long == "Item with id '" + "x" * 200 + "...' not found."
