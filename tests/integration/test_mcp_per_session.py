"""A stdio server marked `per_session: true` (argoproxy/mcp/per_session.py) through the running app (Gunicorn, two
workers, auth on, team keys): a process per client session, started at its first call and stopped when the
session ends or its key is revoked; bounded per server and per key, a session past a bound answered with an MCP error naming the
server and the setting; one key's session never reaching another key's process; a 2026-07-28 caller's calls in
one process of its key's; the count in `cot_proxy/servers`. The strict fake's `whoami` tells its pid."""

from __future__ import annotations

import json
import sys

import psutil
import pytest

from tests.integration.test_mcp_gateway import FAKE, INIT, send
from tests.integration.test_mcp_keys import bearer, sdk
from tests.integration.test_mcp_stateless import post as stateless_post
from tests.integration.test_team_keys import create, keys
from tests.polling import poll
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")

ADMIN = "admin-key-for-per-session-tests"
SERVERS = json.dumps({"mine": {"command": sys.executable, "args": [FAKE], "per_session": True},
                      "shared": {"command": sys.executable, "args": [FAKE]}})
VERSION = {"MCP-Protocol-Version": "2025-11-25"}


@pytest.fixture(scope="module")
def proxy(module_fake, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp_per_session") / "keys.db"
    alice, bob, carol = create(db, "alice"), create(db, "bob"), create(db, "carol")
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=SERVERS, MCP_SESSION_PROCESSES="3",
                       MCP_SESSION_PROCESSES_PER_KEY="2") as p:
        p.keys_db, p.carol = db, carol  # a key to revoke
        yield p, alice, bob


def opened(p, key) -> str:
    status, headers, body = send(p, "POST", "/mcp", INIT, bearer(key))
    assert status == 200, body
    return headers["Mcp-Session-Id"]


def call(p, key, session, tool="mine__whoami", path="/mcp"):
    body = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    return send(p, "POST", path, body, {**bearer(key), **VERSION, "Mcp-Session-Id": session})


def pid(answer) -> int:
    status, _, body = answer
    assert status == 200 and "result" in body, body
    return json.loads(body["result"]["content"][0]["text"])["pid"]


def ended(p, key, session) -> None:
    assert send(p, "DELETE", "/mcp", None, {**bearer(key), **VERSION, "Mcp-Session-Id": session})[0] == 204


def processes(p, key) -> int:
    status, _, body = send(p, "POST", "/mcp", {"jsonrpc": "2.0", "id": 9, "method": "cot_proxy/servers"},
                           {**bearer(key), **VERSION, "Mcp-Session-Id": opened(p, key)})
    mine = next(s for s in body["result"]["servers"] if s["name"] == "mine")
    shared = next(s for s in body["result"]["servers"] if s["name"] == "shared")
    assert "processes" not in shared
    return mine["processes"]


def test_each_sdk_session_gets_its_own_process_which_ends_with_the_session(proxy):
    p, alice, _ = proxy

    async def work(session):
        names = [t.name for t in (await session.list_tools()).tools]
        first = json.loads((await session.call_tool("mine__whoami", {})).content[0].text)["pid"]
        again = json.loads((await session.call_tool("mine__whoami", {})).content[0].text)["pid"]
        shared = json.loads((await session.call_tool("shared__whoami", {})).content[0].text)["pid"]
        return names, first, again, shared

    names, one, again, shared_one = sdk(p.url + "/mcp", alice, work)
    _, two, _, shared_two = sdk(p.url + "/mcp", alice, work)
    assert "mine__whoami" in names and one == again  # one session, one process, both workers
    assert one != two and shared_one == shared_two  # another session: another process; the shared server's is one
    # the SDK ended each session (DELETE) as it closed: their processes go
    assert poll(lambda: not psutil.pid_exists(one) and not psutil.pid_exists(two)), "a session's process outlived it"
    assert psutil.pid_exists(shared_one)


def test_the_status_counts_the_running_processes_and_delete_stops_one(proxy):
    p, alice, _ = proxy
    first = opened(p, alice)
    running = pid(call(p, alice, first))
    assert processes(p, ADMIN) == 1
    ended(p, alice, first)
    assert poll(lambda: not psutil.pid_exists(running))
    assert poll(lambda: processes(p, ADMIN) == 0)


def test_a_key_past_its_bound_and_a_server_past_its_own_get_an_mcp_error_naming_them(proxy):
    p, alice, bob = proxy
    held = [opened(p, alice) for _ in range(2)]
    pids = [pid(call(p, alice, s)) for s in held]
    third = opened(p, alice)
    status, _, body = call(p, alice, third)
    assert status == 200 and body["error"]["code"] == -32029, body
    assert "mine" in body["error"]["message"] and "MCP_SESSION_PROCESSES_PER_KEY" in body["error"]["message"]
    assert pid(call(p, alice, third, "shared__whoami")) > 0  # the shared server serves it as before
    bobs = [opened(p, bob) for _ in range(2)]
    pid(call(p, bob, bobs[0]))  # the server's third process
    status, _, body = call(p, bob, bobs[1])
    assert body["error"]["code"] == -32029 and "MCP_SESSION_PROCESSES" in body["error"]["message"], body
    ended(p, alice, held[0])  # room again
    assert poll(lambda: "result" in call(p, bob, bobs[1])[2])
    for key, session in ((alice, held[1]), (bob, bobs[0]), (bob, bobs[1])):
        ended(p, key, session)
    assert poll(lambda: not any(psutil.pid_exists(x) for x in pids))


def test_one_keys_session_never_reaches_another_keys_process(proxy):
    p, alice, bob = proxy
    hers = opened(p, alice)
    before = pid(call(p, alice, hers))
    tally = {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "mine__tally", "arguments": {}}}

    def whoamis() -> int:  # the calls of whoami her process has run
        body = send(p, "POST", "/mcp", tally, {**bearer(alice), **VERSION, "Mcp-Session-Id": hers})[2]
        return json.loads(body["result"]["content"][0]["text"])["whoami:"]

    assert whoamis() == 1
    assert call(p, bob, hers)[0] == 404 and call(p, bob, hers, path="/mcp/mine")[0] == 404
    assert whoamis() == 1  # nothing of his reached her process
    his = opened(p, bob)
    assert pid(call(p, bob, his)) != before
    for key, session in ((alice, hers), (bob, his)):
        ended(p, key, session)


def test_a_revoked_keys_processes_stop(proxy):
    p, alice, _ = proxy
    hers, theirs = opened(p, alice), opened(p, p.carol)
    kept, revoked = pid(call(p, alice, hers)), pid(call(p, p.carol, theirs))
    assert keys(p.keys_db, "revoke", "carol").returncode == 0
    assert poll(lambda: not psutil.pid_exists(revoked), timeout=15), "a revoked key's process ran on"
    assert psutil.pid_exists(kept) and pid(call(p, alice, hers)) == kept
    ended(p, alice, hers)


def test_a_stateless_callers_calls_go_to_one_process_of_its_keys(proxy):  # last: its processes stay (idle)
    p, alice, bob = proxy

    def whoami(key) -> int:
        r = stateless_post(p, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                               "params": {"name": "mine__whoami", "arguments": {}}}, key=key)
        assert r.status_code == 200, r.text
        return json.loads(r.json()["result"]["content"][0]["text"])["pid"]

    hers = whoami(alice)
    assert whoami(alice) == hers and whoami(bob) != hers


def test_the_processes_stop_with_the_proxy(module_fake):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, MCP_SERVERS=SERVERS) as p:
        running = [pid(call(p, "", opened(p, ""))) for _ in range(2)]
        assert running[0] != running[1]
    assert poll(lambda: not any(psutil.pid_exists(x) for x in running)), "a session's process outlived the proxy"
