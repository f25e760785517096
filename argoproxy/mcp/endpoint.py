"""`/mcp` (every server as one) and `/mcp/<server>` (one alone) over Streamable HTTP, revision 2025-11-25 and
the handshake revisions before it: a POST carries one JSON-RPC message; `initialize` opens a session (its id in
the `Mcp-Session-Id` header, which every later request carries; one the instance does not hold is a 404, one
missing a 400), a DELETE ends it, a request's `MCP-Protocol-Version` must be a revision the proxy speaks, and
answers are JSON (`application/json`; the specification lets the server choose), but for a tool call that gives
a progress token (or a 2026-07-28 log level), or a tool call, prompt or read whose server asks the client
something during it (sampling, elicitation, roots: sent on it under ids of the proxy's, the client's responses
POSTed back with its session's id; client_requests.py): an SSE stream of those, then its answer. A GET opens the session's stream of what the
servers send unasked (list changes, resource updates, log messages: listening.py). One method is the proxy's own: `cot_proxy/servers`
at /mcp answers each server's state as the supervisor knows it (starting, ready, restarting: `cot-proxy mcp list`).

The door (argoproxy/serve/door.py) has already refused other sites' web pages (Origin, 403) and requests without
an accepted key (401 with `WWW-Authenticate: Bearer`) when auth is on; with auth off, `/mcp` answers only
clients on this machine (loopback, or the Unix socket)."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator

from argoproxy.config.listener import is_loopback
from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.request_body import read_request_body
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.mcp import jsonrpc, listening, stateless
from argoproxy.mcp.catalog import LISTINGS, Catalog, Globs, arguments_refusal
from argoproxy.mcp.client_requests import URL_MODE, declared, url_mode
from argoproxy.mcp.key_watch import KEY_REFUSED, KeyWatch, KeyWithdrawn, watched
from argoproxy.mcp.limits import AdmittedCall, Limits
from argoproxy.mcp.link import MARGIN, Link, SessionRefused, SupervisorGone
from argoproxy.mcp.names import MAX_NAME, prefixed
from argoproxy.mcp.notices import request_level
from argoproxy.mcp.protocol import HANDSHAKE_VERSION, HANDSHAKE_VERSIONS, SERVER_INFO
from argoproxy.mcp.person_tokens import BY_ELICITATION, caller, no_page, page_by, provider_token
from argoproxy.mcp.recording import Hook, ToolCall, ToolNames, outcome_of
from argoproxy.mcp.sessions import InstanceSessions, SessionStore, SessionStoreDown
from argoproxy.mcp.tool_search import CALL_TOOL, SEARCH_TOOL, ToolSearch, unwrapped
from argoproxy.teamkeys.records import KeyRecord, globs_meet

log = logging.getLogger("cot_proxy")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_LOGGED_NAME = 130
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "Mcp-Protocol-Version"  # MCP-Protocol-Version, as the edge spells header names
METHODS = frozenset({"GET", "POST", "DELETE"})
LOOPBACK_PEERS = frozenset({"127.0.0.1", "::1"})  # the usual peers, known without parsing the address
NAMED_CALLS = frozenset({"tools/call", "prompts/get"})
ASKING_CALLS = frozenset({"prompts/get", "resources/read"})  # beside tools/call: its server may ask the client
SERVERS_METHOD = "cot_proxy/servers"  # the proxy's own, at /mcp: each server's state (`cot-proxy mcp list`)
OAUTH_KEY_PREFIX = "oauth:"  # the KeyRecord a token accepted at /mcp becomes (edge/auth.py; issue 72's contract)
STATE_FIELDS = ("name", "kind", "state", "restarts", "error")
PER_SESSION_FIELDS = ("per_session", "processes")  # a per_session server's: how many sessions' processes run


@dataclass(frozen=True)
class RoutedToolCall:
    """A tool call as routed: what it asked, where it goes (a server and its message, or the answer it got here),
    and whose it is."""
    message: jsonrpc.Message
    server: str | None
    owner: str
    routed: tuple[str, dict[str, Any]] | dict[str, Any]
    session: str
    taken: Taken


def asks_progress(raw: dict[str, Any]) -> bool:
    """A call that asks for progress or log messages while it runs: its answer is an SSE stream."""
    return jsonrpc.progress_token(raw) is not None or request_level(raw)[1] is not None


def relay_of(check: SessionCheck | None, rounds: dict[str, Any] | None) -> dict[str, Any] | None:
    """How its server's requests of the client reach it: a 2026-07-28 client's rounds, a 2025-11-25 session's relay
    (with what the client declared it may be asked), or none."""
    if rounds is not None:
        return {"rounds": rounds}
    if check is None:
        return None
    return {"relay": True} if check.asks is None else {"relay": True, "asks": check.asks}


class McpEndpoint:
    def __init__(self, servers: tuple[str, ...], link: Link, *, auth_on: bool, unix_socket: bool,
                 call_timeout: float, limits: Limits | None = None, sessions: SessionStore | None = None) -> None:
        self.servers = servers
        self.link = link
        self.sessions = sessions or InstanceSessions(link)  # the supervisor's, or Redis's (sessions.py)
        self.auth_on = auth_on
        self.unix_socket = unix_socket
        self.call_timeout = call_timeout
        self.limits = limits or Limits((), call_timeout)  # each call's deadline, size bound, price; the key's limits
        self.keep_arguments = False  # JOURNAL_TOOL_ARGUMENTS: the hooks are handed each call's arguments
        self.hooks: list[Hook] = []  # what each tool call's end is handed to (recording.py; serve/mcp_mount.py)
        self.names = ToolNames(lambda server: self.catalog("").tool_names(server))
        self.streams = listening.StreamSlots(None)  # the GET and listen streams this worker may hold (room_for)
        self.search = ToolSearch()  # MCP_TOOL_SEARCH: off until serve/mcp_mount.py sets it (tool_search.py)
        self.personal: frozenset[str] = frozenset()  # the servers reached with each person's own credentials

    def catalog(self, session: str, check: SessionCheck | None = None, owner: str = "") -> Catalog:
        """The servers as this session's calls reach them (a cancellation names the session's request id); with
        `check`, the request's first call is its session's check too. `owner`: whose calls they are (a per_session
        server's process is chosen by it)."""
        if check is not None:
            return Catalog(self.servers, check.call, self.personal)
        return Catalog(self.servers, lambda server, message: self.link.call(
            server, message, self.limits.of(server).timeout, session, key=owner), self.personal)

    # ------------------------------------------------------------ HTTP
    def answer(self, req: Request, server: str | None, owner: str, globs: Globs, context: Any = None) -> Answer:
        """The answer to one HTTP request on /mcp (server None) or /mcp/<server>; `context`: the request's, as the
        hooks are handed it with each tool call."""
        if not self.auth_on and not self.unix_socket and req.peer[0] not in LOOPBACK_PEERS \
                and not is_loopback(req.peer[0] or "-"):
            return http_error(403, "With auth off, /mcp answers only clients on the proxy's machine.")
        if server is not None and server not in self.servers:
            return http_error(404, f"No MCP server named {server[:40]!r} here.")
        # Whose the request is, for the calls to a per-person server it makes (person_tokens.py): read while the
        # answer is made (a streamed call's link reads it before the stream).
        person = caller.set(req.team_key.owner if req.team_key is not None else "")
        subject = provider_token.set(oauth_token(req))
        paging = page_by.set(no_page)  # a 2025-11-25 session's or a 2026-07-28 request's own, once read
        try:
            if req.method == "DELETE":
                return self.end_session(req, owner)
            if req.method == "GET":
                return listening.session_stream(self, req, server, owner, globs)
            if req.method != "POST":
                return Answer(b"", 405, {"Allow": "POST, DELETE"})
            return self.post(req, server, owner, globs, context)
        except jsonrpc.RpcError as err:
            return rpc_answer(err.answer(), err.status)
        except SupervisorGone:
            return rpc_answer(jsonrpc.error(None, jsonrpc.SERVER_UNAVAILABLE,
                                            "The proxy's MCP servers cannot be reached now."), 503)
        except SessionStoreDown:
            return rpc_answer(jsonrpc.error(None, jsonrpc.SERVER_UNAVAILABLE,
                                            "The store of MCP sessions (Redis) cannot be reached now."), 503)
        finally:
            caller.reset(person)
            provider_token.reset(subject)
            page_by.reset(paging)

    def post(self, req: Request, server: str | None, owner: str, globs: Globs, context: Any = None) -> Answer:
        content_type = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return http_error(415, "A POST to /mcp carries one JSON-RPC message as application/json.")
        accept = req.headers.get("Accept", "*/*").lower()
        if not any(kind in accept for kind in ("application/json", "*/*", "application/*")):
            return http_error(406, "/mcp answers application/json: the Accept header must allow it.")
        body = self.body(req)
        message = jsonrpc.parse(body, MAX_MESSAGE_BYTES)
        version = req.headers.get(VERSION_HEADER, "").strip()
        if (version and version not in HANDSHAKE_VERSIONS) or stateless.enveloped(message):  # 2026-07-28
            return stateless.answer(self, req, message, server, owner, globs,
                                    Taken(len(body), context, req.team_key, req.presented_keys))
        if message.method == "initialize":
            return self.initialize(message, server, owner)
        check = self.session_of(req, message, owner)
        page_by.set(check.page_by)
        session = check.session
        if not message.is_request:  # notifications (initialized, cancelled) and responses: accepted
            check.now()
            replied = self.link.reply(session, message.raw) if message.method is None else True
            if message.method == "notifications/cancelled" and not self.link.cancel(session,
                                                                                    message.params.get("requestId")):
                return rpc_answer(jsonrpc.error(None, jsonrpc.SERVER_UNAVAILABLE, "The cancellation could not reach "
                                                "the replica running the call (Redis cannot be reached): it is lost."),
                                  503)
            if replied is None:
                return rpc_answer(jsonrpc.error(None, jsonrpc.SERVER_UNAVAILABLE, "The response could not reach the "
                                                "replica running its call (Redis cannot be reached): it is lost."), 503)
            if not replied:
                return rpc_answer(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "No request of this session's waits "
                                                "for that response (unknown, answered already, or its call ended)."),
                                  400)  # another session's, a guessed id, a second answer, a late one: none sent on
            return Answer(b"", 202)
        if message.method == "tools/call":
            return self.tool_call(message, server, owner, globs, session, "text/event-stream" in accept,
                                  Taken(len(body), context, req.team_key, req.presented_keys), check)
        if message.method in listening.SESSION_METHODS:  # held by the supervisor, for the session's streams
            check.now()
            answer = listening.session_request(self, session, message.raw, server, owner, globs)
            return Answer(dumps(answer), 200, content_type="application/json")
        if message.method in ASKING_CALLS:  # the server may ask the client something meanwhile, as in a tool call
            return self.asking(req, message, server, owner, globs, session, check)
        answer = self.request(self.catalog(session, check), message.raw, server, globs, owner, session)
        check.now()  # answered here (ping, the servers' states): its session is asked now, before the answer goes
        return Answer(dumps(answer), 200, content_type="application/json")

    def session_of(self, req: Request, message: jsonrpc.Message, owner: str) -> SessionCheck:
        """The request's session (400 without one), to be found one this instance holds for this key (404 for
        another): asked now with Redis's sessions, with the supervisor's by the request's first call to it."""
        session = req.headers.get(SESSION_HEADER, "").strip()
        if not session:
            raise jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, "Missing Mcp-Session-Id: send initialize first.",
                                   message.id, status=400)
        check = SessionCheck(self, session, owner, message.id)
        if not self.sessions.checked_by_calls:
            check.now()
        return check

    def tool_call(self, message: jsonrpc.Message, server: str | None, owner: str, globs: Globs, session: str,
                  sse: bool, taken: Taken, check: SessionCheck | None = None,
                  rounds: dict[str, Any] | None = None) -> Answer:
        """A tool call's answer: JSON, or when it asks for progress or its server asks the client something
        (client_requests.py), an SSE stream of those and the answer; either way recorded once answered
        (`recorded`). `check`: its 2025-11-25 session, not asked yet (None: none to ask). `rounds`: a 2026-07-28
        client's, whose input is asked for as an input_required answer (None: it declared nothing to be asked)."""
        catalog = self.catalog(session, check, owner)
        if server is None and self.search.mode != "off" and message.params.get("name") in (SEARCH_TOOL, CALL_TOOL):
            found = searched(self, catalog, message, owner, globs, session, check)
            if isinstance(found, Answer):
                return found
            message = found  # mcp_tool_call: the tool it names, called as any tool is
        routed = catalog.target(server, message.raw, globs)
        streamed = isinstance(routed, tuple) and sse and asks_progress(message.raw)
        routed, held = self.admitted(routed, streamed, check, taken, message.id)
        call = RoutedToolCall(message, server, owner, routed, session, taken)
        if isinstance(routed, tuple) and streamed:
            return self.streamed(call, routed, held, relay_of(check, rounds))
        return self.answered(catalog, call, held, check, relay_of(check, rounds))

    def admitted(self, routed: tuple[str, dict[str, Any]] | dict[str, Any], streamed: bool,
                 check: SessionCheck | None, taken: Taken, call_id: Any
                 ) -> tuple[tuple[str, dict[str, Any]] | dict[str, Any], AdmittedCall | None]:
        """The call as routed and its hold on the key's limits; a refusal by those limits is its answer, and
        nothing reaches the server. Its session is asked alone where the call ends here, is streamed, or holds."""
        if check is not None and (streamed or not isinstance(routed, tuple) or self.limits.holds(taken.key, routed[0])):
            check.now()
        held = self.limits.admit(taken.key, routed[0], call_id) if isinstance(routed, tuple) else None
        return (held, None) if isinstance(held, dict) else (routed, held)

    def streamed(self, call: RoutedToolCall, routed: tuple[str, dict[str, Any]], held: AdmittedCall | None,
                 relay: dict[str, Any] | None) -> Answer:
        """A call that asked for progress: its events as they come, its answer last."""
        try:
            source = self.link.stream(*routed, self.limits.of(routed[0]).timeout, call.session, key=call.owner,
                                      relay=relay)
        except BaseException:
            self.limits.end(held, {})  # never started (the supervisor gone): its hold given back, not charged
            raise
        return Answer(self.events(call.message, call.server, call.owner, routed, call.session, call.taken, held,
                                  source), 200, {"Cache-Control": "no-cache"}, content_type="text/event-stream")

    def answered(self, catalog: Catalog, call: RoutedToolCall, held: AdmittedCall | None, check: SessionCheck | None,
                 relay: dict[str, Any] | None) -> Answer:
        """A call answered whole (or refused here); a stream after all when its server asks the client something."""
        routed, answer = call.routed, {}
        try:
            if isinstance(routed, dict) or relay is None:
                answer = routed if isinstance(routed, dict) else catalog.call(*routed)
            else:
                answer, rest = self.relayed(routed, call.session, call.owner, check, relay)
                if rest is not None:  # the server asks the client something: the answer becomes a stream
                    events = self.events(call.message, call.server, call.owner, routed, call.session, call.taken,
                                         held, itertools.chain([answer], rest))
                    held = None  # the stream holds it now
                    return Answer(events, 200, {"Cache-Control": "no-cache"}, content_type="text/event-stream")
        finally:
            cost = self.limits.end(held, answer)
        answer, body = self.limits.bounded(routed[0] if isinstance(routed, tuple) else None, answer)
        self.recorded(call.message, call.server, call.owner, routed, answer, call.taken, len(body), cost)
        return Answer(body, 200, content_type="application/json")

    def asking(self, req: Request, message: jsonrpc.Message, server: str | None, owner: str, globs: Globs,
               session: str, check: SessionCheck) -> Answer:
        """A prompts/get or resources/read at 2025-11-25: its answer as JSON, or when its server asks the client
        something meanwhile (client_requests.py), an SSE stream of those requests and its answer, as a tool call's."""
        answer, rest = self.asking_call(message.raw, server, owner, globs, session, check)
        if rest is None:
            return rpc_answer(answer, 200)
        sent = itertools.chain([answer], rest)
        keys = self.limits.keys if req.team_key is not None else None  # a team key's ends once it is revoked
        stream = sent if keys is None else watched(sent, KeyWatch(keys, req.presented_keys))
        return Answer(asked_events(stream, lambda: self.link.cancel(session, message.id), message.id), 200,
                      {"Cache-Control": "no-cache"}, content_type="text/event-stream")

    def asking_call(self, raw: dict[str, Any], server: str | None, owner: str, globs: Globs, session: str,
                    check: SessionCheck | None = None, rounds: dict[str, Any] | None = None
                    ) -> tuple[dict[str, Any], Iterator[dict[str, Any]] | None]:
        """A prompts/get or resources/read whose server may ask its client something: its answer, or its first such
        request and the rest (`relayed`); the answer shown as at this path (a read's URIs). `check`: its 2025-11-25
        session; `rounds`: a 2026-07-28 client's (input_required); neither: nothing is relayed."""
        routed = self.catalog(session, check, owner).routed(server, raw, globs)
        if isinstance(routed, dict):
            if check is not None:
                check.now()  # it ends here: its session is asked alone
            return routed, None
        call = (routed.server, routed.message)
        if rounds is None and check is None:
            return routed.finish(self.link.call(*call, self.limits.of(routed.server).timeout, session, key=owner)), None
        relay = {"rounds": rounds} if rounds is not None else {"relay": True} if check is None or check.asks is None \
            else {"relay": True, "asks": check.asks}
        answer, rest = self.relayed(call, session, owner, check, relay)
        if rest is None:
            return routed.finish(answer), None
        return answer, (sent if "method" in sent else routed.finish(sent) for sent in rest)

    def relayed(self, routed: tuple[str, dict[str, Any]], session: str, owner: str, check: SessionCheck | None,
                relay: dict[str, Any]) -> tuple[dict[str, Any], Iterator[dict[str, Any]] | None]:
        """A call whose server may ask its client something: its answer, or its first such request and the rest
        (link.relaying)."""
        if check is not None and not check.asked:
            return check.relaying(*routed, relay)
        return self.link.relaying(*routed, self.limits.of(routed[0]).timeout, session, key=owner, relay=relay)

    def events(self, message: jsonrpc.Message, server: str | None, owner: str, routed: tuple[str, dict[str, Any]],
               session: str, taken: Taken, held: AdmittedCall | None,
               relayed: Iterator[dict[str, Any]]) -> Iterator[bytes]:
        """The call's SSE stream: what `relayed` gives (progress, the server's requests of the client), its answer
        last."""
        sent_bytes, last, cost = 0, None, 0
        keys = self.limits.keys if taken.key is not None else None  # a team key's stream ends once it is revoked
        stream: Iterator[dict[str, Any] | KeyWithdrawn] = relayed if keys is None else \
            watched(relayed, KeyWatch(keys, taken.presented))
        try:
            for sent in stream:
                if isinstance(sent, KeyWithdrawn):  # the call cancelled on its server, as the client's cancellation is
                    self.link.cancel(session, message.id)
                    log.info("mcp: %s's key was refused during its call %s (%s): its stream ended", owner,
                             json.dumps(message.params.get("name"))[:MAX_LOGGED_NAME], sent)
                    sent = jsonrpc.error(message.id, KEY_REFUSED, f"{sent} The call was cancelled.")
                    data = dumps(sent)
                elif "method" not in sent:  # the answer, last
                    cost, held = self.limits.end(held, sent), None
                    sent, data = self.limits.bounded(routed[0], sent)
                else:
                    data = dumps(sent)
                event = b"event: message\ndata: " + data + b"\n\n"
                sent_bytes += len(event)
                last = sent
                yield event
        finally:
            self.limits.end(held, {})  # the stream ended before its answer (the client left): nothing charged
        self.recorded(message, server, owner, routed, last or {}, taken, sent_bytes, cost)

    def recorded(self, message: jsonrpc.Message, server: str | None, owner: str,
                 routed: tuple[str, dict[str, Any]] | dict[str, Any], answer: dict[str, Any], taken: Taken,
                 bytes_out: int, cost: int = 0) -> None:
        """The call handed to every hook (and with DEBUG, its log line); a hook that fails never fails the call."""
        outcome, code = outcome_of(answer)
        to, own = (routed[0], str(routed[1]["params"]["name"])) if isinstance(routed, tuple) else (None, None)
        shown = message.params.get("name")
        if to is not None and own is not None:
            tool = prefixed(to, own)
        else:  # it ended here: the name the client sent, bounded
            tool = (prefixed(server, shown) if server else shown)[:MAX_NAME] if isinstance(shown, str) else "-"
        call = ToolCall(to, tool, self.names.label(to, own, outcome != "error", tool), message.id or 0,
                        owner[4:] if owner.startswith("key:") else None, outcome, code, taken.start_ns,
                        time.perf_counter() - taken.started, taken.bytes_in, bytes_out, cost,
                        message.params.get("arguments") if self.keep_arguments else None)
        if log.isEnabledFor(logging.DEBUG):
            tool_line(call, owner)
        for hook in self.hooks:
            try:
                hook(call, taken.context)
            except Exception:  # noqa: BLE001 - an observer never breaks an answer
                log.exception("mcp: recording a tool call failed")

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
        capabilities = message.params.get("capabilities")
        session = self.sessions.new(owner, version, declared(capabilities) + [URL_MODE] * url_mode(capabilities))
        result = {"protocolVersion": version, "capabilities": self.capabilities(server),
                  "serverInfo": SERVER_INFO if server is None else {**SERVER_INFO, "name": f"cot_proxy/{server}"}}
        assert message.id is not None
        return rpc_answer(jsonrpc.result(message.id, result), 200, {SESSION_HEADER: str(session)})

    def capabilities(self, server: str | None) -> dict[str, Any]:
        if server is None:
            if self.streams.most == 0:  # no stream to send list changes, updates or log messages on
                return {"tools": {}, "prompts": {}, "resources": {}}
            return {"tools": {"listChanged": True}, "prompts": {"listChanged": True},
                    "resources": {"listChanged": True, "subscribe": True}, "logging": {}}
        for status in self.link.status():
            if status.get("name") == server and isinstance(status.get("capabilities"), dict):
                own = status["capabilities"]
                return {k: v for k, v in own.items() if k in ("tools", "prompts", "resources", "logging", "completions")}
        return {"tools": {}}

    def end_session(self, req: Request, owner: str) -> Answer:
        session = req.headers.get(SESSION_HEADER, "").strip()
        if not session:
            return http_error(400, "DELETE ends a session: send its Mcp-Session-Id.")
        if not self.sessions.end(session, owner):
            return http_error(404, "Unknown or ended session.")
        if not self.sessions.checked_by_calls:  # Redis held it: this instance's streams of it end too
            try:
                self.link.tell({"op": "ended", "session": session})
            except SupervisorGone:
                pass
        if not self.sessions.checked_by_calls:  # Redis held it: the supervisors' processes of it go (every replica's)
            try:
                self.link.ask({"op": "ended", "session": session}, MARGIN)
            except SupervisorGone:
                pass
        return Answer(b"", 204)

    # ------------------------------------------------------------ JSON-RPC
    def request(self, catalog: Catalog, message: dict[str, Any], server: str | None, globs: Globs, owner: str = "",
                session: str = "") -> dict[str, Any]:
        method = message["method"]
        if method == "ping":
            return jsonrpc.result(message["id"], {})
        if server is not None:
            return catalog.alone(server, message, globs)
        if method == SERVERS_METHOD:  # the servers the key reaches (catalog.py)
            return jsonrpc.result(message["id"], {"servers": [
                {**{k: s.get(k) for k in STATE_FIELDS}, **{k: s[k] for k in PER_SESSION_FIELDS if k in s}}
                for s in self.link.status() if shown(catalog, s, globs)]})
        if method == "tools/list":  # the tool search's listing where it applies (tool_search.py)
            return self.search.listing(catalog.listing(message, globs), owner, session)
        if method in LISTINGS:
            return catalog.listing(message, globs)
        if method in NAMED_CALLS:
            return catalog.named_call(message, globs)
        if method == "resources/read":
            return catalog.read_resource(message, globs)
        return jsonrpc.error(message["id"], jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method[:80]}")


def searched(endpoint: McpEndpoint, catalog: Catalog, message: jsonrpc.Message, owner: str, globs: Globs,
             session: str, check: SessionCheck | None) -> Answer | jsonrpc.Message:
    """The proxy's own tools (tool_search.py): mcp_tool_search's answer over the tools the key's globs allow, or the
    call mcp_tool_call names (an error when it names none)."""
    refused = arguments_refusal(message.raw)
    if message.params.get("name") == CALL_TOOL and refused is None:
        inner = unwrapped(message.raw)
        if inner is not None:
            return jsonrpc.Message(inner)
    if check is not None:
        check.now()
    if refused is not None:
        return rpc_answer(refused, 200)
    if message.params.get("name") == CALL_TOOL:
        return rpc_answer(jsonrpc.error(message.id, jsonrpc.INVALID_PARAMS, f"{CALL_TOOL}'s arguments.name must "
                                        "name a tool, and its arguments.arguments be an object."), 200)
    listed = catalog.listing({"id": message.id, "method": "tools/list"}, globs)
    answer = endpoint.search.answer(message.id or 0, message.params.get("arguments"), listed["result"]["tools"])
    kept = "" if session.startswith(stateless.SESSION_PREFIX) else session  # a 2026-07-28 request's: none
    if endpoint.search.remember(owner, kept, answer):  # its GET stream hears its listing changed
        try:
            endpoint.link.tell({"op": "found", "session": session, "owner": owner})
        except SupervisorGone:
            pass  # the answer stands; a client that lists again sees the finds
    return rpc_answer(answer, 200)


def shown(catalog: Catalog, status: dict[str, Any], globs: Globs) -> bool:
    """Whether a server's state is the key's to see: a running server's when the key reaches it (catalog.py); one
    not running (its tools unknown, its listing would wait) when the key's globs may match a tool of its."""
    name = str(status.get("name"))
    if status.get("state") == "ready":
        return catalog.reaches(name, globs)
    return all(globs_meet((prefixed(name, "*"),), group) for group in globs)


def asked_events(sent: Iterator[dict[str, Any] | KeyWithdrawn], cancel: Any, id: Any) -> Iterator[bytes]:
    """A prompt's or read's SSE stream: its server's requests of the client, then its answer; a key refused
    meanwhile ends it with the key's error, the call cancelled on its server."""
    for message in sent:
        if isinstance(message, KeyWithdrawn):
            cancel()
            message = jsonrpc.error(id, KEY_REFUSED, f"{message} The call was cancelled.")
        yield b"event: message\ndata: " + dumps(message) + b"\n\n"
        if "method" not in message:
            return


def tool_line(call: ToolCall, owner: str) -> None:
    """DEBUG: one line per tool call (who, which tool, how it ended, how long, bytes in and out); never its
    arguments or its result."""
    ended = f"error:{call.code}" if call.outcome == "error" else call.outcome
    log.debug("mcp tools/call server=%s tool=%s key=%s status=%s %.1fms in=%dB out=%dB", call.server or "*",
              json.dumps(call.tool)[:MAX_LOGGED_NAME], owner, ended, call.seconds * 1000, call.bytes_in,
              call.bytes_out)


class SessionCheck:
    """A 2025-11-25 request's session, held to be its owner's before anything of the request is done or answered:
    by its first call to a server, which carries the session and its owner to the supervisor (which refuses the
    call there and then), or on its own (`now`) when the request makes no such call, or first does something else.
    Never remembered past the request: a session ended on one worker is refused on every other at once."""

    __slots__ = ("endpoint", "session", "owner", "id", "asked", "asks")

    def __init__(self, endpoint: McpEndpoint, session: str, owner: str, id: jsonrpc.RequestId | None) -> None:
        self.endpoint, self.session, self.owner, self.id = endpoint, session, owner, id
        self.asked = False
        self.asks: list[str] | None = None  # what its client may be asked, once its record was read

    def now(self) -> None:
        if not self.asked:
            held = self.endpoint.sessions.held(self.session, self.owner)
            if held is None:
                raise self.refused()
            self.asked = True
            self.asks = [str(a) for a in held.get("asks") or ()]  # what its client may be asked

    def page_by(self) -> str:
        """BY_ELICITATION when the session's client declared URL-mode elicitation at initialize (person_tokens.py):
        its record read now when it was not (a person not connected is rare: the trip is made then)."""
        if self.asks is None:
            self.asked = False
            self.now()
        return BY_ELICITATION if URL_MODE in (self.asks or ()) else ""

    def call(self, server: str, message: dict[str, Any]) -> dict[str, Any]:
        """A call of the request's to `server` (the catalog's), its session checked on the way when not yet."""
        endpoint = self.endpoint
        timeout = endpoint.limits.of(server).timeout
        if self.asked:
            return endpoint.link.call(server, message, timeout, self.session, key=self.owner)
        try:
            answer = endpoint.link.call(server, message, timeout, self.session, self.owner)
        except SessionRefused:
            raise self.refused() from None
        self.asked = True
        return answer

    def relaying(self, server: str, message: dict[str, Any],
                 relay: dict[str, Any]) -> tuple[dict[str, Any], Iterator[dict[str, Any]] | None]:
        """`call`'s, with the server's requests of the client first (link.relaying)."""
        try:
            relayed = self.endpoint.link.relaying(server, message, self.endpoint.limits.of(server).timeout,
                                                  self.session, self.owner, relay=relay)
        except SessionRefused:
            raise self.refused() from None
        self.asked = True
        return relayed

    def refused(self) -> jsonrpc.RpcError:
        return jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, "Unknown or ended session: initialize again.", self.id,
                                status=404)


class Taken:
    """When and how a tool call came: its arrival (perf_counter and wall clock), its body's bytes, the request's
    context the hooks are handed, and the team key that sent it (None: another key, or auth off)."""

    __slots__ = ("started", "start_ns", "bytes_in", "context", "key", "presented")

    def __init__(self, bytes_in: int, context: Any, key: KeyRecord | None = None,
                 presented: tuple[str, ...] = ()) -> None:
        self.started, self.start_ns = time.perf_counter(), time.time_ns()
        self.bytes_in, self.context, self.key = bytes_in, context, key
        self.presented = presented  # the keys it presented: its team key looked up again while its stream runs


def owner_of(req: Request, admin: bool) -> str:
    """Whose a session is: a team key's name, the operator, a configured key's digest, or this machine (auth off)."""
    if req.team_key is not None:
        return "key:" + req.team_key.name
    if admin:
        return "admin"
    if req.presented_keys:
        return "digest:" + hashlib.sha256(req.presented_keys[0].encode()).hexdigest()[:32]
    return "local"


def oauth_token(req: Request) -> str:
    """The provider's token a person presented at /mcp (a key r1's OAuth made of it: `oauth:` names it), which
    `auth: token_exchange` exchanges; "" for a proxy key, which is never sent to the provider."""
    if req.team_key is None or not req.team_key.name.startswith(OAUTH_KEY_PREFIX) or not req.presented_keys:
        return ""
    return req.presented_keys[0]


def tool_globs(req: Request) -> Globs:
    """The team key's tool globs (`keys create --tools`), and its team's, which bound them; the operator's keys and
    configured keys: every tool."""
    return req.team_key.allowed_tools if req.team_key is not None else ()


def rpc_answer(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Answer:
    return Answer(dumps(body), status, headers, content_type="application/json")


def http_error(status: int, message: str) -> Answer:
    return rpc_answer(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, message), status)

