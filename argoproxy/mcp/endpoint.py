"""`/mcp` (every server as one) and `/mcp/<server>` (one alone) over Streamable HTTP, revision 2025-11-25 and
the handshake revisions before it: a POST carries one JSON-RPC message; `initialize` opens a session (its id in
the `Mcp-Session-Id` header, which every later request carries; one the instance does not hold is a 404, one
missing a 400), a DELETE ends it, a request's `MCP-Protocol-Version` must be a revision the proxy speaks, and
answers are JSON (`application/json`; the specification lets the server choose), but for a tool call that gives
a progress token: an SSE stream of its progress, then its answer. The GET stream of messages the server sends
unasked is not offered (405, as the specification allows).

The door (argoproxy/serve/door.py) has already refused other sites' web pages (Origin, 403) and requests without
an accepted key (401 with `WWW-Authenticate: Bearer`) when auth is on; with auth off, `/mcp` answers only
clients on this machine (loopback, or the Unix socket)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Iterator

from argoproxy.config.listener import is_loopback
from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.request_body import read_request_body
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.catalog import LISTINGS, Catalog, Globs
from argoproxy.mcp.link import Link, SupervisorGone
from argoproxy.mcp.protocol import HANDSHAKE_VERSION, HANDSHAKE_VERSIONS, SERVER_INFO

log = logging.getLogger("cot_proxy")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_LOGGED_NAME = 130
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "Mcp-Protocol-Version"  # MCP-Protocol-Version, as the edge spells header names
METHODS = frozenset({"GET", "POST", "DELETE"})
NAMED_CALLS = frozenset({"tools/call", "prompts/get"})


class McpEndpoint:
    def __init__(self, servers: tuple[str, ...], link: Link, *, auth_on: bool, unix_socket: bool,
                 call_timeout: float) -> None:
        self.servers = servers
        self.link = link
        self.auth_on = auth_on
        self.unix_socket = unix_socket
        self.call_timeout = call_timeout

    def catalog(self, session: str) -> Catalog:
        """The servers as this session's calls reach them (a cancellation names the session's request id)."""
        return Catalog(self.servers, lambda server, message: self.link.call(server, message, self.call_timeout,
                                                                           session))

    # ------------------------------------------------------------ HTTP
    def answer(self, req: Request, server: str | None, owner: str, globs: Globs) -> Answer:
        """The answer to one HTTP request on /mcp (server None) or /mcp/<server>."""
        if not self.auth_on and not self.unix_socket and not is_loopback(req.peer[0] or "-"):
            return http_error(403, "With auth off, /mcp answers only clients on the proxy's machine.")
        if server is not None and server not in self.servers:
            return http_error(404, f"No MCP server named {server[:40]!r} here.")
        try:
            if req.method == "DELETE":
                return self.end_session(req, owner)
            if req.method != "POST":
                return Answer(b"", 405, {"Allow": "POST, DELETE"})
            return self.post(req, server, owner, globs)
        except jsonrpc.RpcError as err:
            return rpc_answer(err.answer(), err.status)
        except SupervisorGone:
            return rpc_answer(jsonrpc.error(None, jsonrpc.SERVER_UNAVAILABLE,
                                            "The proxy's MCP servers cannot be reached now."), 503)

    def post(self, req: Request, server: str | None, owner: str, globs: Globs) -> Answer:
        content_type = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return http_error(415, "A POST to /mcp carries one JSON-RPC message as application/json.")
        accept = req.headers.get("Accept", "*/*").lower()
        if not any(kind in accept for kind in ("application/json", "*/*", "application/*")):
            return http_error(406, "/mcp answers application/json: the Accept header must allow it.")
        message = jsonrpc.parse(self.body(req), MAX_MESSAGE_BYTES)
        version = req.headers.get(VERSION_HEADER, "").strip()
        if version and version not in HANDSHAKE_VERSIONS:
            raise jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, f"Unsupported MCP-Protocol-Version {version[:40]!r}.",
                                   message.id, {"supported": list(HANDSHAKE_VERSIONS)}, status=400)
        if message.method == "initialize":
            return self.initialize(message, server, owner)
        session = self.session_of(req, message, owner)
        if message.method == "notifications/cancelled":
            self.link.cancel(session, message.params.get("requestId"))
        if not message.is_request:
            return Answer(b"", 202)  # notifications (initialized, cancelled) and responses: accepted
        return self.served(message, server, owner, globs, session, "text/event-stream" in accept)

    def session_of(self, req: Request, message: jsonrpc.Message, owner: str) -> str:
        """The request's session: one this instance holds for this key (400 without one, 404 for another)."""
        session = req.headers.get(SESSION_HEADER, "").strip()
        if not session:
            raise jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, "Missing Mcp-Session-Id: send initialize first.",
                                   message.id, status=400)
        if not self.link.session("get", id=session, owner=owner):
            raise jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, "Unknown or ended session: initialize again.",
                                   message.id, status=404)
        return session

    def served(self, message: jsonrpc.Message, server: str | None, owner: str, globs: Globs, session: str,
               sse: bool) -> Answer:
        """A request's answer: JSON, or for a tool call asking for progress, an SSE stream of it and the answer."""
        catalog = self.catalog(session)
        started = time.perf_counter()
        if sse and message.method == "tools/call" and jsonrpc.progress_token(message.raw) is not None:
            routed = catalog.target(server, message.raw, globs)
            if isinstance(routed, tuple):
                return Answer(self.events(message, server, owner, routed, session, started), 200,
                              {"Cache-Control": "no-cache"}, content_type="text/event-stream")
        body = dumps(self.request(catalog, message.raw, server, globs))
        if message.method == "tools/call" and log.isEnabledFor(logging.DEBUG):
            tool_line(message, server, owner, body, started)
        return Answer(body, 200, content_type="application/json")

    def events(self, message: jsonrpc.Message, server: str | None, owner: str, routed: tuple[str, dict[str, Any]],
               session: str, started: float) -> Iterator[bytes]:
        last = b""
        for sent in self.link.stream(*routed, self.call_timeout, session):
            last = dumps(sent)
            yield b"event: message\ndata: " + last + b"\n\n"
        if log.isEnabledFor(logging.DEBUG):
            tool_line(message, server, owner, last, started)

    def body(self, req: Request) -> bytes:
        try:
            return read_request_body(req, MAX_MESSAGE_BYTES)
        except ProxyError as err:
            if err.status == 413:
                raise jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, f"Message too large: at most {MAX_MESSAGE_BYTES} "
                                       "bytes.", status=413) from None
            raise

    def initialize(self, message: jsonrpc.Message, server: str | None, owner: str) -> Answer:
        if not message.is_request:
            raise jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, "initialize is a request: it needs an id.", status=400)
        asked = message.params.get("protocolVersion")
        version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSION
        session = self.link.session("new", owner=owner, version=version).get("id")
        result = {"protocolVersion": version, "capabilities": self.capabilities(server),
                  "serverInfo": SERVER_INFO if server is None else {**SERVER_INFO, "name": f"cot_proxy/{server}"}}
        assert message.id is not None
        return rpc_answer(jsonrpc.result(message.id, result), 200, {SESSION_HEADER: str(session)})

    def capabilities(self, server: str | None) -> dict[str, Any]:
        if server is None:
            return {"tools": {}, "prompts": {}, "resources": {}}
        for status in self.link.status():
            if status.get("name") == server and isinstance(status.get("capabilities"), dict):
                own = status["capabilities"]
                return {k: v for k, v in own.items() if k in ("tools", "prompts", "resources", "logging", "completions")}
        return {"tools": {}}

    def end_session(self, req: Request, owner: str) -> Answer:
        session = req.headers.get(SESSION_HEADER, "").strip()
        if not session:
            return http_error(400, "DELETE ends a session: send its Mcp-Session-Id.")
        if not self.link.session("end", id=session, owner=owner):
            return http_error(404, "Unknown or ended session.")
        return Answer(b"", 204)

    # ------------------------------------------------------------ JSON-RPC
    def request(self, catalog: Catalog, message: dict[str, Any], server: str | None, globs: Globs) -> dict[str, Any]:
        method = message["method"]
        if method == "ping":
            return jsonrpc.result(message["id"], {})
        if server is not None:
            return catalog.alone(server, message, globs)
        if method in LISTINGS:
            return catalog.listing(message, globs)
        if method in NAMED_CALLS:
            return catalog.named_call(message, globs)
        if method == "resources/read":
            return catalog.read_resource(message)
        return jsonrpc.error(message["id"], jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method[:80]}")


def tool_line(message: jsonrpc.Message, server: str | None, owner: str, body: bytes, started: float) -> None:
    """DEBUG: one line per tool call (who, which tool, how it ended, how long, bytes in and out); never its
    arguments or its result."""
    name = message.params.get("name")
    tool = json.dumps(name if isinstance(name, str) else "-")[:MAX_LOGGED_NAME]
    outcome = json.loads(body) if body else {}
    error = outcome.get("error")
    result = outcome.get("result")
    ended = f"error:{error.get('code')}" if isinstance(error, dict) else \
        "tool_error" if isinstance(result, dict) and result.get("isError") else "ok"
    log.debug("mcp tools/call server=%s tool=%s key=%s status=%s %.1fms in=%dB out=%dB", server or "*", tool, owner,
              ended, (time.perf_counter() - started) * 1000, len(json.dumps(message.raw)), len(body))


def owner_of(req: Request, admin: bool) -> str:
    """Whose a session is: a team key's name, the operator, a configured key's digest, or this machine (auth off)."""
    if req.team_key is not None:
        return "key:" + req.team_key.name
    if admin:
        return "admin"
    if req.presented_keys:
        return "digest:" + hashlib.sha256(req.presented_keys[0].encode()).hexdigest()[:32]
    return "local"


def tool_globs(req: Request) -> Globs:
    """The team key's tool globs (`keys create --tools`), and its team's, which bound them; the operator's keys and
    configured keys: every tool."""
    return req.team_key.allowed_tools if req.team_key is not None else ()


def rpc_answer(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Answer:
    return Answer(dumps(body), status, headers, content_type="application/json")


def http_error(status: int, message: str) -> Answer:
    return rpc_answer(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, message), status)

