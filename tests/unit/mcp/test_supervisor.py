"""The supervisor's stdio servers, with the strict fake server (tests/fakes/fake_mcp_server.py): many clients'
calls share one pipe under ids of its own, the server's environment is its config's and nothing of the proxy's,
its stderr goes to the log, a dead server fails its calls and starts again, and the supervisor the Gunicorn
master starts stops its servers with it."""

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc, launch
from argoproxy.mcp.link import Link, SessionRefused, SupervisorGone
from argoproxy.mcp.stdio_server import StdioServer
from argoproxy.mcp.supervisor import Sessions, Supervisor, UnixServer
from tests.polling import poll

FAKE = str(Path(__file__).resolve().parents[2] / "fakes" / "fake_mcp_server.py")


def fake(name="fake", env=()):
    return McpServer(name, sys.executable, (FAKE,), tuple(env))


@pytest.fixture
def server(tmp_path):
    running = StdioServer(fake(env=(("TZ", "UTC"),)), str(tmp_path / "home"),
                          environ={"PATH": os.environ["PATH"], "OPENAI_API_KEY": "sk-proxy-secret", "LANG": "C.UTF-8"})
    running.start()
    assert running.ready.wait(20), running.last_error
    yield running
    running.stop()


def call(server, name, args=None, id=1, timeout=10.0):
    return server.call({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                        "params": {"name": name, "arguments": args or {}}}, timeout)


def text(answer):
    return answer["result"]["content"][0]["text"]


def test_many_clients_share_the_pipe_with_the_same_ids(server):
    """Every caller sends id 1 at once; the fake refuses an id already in flight, so each call reaching it under
    its own id and coming back under id 1 with its own answer is the remapping."""
    answers = {}

    def one(n):
        answers[n] = call(server, "echo", {"text": f"call {n}"}, id=1)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert {n: (a["id"], text(a)) for n, a in answers.items()} == {n: (1, f"call {n}") for n in range(20)}


def test_the_server_sees_its_env_path_lang_and_a_private_home_only(server, tmp_path):
    seen = json.loads(text(call(server, "whoami")))
    assert set(seen["env"]) - {"LC_CTYPE", "PWD"} == {"PATH", "LANG", "HOME", "TMPDIR", "TZ"}  # Python: LC_CTYPE
    assert seen["home"] == str(tmp_path / "home")
    assert oct(os.stat(seen["home"]).st_mode & 0o777) == "0o700"


def test_a_call_past_its_deadline_is_a_timeout_error(server):
    answer = call(server, "slow", {"seconds": 5}, id="s", timeout=0.3)
    assert answer["id"] == "s" and answer["error"]["code"] == jsonrpc.REQUEST_TIMEOUT
    assert text(call(server, "echo", {"text": "still here"})) == "still here"


def test_a_server_that_dies_fails_its_call_and_starts_again(server):
    first_pid = server.process.pid
    answer = call(server, "crash", id=9)
    assert answer["id"] == 9 and answer["error"]["code"] == jsonrpc.SERVER_UNAVAILABLE
    assert poll(lambda: server.state == "ready" and server.process.pid != first_pid, timeout=20)
    assert server.restarts == 1
    assert text(call(server, "echo", {"text": "back"})) == "back"


def test_the_servers_stderr_is_in_the_log(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="cot_proxy"):
        running = StdioServer(fake("noisy"), str(tmp_path / "home"))
        running.start()
        try:
            assert running.ready.wait(20)
            assert poll(lambda: "mcp server noisy: fake_mcp_server: started" in caplog.text)
        finally:
            running.stop()


def test_a_command_that_cannot_start_is_retried_and_named(tmp_path):
    running = StdioServer(McpServer("gone", "/nonexistent/mcp-server"), str(tmp_path / "home"))
    running.start()
    try:
        assert poll(lambda: "could not start" in running.last_error)
        answer = running.call({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, 0.2)
        assert answer["error"]["code"] == jsonrpc.SERVER_UNAVAILABLE and "could not start" in answer["error"]["message"]
    finally:
        running.stop()


@pytest.mark.parametrize("command, args", [("/nonexistent/mcp-server", ()), (sys.executable, ("-c", "pass"))])
def test_a_call_to_a_server_that_failed_to_start_ends_at_once(tmp_path, command, args):
    """Its spawn failed, or its process exited before its handshake: the call is answered as soon as that is
    known, not when its deadline passes (a listing at /mcp asks every server)."""
    running = StdioServer(McpServer("down", command, args), str(tmp_path / "home"))
    running.start()
    try:
        started = time.monotonic()
        answer = running.call({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, 10.0)
        assert answer["error"]["code"] == jsonrpc.SERVER_UNAVAILABLE, answer
        assert time.monotonic() - started < 5
    finally:
        running.stop()


def test_sessions_belong_to_the_key_that_opened_them():
    sessions = Sessions()
    sid = sessions.act({"action": "new", "owner": "alice", "version": "2025-11-25"})["id"]
    assert sessions.act({"action": "get", "id": sid, "owner": "alice"}) == {"version": "2025-11-25"}
    assert sessions.act({"action": "get", "id": sid, "owner": "bob"}) == {}
    assert sessions.act({"action": "end", "id": sid, "owner": "bob"}) == {}
    assert sessions.act({"action": "end", "id": sid, "owner": "alice"}) == {"ended": True}
    assert sessions.act({"action": "get", "id": sid, "owner": "alice"}) == {}


def test_a_call_carrying_a_session_is_made_only_in_its_owners_session(tmp_path):
    """A worker's call carries the request's session and its owner: the supervisor answers it only in a session it
    holds for that owner, checked on the call's own trip; an unknown, ended or other key's session is refused
    there, and nothing reaches the server (its tally counts no such call)."""
    supervisor = Supervisor([fake()], str(tmp_path))
    unix = UnixServer(str(tmp_path / "s.sock"), supervisor)
    threading.Thread(target=unix.serve_forever, daemon=True).start()
    supervisor.start()
    try:
        link = Link(str(tmp_path / "s.sock"))
        assert poll(lambda: [s["state"] for s in link.status()] == ["ready"], timeout=20), link.status()
        sid = link.session("new", owner="key:alice", version="2025-11-25")["id"]

        def echo(session, owner, text):
            return link.call("fake", {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                                      "params": {"name": "echo", "arguments": {"text": text}}}, 10, session, owner)

        assert echo(sid, "key:alice", "hello")["result"]["content"][0]["text"] == "hello"
        for session, owner in ((sid, "key:mallory"), ("no-such-session", "key:alice"), ("", "key:alice")):
            with pytest.raises(SessionRefused):
                echo(session, owner, "refused")
        assert link.session("end", id=sid, owner="key:alice") == {"ended": True}  # DELETE, on any worker
        with pytest.raises(SessionRefused):
            echo(sid, "key:alice", "refused")
        assert echo("", None, "no session asked")["result"]  # the stateless revision's calls carry no owner
        tally = json.loads(text(link.call("fake", {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                   "params": {"name": "tally", "arguments": {}}}, 10)))
        assert tally["echo:"] == 2, tally
    finally:
        supervisor.stop()
        unix.shutdown()
        unix.server_close()
    with pytest.raises(SupervisorGone):  # a call that is its session's check cannot be answered without it
        Link(str(tmp_path / "s.sock")).call("fake", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, 1, "x", "key:alice")


def test_the_supervisor_process_serves_workers_and_stops_its_servers_with_it(monkeypatch):
    monkeypatch.delenv(launch.SOCKET_ENV, raising=False)
    monkeypatch.delenv(launch.OWNER_ENV, raising=False)
    path = launch.start_supervisor((fake("one"), fake("two")))
    try:
        link = Link(path)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        ready = poll(lambda: sorted(s["name"] for s in link.status() if s["state"] == "ready") == ["one", "two"],
                     timeout=20)
        assert ready, link.status()
        answer = link.call("two", {"jsonrpc": "2.0", "id": "x", "method": "tools/call",
                                   "params": {"name": "add", "arguments": {"a": 2, "b": 3}}}, 10)
        assert answer == {"jsonrpc": "2.0", "id": "x", "result": {"content": [{"type": "text", "text": "5"}],
                                                                  "isError": False}}
        assert link.call("three", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, 1)["error"]["code"] \
            == jsonrpc.SERVER_UNAVAILABLE
        pids = [s["pid"] for s in link.status()]
    finally:
        launch.stop_supervisor()
    assert not os.path.exists(path)
    for pid in pids:
        assert poll(lambda: not alive(pid), timeout=10), f"server {pid} outlived the supervisor"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_reload_keeps_the_supervisor_unless_the_servers_changed(monkeypatch):
    monkeypatch.delenv(launch.SOCKET_ENV, raising=False)
    monkeypatch.delenv(launch.OWNER_ENV, raising=False)
    first = launch.start_supervisor((fake("one"),))
    try:
        assert launch.start_supervisor((fake("one"),)) == first
        second = launch.start_supervisor((fake("one"), fake("two")))
        assert second != first and poll(lambda: not os.path.exists(first), timeout=20)  # retired (grace 0)
        assert poll(lambda: sorted(s["name"] for s in Link(second).status() if s["state"] == "ready") == ["one", "two"],
                    timeout=20)
    finally:
        launch.stop_supervisor()


def test_garbage_and_a_flood_of_notifications_leave_the_call_and_the_server_well(server, caplog):
    with caplog.at_level(logging.WARNING, logger="cot_proxy"):
        assert text(call(server, "garbage")) == "after garbage"
    assert "wrote a line that is not JSON" in caplog.text and "answered a request it was not asked" in caplog.text
    assert text(call(server, "flood", {"count": 5000})) == "after flood"
    assert text(call(server, "echo", {"text": "well"})) == "well" and server.restarts == 0


def test_progress_goes_to_the_call_that_asked_under_its_own_token(server):
    """Two callers give the same progress token at once: each gets its own call's notifications, under it."""
    got = {}

    def one(n):
        notes = []
        answer = server.call({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": "progress", "arguments": {"steps": 3 + n}, "_meta": {"progressToken": "p"}}},
                             10, on_note=notes.append)
        got[n] = (text(answer), notes)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for n in range(2):
        said, notes = got[n]
        assert said == f"{3 + n} steps, token given"
        assert [(m["params"]["progressToken"], m["params"]["progress"]) for m in notes] == \
            [("p", step) for step in range(1, 4 + n)]


def test_without_a_relay_the_token_is_not_sent(server):
    answer = call(server, "progress", {"steps": 2})
    assert text(answer) == "2 steps, token none"
    answer = server.call({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "progress", "_meta": {"progressToken": 5}}}, 10)
    assert text(answer) == "3 steps, token none"


def test_a_cancelled_call_ends_now_and_only_its_sessions(server):
    """Two sessions' calls with the same id run; one session cancels: its call ends at once, the other's does not."""
    answers = {}

    def one(session, seconds):
        answers[session] = server.call({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                        "params": {"name": "slow", "arguments": {"seconds": seconds}}},
                                       30, session=session)

    threads = [threading.Thread(target=one, args=("a", 20)), threading.Thread(target=one, args=("b", 1))]
    for t in threads:
        t.start()
    assert poll(lambda: len(server.pending) == 2)
    assert not server.cancel("c", 7) and not server.cancel("a", 8)
    assert server.cancel("a", 7)
    threads[0].join(5)
    assert answers["a"] == {"jsonrpc": "2.0", "id": 7, "error": {"code": jsonrpc.REQUEST_CANCELLED,
                                                                 "message": "Request cancelled."}}
    threads[1].join(10)
    assert text(answers["b"]) == "slept"


def test_one_key_opening_sessions_in_a_loop_ends_only_its_own(monkeypatch):
    from argoproxy.mcp import supervisor
    monkeypatch.setattr(supervisor, "MAX_PER_OWNER", 3)
    sessions = Sessions()
    alice = sessions.act({"action": "new", "owner": "alice", "version": "v"})["id"]
    first = [sessions.act({"action": "new", "owner": "mallory", "version": "v"})["id"] for _ in range(10)]
    assert sessions.act({"action": "get", "id": alice, "owner": "alice"}) == {"version": "v"}
    assert [bool(sessions.act({"action": "get", "id": s, "owner": "mallory"})) for s in first] == [False] * 7 + [True] * 3


def test_a_session_dropped_for_being_idle_ends_its_streams(tmp_path):
    """As a DELETE does: the listener of a session the supervisor drops (idle, when the next session is opened)
    hears its end."""
    from argoproxy.mcp import supervisor as module
    from argoproxy.mcp.notices import Listener
    held = Supervisor([], str(tmp_path))
    sid = held.sessions.act({"action": "new", "owner": "alice", "version": "v"})["id"]
    listener = held.listener({"session": sid, "owner": "alice", "server": None})
    assert isinstance(listener, Listener)
    held.sessions.records[sid]["used"] -= module.SESSION_IDLE + 1
    held.sessions.act({"action": "new", "owner": "bob", "version": "v"})
    assert listener.queue.get(timeout=1) is None and listener.ended == "The session ended."


def test_a_narrowed_keys_log_level_at_mcp_sets_only_the_servers_it_reaches(tmp_path, monkeypatch):
    """logging/setLevel at /mcp carries the servers the key reaches ("heard", listening.py): only they are told,
    now and when another session's level is set later; without it (a key without globs), every server."""
    held = Supervisor([fake("git"), fake("docs"), McpServer("mine", sys.executable, (FAKE,), per_session=True)],
                      str(tmp_path))
    told, per_session = [], []
    monkeypatch.setattr(held, "_tell", lambda server, method, params: told.append((server, params["level"])))
    monkeypatch.setattr(held.servers["mine"], "set_level", lambda session, level: per_session.append(session))
    assert held.answer({"op": "level", "session": "narrow", "server": None, "level": "debug", "heard": ["git"]}) == {}
    assert told == [("git", "debug")] and per_session == []
    assert held.answer({"op": "level", "session": "wide", "server": None, "level": "error"}) == {}
    assert told[1:] == [("docs", "error")] and per_session == ["wide"]  # docs: never the narrowed session's debug
