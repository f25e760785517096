"""Each tool call's bounds and price (mcp/limits.py, config/mcp_servers.py) and a team key's tool limits and money
(teamkeys/tool_calls.py) on the real SQLite key store: the refusals, what is charged and when, and what a restart
still knows of what tool calls spent."""

from __future__ import annotations

import json
import time

import pytest

from argoproxy.config.mcp_servers import parse_mcp_servers
from argoproxy.config.settings import SettingsError, load
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.journal_line import line_of
from argoproxy.mcp.limits import LIMITED, RESULT_TOO_LARGE, AdmittedCall, Limits
from argoproxy.mcp.recording import ToolCall
from argoproxy.teamkeys.records import KeyRecord, MoneyBudget, TeamRecord, digest
from argoproxy.teamkeys.service import TeamKeys
from argoproxy.teamkeys.store import SQLiteKeyStore

SERVERS = parse_mcp_servers({"paid": {"command": "x", "price_per_call": "0.25", "timeout": 2},
                             "tiny": {"command": "x", "max_result_bytes": 100}, "plain": {"command": "x"}})


@pytest.mark.parametrize("entry, line", [
    ({"timeout": 0}, "mcp_servers.git.timeout: expected seconds"),
    ({"timeout": "soon"}, "mcp_servers.git.timeout: expected seconds"),
    ({"max_result_bytes": 0}, "mcp_servers.git.max_result_bytes: expected a whole number"),
    ({"max_result_bytes": 17 * 1024 * 1024}, "mcp_servers.git.max_result_bytes: expected a whole number"),
    ({"price_per_call": -0.01}, "mcp_servers.git.price_per_call: expected US dollars"),
    ({"price_per_call": "free"}, "mcp_servers.git.price_per_call: expected US dollars"),
    ({"price_per_call": True}, "mcp_servers.git.price_per_call: expected US dollars"),
])
def test_a_bad_bound_stops_start_up_with_one_line_naming_it(tmp_path, entry, line):
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_servers": {"git": {"command": "x", **entry}}}))
    with pytest.raises(SettingsError) as stopped:
        load({"config_path": str(tmp_path / "config.yaml")}, {})
    assert line in str(stopped.value) and "\n" not in str(stopped.value).strip()


def test_bounds_default_to_the_proxys_timeout_and_4_mib():
    limits = Limits(SERVERS, 600.0)
    assert (limits.of("paid").timeout, limits.of("paid").price) == (2.0, 250_000_000)
    assert (limits.of("plain").timeout, limits.of("plain").max_result_bytes, limits.of("plain").price) == \
        (600.0, 4 * 1024 * 1024, 0)
    assert SERVERS.as_written()["paid"] == {"command": "x", "timeout": 2.0, "price_per_call": 0.25}


def test_an_answer_over_the_bound_is_replaced_whole():
    limits = Limits(SERVERS, 600.0)
    small = jsonrpc.result(7, {"content": [{"type": "text", "text": "ok"}]})
    assert limits.bounded("tiny", small)[0] is small
    large = jsonrpc.result(7, {"content": [{"type": "text", "text": "x" * 200}]})
    answer, body = limits.bounded("tiny", large)
    assert answer["error"]["code"] == RESULT_TOO_LARGE and answer["id"] == 7 and "result" not in answer
    assert json.loads(body) == answer
    assert limits.bounded(None, large)[0] is large  # ended at the proxy: its own answer, as it is


@pytest.fixture
def keys(tmp_path):
    store = SQLiteKeyStore(tmp_path / "keys.db")
    return TeamKeys(store)


def key(store, name, **limits):
    record = KeyRecord(name, digest(name), name[:4], created=time.time(), **limits)
    store.create(record)
    return store.find(record.digest)


def test_a_priced_call_is_charged_when_its_server_answered_and_refused_once_spent(keys):
    limits = Limits(SERVERS, 600.0, keys)
    payer = key(keys.store, "payer", budget_usd=MoneyBudget(600_000_000, "day"))  # $0.60
    first = limits.admit(payer, "paid", 1)
    assert isinstance(first, AdmittedCall)
    assert limits.end(first, jsonrpc.error(1, jsonrpc.REQUEST_TIMEOUT, "late")) == 0  # never answered: free
    for id in (2, 3):
        held = limits.admit(payer, "paid", id)
        assert limits.end(held, jsonrpc.result(id, {"content": []})) == 250_000_000
    refused = limits.admit(payer, "paid", 4)
    assert isinstance(refused, dict) and refused["error"]["code"] == LIMITED and refused["id"] == 4
    assert refused["error"]["data"]["limit"] == "budget_usd" and refused["error"]["data"]["retryAfter"] >= 1
    assert limits.admit(payer, "plain", 5) is None  # unpriced, no tool limits: nothing to hold


def test_a_restart_still_knows_what_tool_calls_spent(keys, tmp_path):
    team = TeamRecord("lab", budget_usd=MoneyBudget(10**9, "day"))
    keys.store.create_team(team)
    member = key(keys.store, "member", team="lab")
    keys.store.record_tool_usage("member", "paid", "paid__x", time.time(), 1, 0, 5, 10, 10, 400_000_000)
    fresh = SQLiteKeyStore(tmp_path / "keys.db")  # another process: its usage rows only
    assert fresh.spent_in_period(member.windows, time.time()) == 400_000_000


def test_tool_limits_are_counted_apart_from_model_requests(keys):
    limits = Limits(SERVERS, 600.0, keys)
    bot = key(keys.store, "bot", rpm=1, tool_rpm=2, tool_parallel=1)
    held = limits.admit(bot, "plain", 1)
    busy = limits.admit(bot, "plain", 2)
    assert busy["error"]["data"]["limit"] == "tool_parallel"
    limits.end(held, jsonrpc.result(1, {}))
    limits.end(limits.admit(bot, "plain", 3), jsonrpc.result(3, {}))
    over = limits.admit(bot, "plain", 4)
    assert over["error"]["data"]["limit"] == "tool_rpm" and "2 tool calls per minute" in over["error"]["message"]
    assert keys.store.admit(bot, time.time()) == (0.0, "")  # its one model request a minute: still there


def test_the_journal_line_says_who_called_what_never_the_result():
    call = ToolCall("paid", "paid__x", "paid__x", 3, "bot", "ok", None, 0, 0.01, 10, 20, 250_000_000, {"q": 1})
    line = line_of(call)
    assert line == {"key": "bot", "server": "paid", "tool": "paid__x", "outcome": "ok", "error_code": None,
                    "bytes_in": 10, "bytes_out": 20, "cost_usd": 0.25}


def test_a_priced_calls_price_is_held_while_it_runs(keys):
    """Calls in flight together cannot pass the budget: each holds its price until it ends (then spent when its
    server answered, else given back), in the key's budget and its team's, and a model request sees them too."""
    limits = Limits(SERVERS, 600.0, keys)
    keys.store.create_team(TeamRecord("lab", budget_usd=MoneyBudget(10**9, "day")))
    payer = key(keys.store, "payer2", budget_usd=MoneyBudget(600_000_000, "day"), team="lab")  # $0.60 of the team's $1
    first, second = limits.admit(payer, "paid", 1), limits.admit(payer, "paid", 2)  # $0.50 held
    third = limits.admit(payer, "paid", 3)
    assert isinstance(first, AdmittedCall) and isinstance(second, AdmittedCall)
    assert third["error"]["data"] == {"limit": "budget_usd", "retryAfter": 1}  # it frees as they end
    other = key(keys.store, "other", team="lab")  # the team's budget holds them too: $0.50 of $1 left
    held = [limits.admit(other, "paid", id) for id in (4, 5)]
    over = limits.admit(other, "paid", 6)["error"]
    assert over["data"]["limit"] == "budget_usd" and "team 'lab'" in over["message"], over  # the team's, not its own
    assert limits.end(first, {}) == 0  # the client left: nothing spent, its hold given back
    assert limits.end(limits.admit(payer, "paid", 7), jsonrpc.result(7, {})) == 250_000_000
    assert limits.end(second, jsonrpc.error(2, -32602, "the server's own error")) == 250_000_000  # answered
    for id, each in zip((4, 5), held):
        limits.end(each, jsonrpc.error(id, jsonrpc.SERVER_UNAVAILABLE, "died"))  # never answered: free
    assert keys.store.spent(payer, time.time()) == 500_000_000
    assert keys.store.spent(payer.windows, time.time()) == 500_000_000
    assert limits.admit(payer, "paid", 8)["error"]["data"]["retryAfter"] > 1  # spent: until the day ends
