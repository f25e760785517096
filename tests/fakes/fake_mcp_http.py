"""A remote MCP server on loopback, strict about the transport as a real one is, for the gateway's tests (no
registry needed). Runs in the test's process (`FakeRemote(...).start()`); `seen` keeps every request's method,
path and headers, so a test can tell what reached it (the proxy's credentials) and what did not.

Streamable HTTP (2025-11-25) at /mcp: a POST must accept both application/json and text/event-stream (else
406), be application/json (415), carry one JSON-RPC message; every message after initialize must carry the
session's Mcp-Session-Id (400 without, 404 for one it does not hold) and the agreed MCP-Protocol-Version (400
otherwise), and a request before notifications/initialized is refused. With `token`, a request without
`Authorization: Bearer TOKEN` gets 401. A DELETE ends the session. Requests are answered as JSON, but as an SSE
stream when `sse_answers` is set or the tool sends progress first (`progress`), or the stream is resumed with a
GET and Last-Event-ID (`polled`: its first stream ends after an event id, before the answer).

HTTP+SSE (2024-11-05, `mode="sse"`): a GET of /sse opens the event stream, whose `endpoint` event names
/messages?session_id=ID (or `endpoint`, when given: another origin, in a test); POSTs there get 202, and every
answer comes on the stream.

`redirect`: every request gets a 307 to that URL instead.

Tools: echo {text}, add {a, b}, progress {steps}, slow {seconds}, garbage (an answer that is no JSON), huge
{bytes} (an answer that long), forget (the server forgets every session: the next request gets 404), polled
(see above), ask (the server asks its client for sampling first, and says how the answer came back), headers
(the request's headers, said back), whoami {text} (with `people`: the person whose bearer token the call carried,
said back and recorded in `calls`).

`people` (token -> person): every request must carry one of those bearer tokens (else 401), a session is its
opener's alone (another person's token on it: 403, counted in `crossed`); a token taken out of `people` is refused. POST /token
(form `grant_type=refresh_token`) is its authorization server's refresh: a refresh token in `refresh` (refresh
token -> person) gets a new access token for that person (added to `people`) and a new refresh token (rotated:
the old one is refused from then on, `invalid_grant`).

`resource_metadata`: its protected resource metadata (RFC 9728), served to anyone at its well-known URL and named in
its 401s (`resource_metadata`), as a server behind a real authorization server says where its tokens come from."""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERSION = "2025-11-25"
METADATA = "/.well-known/oauth-protected-resource/mcp"
TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "add", "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}},
    {"name": "progress", "inputSchema": {"type": "object", "properties": {"steps": {"type": "integer"}}}},
    {"name": "slow", "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}},
    {"name": "garbage", "inputSchema": {"type": "object"}},
    {"name": "huge", "inputSchema": {"type": "object", "properties": {"bytes": {"type": "integer"}}}},
    {"name": "forget", "inputSchema": {"type": "object"}},
    {"name": "polled", "inputSchema": {"type": "object"}},
    {"name": "ask", "inputSchema": {"type": "object"}},
    {"name": "headers", "inputSchema": {"type": "object"}},
    {"name": "whoami", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
]


class Session:
    def __init__(self) -> None:
        self.initialized = False
        self.version = VERSION
        self.stream: queue.Queue[dict[str, Any] | None] = queue.Queue()  # HTTP+SSE: what the GET stream sends
        self.stored: dict[str, dict[str, Any]] = {}  # event id -> the answer a resumed stream gives
        self.answers: dict[Any, queue.Queue[dict[str, Any]]] = {}  # the server's requests, waiting for the client
        self.in_flight: set[Any] = set()  # request ids being answered: one reused meanwhile is refused
        self.bearer = ""  # the Authorization of the request that opened it (with `people`)


class FakeRemote:
    def __init__(self, mode: str = "streamable", token: str = "", endpoint: str = "", redirect: str = "",
                 sse_answers: bool = False, host: str = "127.0.0.1", port: int = 0,
                 people: dict[str, str] | None = None) -> None:
        self.mode, self.token, self.endpoint, self.redirect = mode, token, endpoint, redirect
        self.people = people  # bearer token -> person
        self.calls: list[tuple[str, str]] = []  # whoami's: (the person, its text)
        self.crossed = 0  # requests on one person's session with another's token
        self.refresh: dict[str, str] = {}  # refresh token -> person (POST /token)
        self.resource_metadata: dict[str, Any] | None = None  # RFC 9728's document, when set
        self.sse_answers = sse_answers
        self.sessions: dict[str, Session] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.refused: list[str] = []  # why each refused request was refused
        self.scope_needed = ""  # set: a person's token is refused 403 insufficient_scope naming it (MCP's step-up)
        self.httpd = Listening((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *_: None  # type: ignore[method-assign]  # a client gone: nothing to say
        self.httpd.fake = self  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host}:{self.port}" + ("/sse" if self.mode == "sse" else "/mcp")

    def start(self) -> "FakeRemote":
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        for session in self.sessions.values():
            session.stream.put(None)
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeRemote":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def authorizations(self) -> set[str]:
        return {h.get("Authorization", "") for _, _, h in self.seen}


class Listening(ThreadingHTTPServer):
    request_queue_size = 128  # many calls at once (two people's in parallel) are each let in, as a real server's are


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without it, each answer waits 40 ms for an ACK
    server: ThreadingHTTPServer

    def log_message(self, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeRemote:
        return self.server.fake  # type: ignore[attr-defined,no-any-return]

    # ------------------------------------------------------------ plumbing
    def refuse(self, status: int, why: str, id: Any = None, code: int = -32600) -> None:
        self.fake.refused.append(why)
        self.send_json(status, {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": why}})

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def start_events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def event(self, data: Any, kind: str = "message", id: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        self.wfile.write((f"id: {id}\n" if id else "").encode() + f"event: {kind}\ndata: {text}\n\n".encode())
        self.wfile.flush()

    def body(self) -> Any:
        try:
            return json.loads(self.raw_body)
        except ValueError:
            return None

    def gate(self) -> bool:
        """What every request must pass: no redirect configured, the token. The body is read first, whatever the
        answer: the connection is kept for the next request."""
        self.raw_body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.fake.seen.append((self.command, self.path, dict(self.headers.items())))
        if self.fake.redirect:
            self.send_response(307)
            self.send_header("Location", self.fake.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        if self.fake.people is not None and self.headers.get("Authorization", "")[7:] not in self.fake.people:
            self.fake.refused.append(f"not a person's token ({self.command})")
            self.send_response(401)
            named = (f', resource_metadata="http://{self.server.server_address[0]}:{self.fake.port}{METADATA}"'
                     if self.fake.resource_metadata else "")
            self.send_header("WWW-Authenticate", f'Bearer error="invalid_token"{named}')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        if self.fake.people is not None and self.fake.scope_needed:
            self.fake.refused.append(f"insufficient scope ({self.command})")
            self.send_response(403)
            self.send_header("WWW-Authenticate", f'Bearer error="insufficient_scope", scope="{self.fake.scope_needed}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        if self.fake.token and self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            self.fake.refused.append("no token")
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Bearer")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        return True

    # ------------------------------------------------------------ Streamable HTTP
    def do_POST(self) -> None:
        if self.path == "/token" and self.fake.people is not None:
            return self.refreshed()
        if not self.gate():
            return
        path = urlsplit(self.path)
        if self.fake.mode == "sse":
            return self.sse_post(path)
        if path.path != "/mcp":
            return self.refuse(404, "no such path")
        accept = self.headers.get("Accept", "")
        if "application/json" not in accept or "text/event-stream" not in accept:
            return self.refuse(406, "Accept must list application/json and text/event-stream")
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self.refuse(415, "Content-Type must be application/json")
        message = self.body()
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return self.refuse(400, "not a JSON-RPC message", code=-32700)
        if message.get("method") == "initialize":
            if self.headers.get("Mcp-Session-Id"):
                return self.refuse(400, "initialize with a session id", message.get("id"))
            sid = secrets.token_hex(16)
            self.fake.sessions[sid] = Session()
            self.fake.sessions[sid].bearer = self.headers.get("Authorization", "")
            return self.send_json(200, {"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": VERSION, "capabilities": {"tools": {}},
                "serverInfo": {"name": "fake-remote", "version": "1"}}}, {"Mcp-Session-Id": sid})
        sid = self.headers.get("Mcp-Session-Id", "")
        if not sid:
            return self.refuse(400, "no Mcp-Session-Id", message.get("id"))
        session = self.fake.sessions.get(sid)
        if session is None:
            return self.refuse(404, "unknown session", message.get("id"))
        if self.fake.people is not None and session.bearer != self.headers.get("Authorization", ""):
            self.fake.crossed += 1
            return self.refuse(403, "another person's session", message.get("id"))
        if self.headers.get("MCP-Protocol-Version") != session.version:
            return self.refuse(400, f"MCP-Protocol-Version {self.headers.get('MCP-Protocol-Version')!r}", message.get("id"))
        if "method" not in message:  # the client's answer to a request of ours
            if message.get("id") in session.answers:
                session.answers[message["id"]].put(message)
            return self.empty(202)
        if "id" not in message:
            if message["method"] == "notifications/initialized":
                session.initialized = True
            return self.empty(202)
        if not session.initialized:
            return self.refuse(400, "a request before notifications/initialized", message["id"])
        if message["id"] in session.in_flight:
            return self.refuse(400, f"request id {message['id']!r} is already in flight", message["id"])
        session.in_flight.add(message["id"])
        try:
            self.answer(session, message)
        finally:
            session.in_flight.discard(message["id"])

    def refreshed(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()).items()}
        person = self.fake.refresh.pop(form.get("refresh_token", ""), None)
        if form.get("grant_type") != "refresh_token" or person is None:
            return self.send_json(400, {"error": "invalid_grant"})
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.fake.people[access] = person
        self.fake.refresh[refresh] = person
        self.send_json(200, {"access_token": access, "refresh_token": refresh, "expires_in": 3600,
                             "token_type": "Bearer"})

    def answer(self, session: Session, message: dict[str, Any]) -> None:
        params = message.get("params") or {}
        method, id = message["method"], message["id"]
        if method == "tools/list":
            return self.reply(id, {"tools": TOOLS})
        if method == "ping":
            return self.reply(id, {})
        if method != "tools/call":
            return self.send_json(200, {"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no method"}})
        name, args = params.get("name"), params.get("arguments") or {}
        token = (params.get("_meta") or {}).get("progressToken")
        if name == "echo":
            return self.reply(id, text(str(args.get("text", ""))))
        if name == "whoami" and self.fake.people is not None:
            person = self.fake.people.get(self.headers.get("Authorization", "")[7:], "?")
            self.fake.calls.append((person, str(args.get("text", ""))))
            return self.reply(id, text(person))
        if name == "add":
            return self.reply(id, text(str(args.get("a", 0) + args.get("b", 0))))
        if name == "slow":
            time.sleep(float(args.get("seconds", 1)))
            return self.reply(id, text("slept"))
        if name == "garbage":
            data = b"this is not JSON"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if name == "huge":
            return self.reply(id, text("x" * int(args.get("bytes", 1000))))
        if name == "headers":  # what it was sent, said back (as a debugging tool might)
            return self.reply(id, text(json.dumps(dict(self.headers.items()))))
        if name == "forget":
            self.fake.sessions.clear()
            return self.reply(id, text("forgotten"))
        if name == "progress":
            self.start_events()
            steps = int(args.get("steps", 3))
            for n in range(steps):
                if token is not None:
                    self.event({"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": n + 1, "total": steps}})
            return self.event({"jsonrpc": "2.0", "id": id, "result": text(f"{steps} steps")})
        if name == "polled":  # a primed stream closed before the answer: the client resumes it with a GET
            event_id = secrets.token_hex(4)
            session.stored[event_id] = {"jsonrpc": "2.0", "id": id, "result": text("resumed")}
            self.start_events()
            self.wfile.write(f"id: {event_id}\nretry: 10\ndata: \n\n".encode())
            return
        if name == "ask":
            self.start_events()
            asked = secrets.token_hex(4)
            session.answers[asked] = queue.Queue()
            self.event({"jsonrpc": "2.0", "id": asked, "method": "sampling/createMessage",
                        "params": {"messages": [], "maxTokens": 1}})
            try:
                got = session.answers[asked].get(timeout=10)
                said = f"error {got['error']['code']}" if "error" in got else "a result"
            except queue.Empty:
                said = "no answer"
            return self.event({"jsonrpc": "2.0", "id": id, "result": text(said)})
        return self.send_json(200, {"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "no tool"}})

    def reply(self, id: Any, result: dict[str, Any]) -> None:
        message = {"jsonrpc": "2.0", "id": id, "result": result}
        if not self.fake.sse_answers:
            return self.send_json(200, message)
        self.start_events()
        self.event(message)

    def do_GET(self) -> None:
        if self.path.startswith("/.well-known/oauth-protected-resource") and self.fake.resource_metadata:
            self.fake.seen.append((self.command, self.path, dict(self.headers.items())))
            return self.send_json(200, self.fake.resource_metadata)
        if not self.gate():
            return
        if self.fake.mode == "sse":
            return self.sse_stream()
        if "text/event-stream" not in self.headers.get("Accept", ""):
            return self.refuse(406, "a GET must accept text/event-stream")
        session = self.fake.sessions.get(self.headers.get("Mcp-Session-Id", ""))
        if session is None:
            return self.refuse(404, "unknown session")
        stored = session.stored.pop(self.headers.get("Last-Event-ID", ""), None)
        if stored is None:
            return self.empty(405)
        self.start_events()
        self.event(stored, id="after")

    def do_DELETE(self) -> None:
        if not self.gate():
            return
        if self.fake.sessions.pop(self.headers.get("Mcp-Session-Id", ""), None) is None:
            return self.empty(404)
        self.empty(204)

    # ------------------------------------------------------------ HTTP+SSE (2024-11-05)
    def sse_stream(self) -> None:
        if urlsplit(self.path).path != "/sse" or "text/event-stream" not in self.headers.get("Accept", ""):
            return self.refuse(404, "the event stream is GET /sse")
        sid = secrets.token_hex(16)
        session = self.fake.sessions[sid] = Session()
        self.start_events()
        self.event(self.fake.endpoint or f"/messages?session_id={sid}", kind="endpoint")
        while True:
            message = session.stream.get()
            if message is None:
                return
            try:
                self.event(message)
            except OSError:
                return

    def sse_post(self, path: Any) -> None:
        sid = (parse_qs(path.query).get("session_id") or [""])[0]
        session = self.fake.sessions.get(sid)
        if path.path != "/messages" or session is None:
            return self.refuse(404, "unknown session")
        message = self.body()
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return self.refuse(400, "not a JSON-RPC message")
        method, id = message.get("method"), message.get("id")
        if method is None or id is None:  # taken before its 202, as a server's queue keeps its messages' order:
            session.initialized = session.initialized or method == "notifications/initialized"
            return self.empty(202)  # the client's next request may reach another thread of this fake first
        self.empty(202)
        if method == "initialize":
            result: dict[str, Any] = {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                                      "serverInfo": {"name": "fake-remote-sse", "version": "1"}}
        elif not session.initialized:
            session.stream.put({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": "not initialized"}})
            return
        elif method == "tools/list":
            result = {"tools": TOOLS[:2]}
        elif method == "tools/call" and (message.get("params") or {}).get("name") == "echo":
            result = text(str(((message["params"].get("arguments")) or {}).get("text", "")))
        else:
            session.stream.put({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no method"}})
            return
        session.stream.put({"jsonrpc": "2.0", "id": id, "result": result})


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}
