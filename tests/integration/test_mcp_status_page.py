"""The status page's MCP tool calls: per server (from /metrics, every worker's) and per team key today (from the
key store's usage rows), in its data and in a real browser (Debian's chromium, headless), through the running app
with the strict stdio fake behind /mcp."""

from __future__ import annotations

import requests

from tests.integration.test_mcp_recording import ADMIN, SERVERS, key_calls
from tests.integration.test_status_page import rendered
from tests.polling import poll
from tests.proxy_process import running_proxy


def test_the_status_page_shows_tool_calls_per_server_and_per_key(module_fake, tmp_path):
    from tests.integration.test_team_keys import create
    db = tmp_path / "keys.db"
    bot = create(db, "bot", "--tools", "fake__*")
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=SERVERS, WORKERS="2") as proxy:
        key_calls(proxy, bot)  # 5 calls: 2 answered, 1 the tool fails, 1 the server refuses, 1 outside the globs

        def tools() -> dict | None:
            data = requests.get(proxy.url + "/ui/data", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
            found = data.json()["tools"]
            return found if found["keys"] and found["keys"][0]["calls"] == 5 else None

        found = poll(tools, timeout=20)  # the workers write their usage rows every half second
        assert found, tools()
        servers = {row["server"]: row for row in found["servers"]}
        assert set(servers) == {"fake", "none"}
        assert (servers["fake"]["calls"], servers["fake"]["errors"]) == (4, 2)
        assert (servers["none"]["calls"], servers["none"]["errors"]) == (1, 1)
        assert servers["fake"]["mean_ms"] > 0 and servers["fake"]["bytes_in"] > 100
        key = found["keys"][0]
        assert (key["key"], key["errors"], sorted(key["servers"])) == ("bot", 3, ["fake", "none"])
        page = rendered(f"{proxy.url}/ui#key={ADMIN}")
        tables = page.split('id="tool-servers"')[1].split("</section>")[0]
        assert ">fake<" in tables and ">bot<" in tables and ">none<" in tables and bot not in page
