"""Each MCP tool call's limits and money, through the running app (Gunicorn, two workers, auth on, the SQLite key
store) in front of the strict fake stdio server (tests/fakes/fake_mcp_server.py): a team key's `--tool-rpm` holds
across both workers and apart from its model requests' rpm, its team's `--tool-parallel` caps its calls at once, a
server's `timeout` ends a call with -32003 and the server is told it is cancelled, an answer over its
`max_result_bytes` is an error (never cut JSON), a priced server's calls spend the key's dollar budget (the one its
model calls spend) and are refused once it is spent, and every call is a line of its own in the client journal."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tests.integration.test_mcp_gateway import FAKE, INIT, JSON_HEADERS
from tests.integration.test_team_keys import ROOT, create, keys
from tests.polling import poll
from tests.proxy_process import clean_environ, running_proxy

pytestmark = pytest.mark.timeout(120)

ADMIN = "admin-key-for-mcp-limit-tests"
SERVERS = json.dumps({"fake": {"command": sys.executable, "args": [FAKE], "timeout": 1, "max_result_bytes": 2000},
                      "paid": {"command": sys.executable, "args": [FAKE], "price_per_call": 0.25},
                      "plain": {"command": sys.executable, "args": [FAKE]},
                      "cent": {"command": sys.executable, "args": [FAKE], "price_per_call": 0.01}})
MSG = [{"role": "user", "content": "hi"}]
LIMITED, TOO_LARGE, TIMED_OUT = -32029, -32004, -32003


@pytest.fixture(scope="module")
def limited(module_fake, tmp_path_factory):
    home = tmp_path_factory.mktemp("mcp_limits")
    db, log_dir = home / "keys.db", home / "logs"
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=SERVERS, LOG_DIR=str(log_dir)) as proxy:
        yield proxy, db, log_dir


def opened(proxy, key):
    """A session of `key`'s, and a way to call a tool in it (a new connection each: both workers serve them)."""
    r = requests.post(proxy.url + "/mcp", json=INIT, headers={**JSON_HEADERS, **bearer(key)}, timeout=10)
    assert r.status_code == 200, r.text
    sid = r.headers["Mcp-Session-Id"]
    ids = iter(range(2, 10_000))

    def call(name, arguments=None, timeout=20):
        body = {"jsonrpc": "2.0", "id": next(ids), "method": "tools/call",
                "params": {"name": name, "arguments": arguments or {}}}
        r = requests.post(proxy.url + "/mcp", json=body, timeout=timeout,
                          headers={**JSON_HEADERS, **bearer(key), "Mcp-Session-Id": sid, "Connection": "close"})
        assert r.status_code == 200, r.text
        return r.json()
    return call


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def chat(proxy, key):
    return requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG,
                                                                     "max_tokens": 5},
                         headers={**bearer(key), "Connection": "close"}, timeout=20)


def code(answer):
    return answer.get("error", {}).get("code")


def burst(proxies, key: str, count: int = 50) -> list[dict]:
    """`count` calls of the $0.01 server at once (a thread each, spread over `proxies`), each held 0.5 s by the
    server so that they overlap: their answers."""
    calls = [opened(proxy, key) for proxy in proxies]
    start = threading.Barrier(count)
    answers: list[dict] = [{} for _ in range(count)]

    def one(i: int) -> None:
        start.wait(timeout=30)
        answers[i] = calls[i % len(calls)]("cent__held", {"group": key[-12:], "seconds": 0.5}, timeout=60)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return answers


def held_to_the_budget(answers: list[dict]) -> None:
    """50 calls of $0.01 on a $0.10 budget: 10 ran, each answered; the rest were refused before reaching the server,
    as over the budget (its calls in flight hold it), not as errors."""
    ran = [a for a in answers if code(a) is None]
    refused = [a for a in answers if code(a) == LIMITED and a["error"]["data"]["limit"] == "budget_usd"]
    assert len(ran) == 10 and len(refused) == 40, [code(a) for a in answers]
    assert max(json.loads(a["result"]["content"][0]["text"])["most_at_once"] for a in ran) <= 10


def journal_lines(log_dir: Path, key: str) -> list[dict]:
    path = log_dir / "client_interaction.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line.get("kind") == "tool_call" and line.get("key") == key]


def journaled(log_dir: Path, key: str, count: int) -> list[dict]:
    """The key's tool call lines once there are `count` (each worker writes its own as its calls end)."""
    return poll(lambda: lines if len(lines := journal_lines(log_dir, key)) == count else None)


def test_tool_rpm_holds_across_both_workers_apart_from_the_model_rpm(limited):
    proxy, db, log_dir = limited
    key = create(db, "rpm-bot", "--tool-rpm", "3", "--rpm", "2")
    call = opened(proxy, key)
    answers = [call("fake__echo", {"text": "hi"}) for _ in range(12)]
    assert [code(a) for a in answers] == [None] * 3 + [LIMITED] * 9, answers
    refused = answers[-1]["error"]
    assert refused["data"]["limit"] == "tool_rpm" and 1 <= refused["data"]["retryAfter"] <= 60
    assert "3 tool calls per minute" in refused["message"]
    assert [chat(proxy, key).status_code for _ in range(3)] == [200, 200, 429]  # its own rpm, untouched by tools
    # the refused calls ended here: their journal lines name no server
    lines = journaled(log_dir, "rpm-bot", 12)
    assert lines and [line["server"] for line in lines].count("none") == 9


def test_a_teams_tool_parallel_caps_its_keys_calls_at_once(limited):
    proxy, db, _ = limited
    made = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "teams", "--keys-db", str(db), "create", "lab",
                           "--tool-parallel", "1"], env=clean_environ(), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    first, second = create(db, "lab-a", "--team", "lab"), create(db, "lab-b", "--team", "lab")
    slow_call, call = opened(proxy, first), opened(proxy, second)
    slow: dict = {}
    runner = threading.Thread(target=lambda: slow.update(slow_call("plain__slow", {"seconds": 2.5})))
    runner.start()
    assert poll(lambda: "fake_mcp_server: slow call for 2.5 s" in proxy.read_log())  # it runs: admitted
    refused = call("plain__echo", {"text": "x"})
    runner.join()
    assert code(refused) == LIMITED and refused["error"]["data"]["limit"] == "tool_parallel", refused
    assert "team" in refused["error"]["message"] and "1 tool calls in flight" in refused["error"]["message"]
    assert code(slow) is None and slow["result"]["content"][0]["text"] == "slept"
    assert code(call("plain__echo", {"text": "x"})) is None  # the slow one ended: room again


def test_a_servers_deadline_ends_the_call_and_cancels_it_on_the_server(limited):
    proxy, db, _ = limited
    call = opened(proxy, ADMIN)
    answer = call("fake__slow", {"seconds": 30})
    assert code(answer) == TIMED_OUT and "1 s" in answer["error"]["message"]
    assert poll(lambda: re.search(r"mcp server fake: fake_mcp_server: cancelled \d+", proxy.read_log()), timeout=10)
    assert code(call("plain__slow", {"seconds": 1.5})) is None  # another server's calls keep the proxy's TIMEOUT


def test_an_answer_over_the_bound_is_an_error_never_cut_json(limited):
    proxy, _, _ = limited
    call = opened(proxy, ADMIN)
    small = call("fake__echo", {"text": "x" * 100})
    assert small["result"]["content"][0]["text"] == "x" * 100
    large = call("fake__echo", {"text": "x" * 3000})
    assert code(large) == TOO_LARGE and "result" not in large
    assert large["error"]["data"]["maxResultBytes"] == 2000 and large["error"]["data"]["bytes"] > 3000
    assert "max_result_bytes" in large["error"]["message"]
    assert call("plain__echo", {"text": "x" * 3000})["result"]["content"][0]["text"] == "x" * 3000  # its default


def test_priced_calls_spend_the_keys_dollar_budget_with_its_model_calls(limited):
    proxy, db, log_dir = limited
    key = create(db, "payer", "--budget-usd", "0.50/day")
    call = opened(proxy, key)
    assert [code(call("paid__echo", {"text": "a"})) for _ in range(2)] == [None, None]
    refused = call("paid__echo", {"text": "a"})
    assert code(refused) == LIMITED and refused["error"]["data"]["limit"] == "budget_usd"
    assert "$0.50/day" in refused["error"]["message"]
    assert code(call("plain__echo", {"text": "free"})) is None  # an unpriced server's calls cost nothing
    assert chat(proxy, key).status_code == 429  # the same budget: spent by its tool calls

    def cost_row():
        rows = list(csv.reader(keys(db, "usage", "--tools", "--csv").stdout.splitlines()))
        return next((row for row in rows if row[:3] == ["payer", "paid", "paid__echo"] and row[4] == "2"), None)
    row = poll(cost_row)
    assert row is not None and row[-1] == "0.50"
    lines = journaled(log_dir, "payer", 4)
    assert [(line["server"], line["outcome"], line["cost_usd"]) for line in lines] == \
        [("paid", "ok", 0.25), ("paid", "ok", 0.25), ("none", "error", 0.0), ("plain", "ok", 0.0)]


def test_parallel_priced_calls_cannot_pass_the_budget_together(limited):
    proxy, db, _ = limited
    key = create(db, "burst", "--budget-usd", "0.10/day")
    held_to_the_budget(burst([proxy], key))

    def spent():  # its rows of the priced server (a worker's first calls may be labelled `other`): 10 calls
        rows = [row for row in csv.reader(keys(db, "usage", "--tools", "--csv").stdout.splitlines())
                if row[:2] == ["burst", "cent"]]
        return sum(Decimal(row[-1]) for row in rows) if sum(int(row[4]) for row in rows) == 10 else None
    assert poll(spent) == Decimal("0.10")  # each answered call's price, and no more


def test_each_tool_call_is_a_journal_line_without_its_arguments(limited):
    proxy, db, log_dir = limited
    key = create(db, "journaled")
    call = opened(proxy, key)
    call("fake__echo", {"text": "secret-argument-text"})
    call("fake__fails")
    lines = journaled(log_dir, "journaled", 2)
    assert lines, "no journal line per tool call"
    echo, fails = lines
    assert {k: echo[k] for k in ("server", "tool", "outcome", "error_code", "cost_usd", "status")} == \
        {"server": "fake", "tool": "fake__echo", "outcome": "ok", "error_code": None, "cost_usd": 0.0, "status": 200}
    assert echo["bytes_in"] > 0 and echo["bytes_out"] > 0 and echo["latency_ms"] > 0 and echo["request_id"]
    assert echo["input"] is None and echo["output"] is None
    assert fails["outcome"] == "tool_error"
    assert "secret-argument-text" not in (log_dir / "client_interaction.jsonl").read_text()


def test_the_journal_keeps_arguments_only_when_a_setting_opts_in(module_fake, tmp_path):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, MCP_SERVERS=SERVERS, LOG_DIR=str(tmp_path),
                       JOURNAL_TOOL_ARGUMENTS="true") as proxy:
        opened(proxy, "none")("fake__echo", {"text": "kept-argument"})
        lines = poll(lambda: journal_lines(tmp_path, None))
    assert lines and lines[0]["input"] == {"text": "kept-argument"} and lines[0]["output"] is None



def test_two_replicas_sharing_redis_hold_one_tool_window_and_one_budget(module_fake):
    from tests.integration.test_shared_redis import create as create_in_redis
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    try:
        settings = dict(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                        REDIS_URL=server.url, MCP_SERVERS=SERVERS)
        with running_proxy(**settings) as first, running_proxy(**settings) as second:
            key = create_in_redis(server.url, "shared", "--tool-rpm", "4")
            calls = [opened(first, key), opened(second, key)]
            answers = [calls[i % 2]("plain__echo", {"text": "x"}) for i in range(8)]
            assert [code(a) for a in answers] == [None] * 4 + [LIMITED] * 4, answers
            payer = create_in_redis(server.url, "shared-payer", "--budget-usd", "0.30/day")
            paid = [opened(first, payer), opened(second, payer)]
            assert code(paid[0]("paid__echo", {"text": "a"})) is None  # $0.25 of $0.30
            refused = paid[1]("paid__echo", {"text": "a"})  # the other replica sees it spent
            assert code(refused) == LIMITED and refused["error"]["data"]["limit"] == "budget_usd"
            held_to_the_budget(burst([first, second], create_in_redis(server.url, "burst", "--budget-usd", "0.10/day")))
    finally:
        server.close()
