"""The official MCP TypeScript SDK (`@modelcontextprotocol/sdk`, tests/mcp_ts_client.mjs) as the client of /mcp in
front of real servers from npm, `@modelcontextprotocol/server-everything` and `@modelcontextprotocol/server-filesystem`
serving a temporary directory: it lists the tools (each prefixed with its server's name) and calls one, with two
workers, and with two replicas sharing Redis (the session opened on one is used and ended on the other). All are
installed into the cache by tools/build_mcp_servers.sh; without them these tests skip and name the script."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_mcp_servers import installed
from tests.proxy_process import ROOT, running_proxy
from tests.redis_server import RedisServer

CLIENT = ROOT / "tests" / "mcp_ts_client.mjs"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """server-everything and server-filesystem as stdio servers (MCP_SERVERS), and the directory served."""
    served = tmp_path_factory.mktemp("served")
    (served / "notes.txt").write_text("read through the proxy\n")
    config = {"every": {"command": str(installed("mcp-server-everything")), "args": ["stdio"]},
              "files": {"command": str(installed("mcp-server-filesystem")), "args": [str(served)]}}
    return json.dumps(config), served


def ts_sdk(list_url: str, call_url: str, tool: str, arguments: dict) -> dict:
    """The TypeScript SDK's client: tools listed at list_url, then `tool` called in the same session at call_url."""
    sdk = installed("mcp-sdk").parent.parent / "lib" / "node_modules" / "@modelcontextprotocol" / "sdk"
    done = subprocess.run([str(installed("node")), str(CLIENT), str(sdk), list_url, call_url, tool,
                           json.dumps(arguments)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_typescript_sdk_lists_and_calls_real_servers_tools_with_two_workers(servers):
    config, served = servers
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, WORKERS="2", MCP_SERVERS=config,
                                                  MCP_TOOL_SEARCH="off") as proxy:
        seen = ts_sdk(proxy.url + "/mcp", proxy.url + "/mcp", "files__read_text_file",
                      {"path": str(served / "notes.txt")})
    assert {"every__echo", "every__get-sum", "files__read_text_file", "files__list_directory"} <= set(seen["tools"])
    assert all(name.startswith(("every__", "files__")) for name in seen["tools"])
    assert seen["result"]["content"][0]["text"] == "read through the proxy\n" and not seen["result"].get("isError")


def test_a_session_opened_on_one_replica_is_used_on_the_other(servers):
    config, _ = servers
    redis = RedisServer().start()
    settings = {"REDIS_URL": redis.url, "MCP_SERVERS": config, "MCP_TOOL_SEARCH": "off"}  # the catalog as listed
    try:
        with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as one, \
                running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as two:
            seen = ts_sdk(one.url + "/mcp", two.url + "/mcp", "every__get-sum", {"a": 2, "b": 3})
    finally:
        redis.close()
    assert {"every__get-sum", "files__read_text_file"} <= set(seen["tools"])
    assert seen["result"]["content"][0]["text"] == "The sum of 2 and 3 is 5." and not seen["result"].get("isError")
