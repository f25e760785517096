"""A team's MCP tool calls are its usage rows too (issue 58, item 3): `teams usage NAME --tools` shows every call its
keys made while in it, by server, tool and day, and `keys usage --tools` keeps one row per key (no team's row in it),
through the running app in front of the strict fake stdio server, on SQLite and on Redis."""

from __future__ import annotations

import csv
import io

import pytest

from tests.integration.test_mcp_gateway import SERVERS
from tests.integration.test_mcp_recording import key_calls
from tests.integration.test_reservations import Store
from tests.integration.test_teams import keys, store, teams  # noqa: F401 - store: the fixture (SQLite, Redis)
from tests.polling import poll
from tests.proxy_process import running_proxy

pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
pytestmark = pytest.mark.timeout(120)

ADMIN = "admin-key"


def rows(done) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(done.stdout)))


def test_a_teams_tool_calls_are_its_usage_rows(store: Store, module_fake):
    teams(store, "create", "ops")
    bot = store.create("bot", "--team", "ops", "--tools", "fake__*")
    alone = store.create("alone", "--tools", "fake__*")
    where = {"REDIS_URL": store.redis.url} if store.redis else {"KEYS_DB": str(store.db)}
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       MCP_SERVERS=SERVERS, **where) as proxy:
        key_calls(proxy, bot)
        key_calls(proxy, alone)

        def team_rows() -> list[dict[str, str]] | None:  # each worker writes its rows every half second
            found = rows(teams(store, "usage", "ops", "--tools", "--csv"))
            return found if sum(int(r["calls"]) for r in found) == 5 else None

        found = poll(team_rows, timeout=20) or rows(teams(store, "usage", "ops", "--tools", "--csv"))
    assert {r["team"] for r in found} == {"ops"}, found
    by_tool = {(r["server"], r["tool"]): r for r in found}
    assert sorted(by_tool) == [("fake", "fake__add"), ("fake", "fake__fails"), ("fake", "other"), ("none", "other")]
    assert [by_tool[t]["calls"] for t in sorted(by_tool)] == ["2", "1", "1", "1"]
    assert by_tool[("fake", "fake__fails")]["errors"] == "1"
    assert int(by_tool[("fake", "fake__add")]["bytes_in"]) > 100
    key_rows = rows(keys(store, "usage", "--tools", "--csv"))
    assert {r["key"] for r in key_rows} == {"bot", "alone"}, key_rows  # no team's row among the keys'
    assert sum(int(r["calls"]) for r in key_rows) == 10
    model_rows = rows(teams(store, "usage", "ops", "--csv"))  # the model rows' view: no tool call in it
    assert model_rows == []
