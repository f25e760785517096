"""The proxy's MCP endpoint (`/mcp`, docs/mcp.md) as the launcher asks it: whether it serves one (`cot-proxy run`
wires the agent to it only then) and what it serves (`cot-proxy mcp list`).

A proxy with no `mcp_servers` forwards `/mcp` like any path, so only an answer of its own counts: an `initialize`
answered with the proxy's server name and a session id. Each session is ended again at once. The proxy is asked
directly, never through an HTTP proxy of the environment (as launch/proxy.py asks it).

The servers' states come from the proxy's own method (`cot_proxy/servers`); each running server's tools from
`/mcp/<server>`, one at a time, so that a server that is down (whose listing would wait for it) holds up nothing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from argoproxy.launch.proxy import DIRECT
from argoproxy.mcp.endpoint import SERVERS_METHOD, SESSION_HEADER
from argoproxy.mcp.names import prefixed
from argoproxy.mcp.protocol import CLIENT_INFO, HANDSHAKE_VERSION, SERVER_INFO

MCP_PATH = "/mcp"
TIMEOUT = 10.0
MAX_ANSWER = 4 * 1024 * 1024  # bytes of an answer read at most (a listing of many tools)
MAX_PAGES = 100


class NotServed(Exception):
    """The proxy does not serve /mcp itself (no MCP servers configured, or not this proxy)."""


class KeyRefused(Exception):
    """The proxy refused the key (401 or 403)."""


@dataclass
class McpSession:
    """One 2025-11-25 session on the proxy's /mcp."""
    url: str  # the endpoint: http://host:port/mcp, or /mcp/<server>
    key: str
    server: str | None = None  # at /mcp/<server>: the server's name
    id: str = ""
    calls: int = 0

    def open(self) -> None:
        answer, headers = self._post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}})
        info = answer.get("result", {}).get("serverInfo") if isinstance(answer.get("result"), dict) else None
        self.id = headers.get(SESSION_HEADER) or ""
        expected = SERVER_INFO["name"] + (f"/{self.server}" if self.server else "")
        if not isinstance(info, dict) or info.get("name") != expected or not self.id:
            raise NotServed(self.url)

    def ask(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The result of one request (NotServed when it is an error or none)."""
        self.calls += 1
        answer, _ = self._post({"jsonrpc": "2.0", "id": self.calls, "method": method, "params": params or {}})
        result = answer.get("result")
        if not isinstance(result, dict):
            raise NotServed(self.url)
        return result

    def close(self) -> None:
        if self.id:
            request = urllib.request.Request(self.url, method="DELETE", headers=self._headers())
            try:
                with DIRECT.open(request, timeout=TIMEOUT) as answer:
                    answer.read(0)
            except (OSError, ValueError):
                pass  # the session ends with the proxy's idle limit anyway
            self.id = ""

    def __enter__(self) -> McpSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"}
        if self.id:
            headers.update({SESSION_HEADER: self.id, "MCP-Protocol-Version": HANDSHAKE_VERSION})
        return headers

    def _post(self, message: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        request = urllib.request.Request(self.url, data=json.dumps(message).encode(), headers=self._headers())
        try:
            with DIRECT.open(request, timeout=TIMEOUT) as answer:
                body = json.loads(answer.read(MAX_ANSWER))
                headers = answer.headers
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (401, 403) and not self.id:
                raise KeyRefused(str(exc.code)) from None
            raise NotServed(self.url) from None
        except (OSError, ValueError):
            raise NotServed(self.url) from None
        if not isinstance(body, dict):
            raise NotServed(self.url)
        return body, headers


def endpoint(url: str) -> str:
    """The proxy's MCP endpoint (url: http://host:port, as run's AgentTarget has it)."""
    return url + MCP_PATH


def serves_mcp(url: str, key: str) -> bool:
    """True when the proxy at `url` serves /mcp itself and takes this key there."""
    try:
        with McpSession(endpoint(url), key):
            return True
    except (NotServed, KeyRefused):
        return False


@dataclass
class Server:
    name: str
    state: str  # starting, ready, restarting, stopped (the supervisor's words)
    restarts: int
    error: str
    tools: list[str]  # its tools as the key sees them (prefixed: git__status); listed only when it is ready
    processes: int | None = None  # a per_session server's: its sessions' processes running now


def served(url: str, key: str) -> list[Server]:
    """The proxy's MCP servers, each with its tools as this key sees them. NotServed, KeyRefused as for
    serves_mcp."""
    with McpSession(endpoint(url), key) as session:
        states = session.ask(SERVERS_METHOD).get("servers")
    servers = []
    for state in states if isinstance(states, list) else []:
        if isinstance(state, dict) and isinstance(state.get("name"), str):
            restarts, processes = state.get("restarts"), state.get("processes")
            servers.append(Server(state["name"], str(state.get("state") or "unknown"),
                                  restarts if isinstance(restarts, int) else 0, str(state.get("error") or ""), [],
                                  processes if state.get("per_session") and isinstance(processes, int) else None))
    for server in servers:
        if server.state == "ready":
            server.tools = tools_of(url, key, server.name)
    return servers


def tools_of(url: str, key: str, server: str) -> list[str]:
    """One server's tools at /mcp/<server> (its own names, which its key's globs are matched as prefixed), under
    the names clients call them by at /mcp; none when it went down meanwhile."""
    names: list[str] = []
    try:
        with McpSession(f"{endpoint(url)}/{server}", key, server) as session:
            cursor = None
            for _ in range(MAX_PAGES):
                page = session.ask("tools/list", {"cursor": cursor} if cursor else {})
                names += [prefixed(server, t["name"]) for t in page.get("tools") or []
                          if isinstance(t, dict) and isinstance(t.get("name"), str)]
                cursor = page.get("nextCursor")
                if not isinstance(cursor, str) or not cursor:
                    break
    except (NotServed, KeyRefused):
        pass
    return names
