"""Real MCP servers from the registries behind the proxy's /mcp, with the official Python SDK as the client:
`mcp-server-time` and `mcp-server-git` (PyPI) and `@modelcontextprotocol/server-everything` (npm), installed
into the cache by tools/build_mcp_servers.sh; without them these tests skip and name the script."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.polling import poll
from tests.proxy_process import ROOT, free_port, running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")

CACHE = Path(os.environ.get("COT_PROXY_CACHE", Path.home() / ".cache" / "cot_proxy")) / "mcp"
VERSIONS = {line.split()[0]: line.split()[2] for line in (ROOT / "mcp_servers.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}  # name -> version, the pins tools/build_mcp_servers.sh installs
HOW = "run tools/build_mcp_servers.sh once (installs the MCP servers into ~/.cache/cot_proxy/mcp)"


def installed(name: str) -> Path:
    top = CACHE / f"{name}-{VERSIONS[name]}"
    if not (top / ".complete").exists():
        pytest.skip(f"{name} {VERSIONS[name]} is not installed: {HOW}")
    return top / "bin" / name


@pytest.fixture(scope="module")
def real(module_fake, tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text("hello\n")
    servers = {"time": {"command": str(installed("mcp-server-time")), "args": ["--local-timezone", "UTC"]},
               "git": {"command": str(installed("mcp-server-git")), "args": ["--repository", str(repo)]},
               "every": {"command": str(installed("mcp-server-everything")), "args": ["stdio"]}}
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=json.dumps(servers),
                       MCP_TOOL_SEARCH="off") as p:  # their catalog as listed, not the tool search
        yield p, repo


def sdk(url, work):
    async def run():
        async with mcp.Client(url, mode="legacy", read_timeout_seconds=60) as client:
            return await work(client)
    return asyncio.run(run())


def test_the_registries_servers_tools_are_one_servers(real):
    proxy, repo = real

    async def work(client):
        names = [t.name for t in (await client.list_tools()).tools]
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        status = await client.call_tool("git__git_status", {"repo_path": str(repo)})
        echo = await client.call_tool("every__echo", {"message": "through the proxy"})
        return names, now, status, echo

    names, now, status, echo = sdk(proxy.url + "/mcp", work)
    assert {"time__get_current_time", "git__git_status", "every__echo"} <= set(names)
    assert not now.is_error and "UTC" in now.content[0].text
    assert not status.is_error and "README.md" in status.content[0].text
    assert "through the proxy" in echo.content[0].text


def test_a_real_server_alone_keeps_its_names(real):
    proxy, _ = real

    async def work(client):
        return [t.name for t in (await client.list_tools()).tools]

    assert "get_current_time" in sdk(proxy.url + "/mcp/time", work)


@pytest.fixture(scope="module")
def remote_every(module_fake):
    """`@modelcontextprotocol/server-everything` as remote servers: its Streamable HTTP mode, and its HTTP+SSE mode
    named by its URL alone (the proxy falls back to the older transport when initialize's POST is refused)."""
    command = str(installed("mcp-server-everything"))
    ports = {mode: free_port() for mode in ("streamableHttp", "sse")}
    servers = [subprocess.Popen([command, mode], env={**os.environ, "PORT": str(port)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL) for mode, port in ports.items()]
    try:
        for port in ports.values():
            assert poll(lambda: listening(port), timeout=30), f"server-everything did not listen on {port}"
        remotes = {"web": {"url": f"http://127.0.0.1:{ports['streamableHttp']}/mcp", "bearer_token_env": "WEB_TOKEN"},
                   "legacy": {"url": f"http://127.0.0.1:{ports['sse']}/sse"}}
        with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=json.dumps(remotes),
                           MCP_TOOL_SEARCH="off",
                           WEB_TOKEN="web-token-of-the-test-0123") as p:
            yield p
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_real_server_over_both_http_transports(remote_every):
    seen = []

    async def progress(done, total, message):
        seen.append(done)

    async def listed(client):
        names = [t.name for t in (await client.list_tools()).tools]
        return names if {"web__echo", "legacy__echo"} <= set(names) else None

    async def work(client):
        web = await client.call_tool("web__echo", {"message": "over streamable http"})
        legacy = await client.call_tool("legacy__echo", {"message": "over http+sse"})
        long = await client.call_tool("web__trigger-long-running-operation", {"duration": 0.3, "steps": 3},
                                      progress_callback=progress)
        return web.content[0].text, legacy.content[0].text, long.is_error

    assert poll(lambda: sdk(remote_every.url + "/mcp", listed), timeout=30, interval=0.2)
    web, legacy, failed = sdk(remote_every.url + "/mcp", work)
    assert "over streamable http" in web and "over http+sse" in legacy and not failed
    assert seen == [1, 2, 3]
