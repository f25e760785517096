"""The launcher's side of the MCP gateway against the running app (Gunicorn) in front of the strict fake stdio
server (tests/fakes/fake_mcp_server.py): `cot-proxy mcp list` (here `python cot_proxy.py mcp list`) shows each
server's state and its tools under their prefixed names (a team key: only those its globs allow), and says in
one line when no proxy listens or the proxy serves no MCP servers; `cot-proxy run`'s question (does this proxy
serve /mcp itself, for this key?) is yes only for a proxy with MCP servers, whatever a forwarded /mcp answers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from argoproxy.config.listener import generate_key
from argoproxy.launch.mcp_gateway import serves_mcp
from argoproxy.mcp.names import prefixed
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.fakes.fake_mcp_server import LONG_TOOL
from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ, free_port, running_proxy

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_server.py")
SERVERS = json.dumps({"fake": {"command": sys.executable, "args": [FAKE]},
                      "other": {"command": sys.executable, "args": [FAKE]},
                      "broken": {"command": "/nonexistent/mcp-server-of-the-test"}})
ADMIN = "sk-admin-of-the-mcp-launcher-test-0123456789"


@pytest.fixture(scope="module")
def keys_db(tmp_path_factory):
    return str(tmp_path_factory.mktemp("mcp-launcher") / "keys.db")


@pytest.fixture(scope="module")
def gateway(module_fake, keys_db):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, MCP_SERVERS=SERVERS, ENABLE_AUTH="true",
                       API_KEY_SECRET=ADMIN, KEYS_DB=keys_db) as p:
        yield p


def mcp_list(port: int, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`cot-proxy mcp list` as a user runs it in an untrusted directory, with the proxy's settings in the shell."""
    home.mkdir(exist_ok=True)
    environ = {**clean_environ(), "HOME": str(home), "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1",
               "PORT": str(port), **env}
    return subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "mcp", "list"], cwd=home, env=environ,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def listed_when_ready(gateway, home, *, restarted=False, **env):
    """The listing once every server has been seen by the supervisor (the fakes running, the broken one failed;
    `restarted`: and started again, which comes a backoff after its first failure)."""
    def ready():
        done = mcp_list(gateway.port, home, **env)
        out = done.stdout
        seen = "fake: running" in out and "other: running" in out and "could not start" in out
        return done if seen and (not restarted or "restarted" in out) else None
    return poll(ready, timeout=30, interval=0.2)


def test_mcp_list_shows_each_servers_state_and_its_tools(gateway, tmp_path):
    done = listed_when_ready(gateway, tmp_path / "home", restarted=True, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN)
    lines = done.stdout.splitlines()
    assert lines[0] == f"MCP servers at {gateway.url}/mcp:", done.stdout
    fake = lines.index(next(line for line in lines if line.startswith("fake: running")))
    tools = [line.strip() for line in lines[fake + 1:] if line.startswith("  ")]
    assert {"  fake__echo", "  fake__add", "  other__whoami"} <= set(lines), done.stdout
    assert prefixed("fake", LONG_TOOL) in tools and len(prefixed("fake", LONG_TOOL)) == 64
    broken = next(line for line in lines if line.startswith("broken: "))
    assert broken.startswith("broken: restarting (could not start") or broken.startswith("broken: starting"), broken
    assert broken.endswith("0 tools") and "restarted" in done.stdout, done.stdout
    assert ADMIN not in done.stdout + done.stderr


def rpc(gateway, key: str, method: str, session: str | None = None, id: int = 2) -> requests.Response:
    """One 2025-11-25 request at /mcp, with a client timeout far below a call's deadline (TIMEOUT, 600 s here):
    an answer that waited on the server that never started times out here."""
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}} \
        if method == "initialize" else {}
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
               **({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"} if session else {})}
    answer = requests.post(gateway.url + "/mcp", json={"jsonrpc": "2.0", "id": id, "method": method, "params": params},
                           headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer


def test_a_listing_answers_at_once_with_the_servers_that_run_beside_one_that_never_started(gateway, keys_db):
    """`broken`'s command does not exist: its calls end at once, so /mcp's listings (which ask every server) answer
    with the others' entries, and a key narrowed by globs naming it is not held by the reach check either."""
    session = rpc(gateway, ADMIN, "initialize", id=1).headers["Mcp-Session-Id"]
    tools = {t["name"] for t in rpc(gateway, ADMIN, "tools/list", session).json()["result"]["tools"]}
    assert {"fake__echo", "other__whoami"} <= tools and not [t for t in tools if t.startswith("broken__")], tools
    key = generate_key()
    SQLiteKeyStore(keys_db).create(KeyRecord("mcp-reach-broken", digest(key), key[:12], tools=("broken__*", "fake__*"),
                                             created=time.time()))
    session = rpc(gateway, key, "initialize", id=1).headers["Mcp-Session-Id"]
    prompts = rpc(gateway, key, "prompts/list", session).json()["result"]["prompts"]
    assert [p["name"] for p in prompts] == ["fake__greet"], prompts


def test_a_team_key_sees_only_the_tools_and_servers_its_globs_reach(gateway, keys_db, tmp_path):
    key = generate_key()
    SQLiteKeyStore(keys_db).create(KeyRecord("mcp-lister", digest(key), key[:12], tools=("fake__e*",),
                                             created=time.time()))

    def ready():
        done = mcp_list(gateway.port, tmp_path / "home", ENABLE_AUTH="true", COT_PROXY_KEY=key)
        return done if "fake: running" in done.stdout else None
    done = poll(ready, timeout=30, interval=0.2)
    tools = [line.strip() for line in done.stdout.splitlines() if line.startswith("  ")]
    assert tools == ["fake__echo"], done.stdout
    assert "other" not in done.stdout and "broken" not in done.stdout  # servers whose tools it may not call: unseen


def test_mcp_list_says_in_one_line_when_the_proxy_serves_no_mcp(proxy, tmp_path):
    done = mcp_list(proxy.port, tmp_path / "home")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"cot_proxy.py mcp: the proxy at {proxy.url} serves no MCP servers: name them "
                                   "under mcp_servers in its config (docs/mcp.md)"), done.stderr
    assert done.stdout == ""


def test_mcp_list_says_in_one_line_when_no_proxy_listens(tmp_path):
    port = free_port()
    done = mcp_list(port, tmp_path / "home")
    assert done.returncode == 2
    assert done.stderr.startswith(f"cot_proxy.py mcp: no proxy listens on http://127.0.0.1:{port}: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_mcp_list_with_a_key_the_proxy_refuses(gateway, tmp_path):
    done = mcp_list(gateway.port, tmp_path / "home", ENABLE_AUTH="true", COT_PROXY_KEY="sk-not-a-key-of-this-proxy")
    assert done.returncode == 2
    assert "refused the key: set COT_PROXY_KEY" in done.stderr
    assert "sk-not-a-key" not in done.stderr


def test_run_wires_mcp_only_to_a_proxy_that_serves_it(gateway, proxy):
    assert serves_mcp(gateway.url, ADMIN)
    assert not serves_mcp(gateway.url, "sk-not-a-key-of-this-proxy")  # refused: no key the agent could use
    assert not serves_mcp(proxy.url, "sk-anything")  # no mcp_servers: /mcp goes to the upstream


def test_the_proxys_own_method_is_not_a_servers_tool(gateway):
    """`cot_proxy/servers` answers at /mcp only: at /mcp/<server> it goes to the server (which knows no such
    method)."""
    from argoproxy.launch.mcp_gateway import McpSession, NotServed
    with McpSession(gateway.url + "/mcp/fake", ADMIN, "fake") as session:
        with pytest.raises(NotServed):
            session.ask("cot_proxy/servers")
