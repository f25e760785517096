"""Real MCP servers from the registries behind the proxy's /mcp, with the official Python SDK as the client:
`mcp-server-time` and `mcp-server-git` (PyPI) and `@modelcontextprotocol/server-everything` (npm), installed
into the cache by tools/build_mcp_servers.sh; without them these tests skip and name the script."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.proxy_process import ROOT, running_proxy

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
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=json.dumps(servers)) as p:
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
