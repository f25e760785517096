"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode) against the reference
server `@modelcontextprotocol/server-everything` directly and behind the proxy at /mcp/<server>: the proxy passes
every scenario the server passes alone. The server runs once, in its Streamable HTTP mode, and the proxy reaches
that same process as a remote server, so the two runs differ by the proxy alone (the suite speaks HTTP, and the
server's stdio mode is another transport of its own). The suite needs Node.js 22+, which the pinned `node` package
provides. All are installed into the cache by tools/build_mcp_servers.sh; without them this test skips and names
the script."""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_mcp_servers import installed, listening
from tests.polling import poll
from tests.proxy_process import free_port, running_proxy


@pytest.fixture(scope="module")
def everything():
    """server-everything over Streamable HTTP on a free loopback port: its /mcp URL."""
    port = free_port()
    server = subprocess.Popen([str(installed("mcp-server-everything")), "streamableHttp"],
                              env={**os.environ, "PORT": str(port)}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert poll(lambda: listening(port), timeout=30), f"server-everything did not listen on {port}"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(10)


def conformance(url: str, out: Path) -> dict[str, set[str]]:
    """Every scenario of the suite's active set against url: scenario -> its failed checks ("id: message"), none
    when it passed. As the suite counts: a check that failed or warned fails its scenario; an INFO check, such as
    JSON answers where SSE streams are optional, does not."""
    suite = installed("conformance")
    node = installed("node").parent
    done = subprocess.run([str(suite), "server", "--url", url, "--output-dir", str(out)], cwd=out.parent,
                          env={**os.environ, "PATH": f"{node}{os.pathsep}{os.environ['PATH']}"},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    results: dict[str, set[str]] = {}
    for checks in out.glob("server-*/checks.json"):
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT[\d-]+Z$", "", checks.parent.name.removeprefix("server-"))  # less its time
        results[scenario] = {f"{c['id']}: {c.get('errorMessage', '')}" for c in json.loads(checks.read_text())
                             if c["status"] in ("FAILURE", "WARNING")}
    assert results, f"the suite ran no scenario (exit {done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return results


def test_the_proxy_passes_every_scenario_the_reference_server_passes(everything, module_fake, tmp_path):
    servers = {"every": {"url": everything}}
    with ThreadPoolExecutor(1) as aside:
        alone = aside.submit(conformance, everything, tmp_path / "direct")  # while the proxy starts
        with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=json.dumps(servers)) as proxy:
            proxied = conformance(proxy.url + "/mcp/every", tmp_path / "proxied")
        direct = alone.result()
    print("\n".join(f"{name:32} {'fail' if direct[name] else 'pass':5} {'fail' if proxied.get(name) else 'pass'}"
                    for name in sorted(direct)))
    assert set(proxied) == set(direct) and not all(direct.values())
    assert {name for name, failed in proxied.items() if not failed} >= {name for name, failed in direct.items()
                                                                        if not failed}
    # and what fails through the proxy fails alone, the same way: the reference server lacks what the check asks for
    assert all(proxied[name] <= direct[name] for name in direct), {n: proxied[n] - direct[n] for n in direct}
