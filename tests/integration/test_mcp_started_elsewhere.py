"""The MCP supervisor starts whatever the working directory and PYTHONPATH: `python /srv/cot_proxy/cot_proxy.py` run
from another directory (a service unit's WorkingDirectory, a user's home) has argoproxy on sys.path only through
its script, and the supervisor, a `python -m argoproxy.mcp.supervisor` child of the master, found no argoproxy
(every /mcp request answered 503)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ, free_port, wait_until_serving

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_server.py")
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def post(port: int, message: dict, session: str | None = None) -> tuple[dict, str | None]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               **({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"} if session else {})}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", json.dumps(message).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read()), answer.headers.get("Mcp-Session-Id")


def test_python_cot_proxy_py_from_another_directory_serves_its_mcp_servers(module_fake, tmp_path):
    port = free_port()
    env = clean_environ(names={"PYTHONPATH", "VIRTUAL_ENV"})
    env.update(HOME=str(tmp_path), HOST="127.0.0.1", PORT=str(port), WORKERS="1", PYTHONUNBUFFERED="1",
               TARGET_BASE_URL=module_fake.base_url,
               MCP_SERVERS=json.dumps({"fake": {"command": sys.executable, "args": [FAKE]}}))
    log = tmp_path / "proxy.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until_serving(port, proc)
        assert poll(lambda: "mcp server fake: ready" in log.read_text(), timeout=30), log.read_text()[-2000:]
        _, session = post(port, INIT)
        listed, _ = post(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
        assert any(tool["name"].startswith("fake__") for tool in listed["result"]["tools"]), listed
        assert "No module named 'argoproxy'" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)
