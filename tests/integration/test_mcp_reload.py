"""SIGHUP with changed `mcp_servers` in config.yaml: the new workers serve the new set (a new supervisor), the old
supervisor's servers stop; with the servers removed, /mcp is forwarded again and no server is left running.
Through the running app under Gunicorn, the strict stdio fake as the server."""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor
import sys
from pathlib import Path

import psutil
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.polling import poll
from tests.proxy_process import running_proxy

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_server.py")
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def servers_yaml(*names: str) -> str:
    entries = {name: {"command": sys.executable, "args": [FAKE]} for name in names}
    return "mcp_servers: " + json.dumps(entries) + "\n" if names else "think_mode: keep\n"


def tool_names(proxy) -> set[str] | None:
    """The tools /mcp lists on a new session; None when /mcp is not the proxy's (forwarded: the fake's 404)."""
    opened = requests.post(proxy.url + "/mcp", json=INIT, headers=HEADERS, timeout=10)
    sid = opened.headers.get("Mcp-Session-Id")
    if opened.status_code != 200 or sid is None:
        return None
    listed = requests.post(proxy.url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, timeout=10,
                           headers={**HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    if "result" not in listed.json():  # during a reload: opened with an old worker's supervisor, asked a new one
        return set()
    return {t["name"] for t in listed.json()["result"]["tools"]}


def fake_servers(proxy) -> set[int]:
    """The fake MCP servers running under the proxy's master."""
    running = set()
    for process in psutil.Process(proxy.proc.pid).children(recursive=True):
        try:
            if FAKE in " ".join(process.cmdline()):
                running.add(process.pid)
        except psutil.Error:  # gone, or a zombie its parent has not reaped yet
            pass
    return running


def test_sighup_serves_the_changed_servers_and_stops_the_old_ones_once_their_calls_end(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(servers_yaml("one"))
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, CONFIG_PATH=str(config),
                                             GRACEFUL_TIMEOUT="4", WORKERS="1") as proxy:
        assert poll(lambda: "one__echo" in (tool_names(proxy) or set()), timeout=20)
        first = fake_servers(proxy)
        assert len(first) == 1
        sid = requests.post(proxy.url + "/mcp", json=INIT, headers=HEADERS, timeout=10).headers["Mcp-Session-Id"]
        slow = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "one__slow",
                                                                              "arguments": {"seconds": 2}}}
        with ThreadPoolExecutor(1) as pool:  # a call the old worker is answering when the reload comes
            running = pool.submit(requests.post, proxy.url + "/mcp", json=slow, timeout=30,
                                  headers={**HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
            assert poll(lambda: "slow call for" in proxy.read_log() or running.done(), timeout=10)
            config.write_text(servers_yaml("one", "two"))
            proxy.proc.send_signal(signal.SIGHUP)
            answered = running.result()
        assert answered.status_code == 200 and "result" in answered.json(), answered.text
        assert poll(lambda: {"one__echo", "two__echo"} <= (tool_names(proxy) or set()), timeout=30)
        assert poll(lambda: len(fake_servers(proxy)) == 2 and not fake_servers(proxy) & first, timeout=20)
        config.write_text(servers_yaml())
        proxy.proc.send_signal(signal.SIGHUP)
        assert poll(lambda: tool_names(proxy) is None, timeout=30)  # forwarded to the model upstream again
        assert poll(lambda: not fake_servers(proxy), timeout=20)
        assert poll(lambda: not supervisors(proxy.proc.pid), timeout=20)  # each retired one has left
        assert "Fatal Python error" not in proxy.read_log()  # cleanly: one stopped on stdin's lock as it left


def supervisors(master: int) -> list[int]:
    """The MCP supervisors the Gunicorn master runs (its children with the supervisor's module in their command)."""
    found = []
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if b"argoproxy.mcp.supervisor" in command:
            found.append(int(child))
    return found
