"""Revision 2026-07-28 at `/mcp` and `/mcp/<server>`: stateless requests, bridged to the servers behind, whose
2025-11-25 sessions with the supervisor go on as before.

There is no handshake and no session. Each POST carries one request whose `params._meta` holds the revision
(`io.modelcontextprotocol/protocolVersion`), the client's capabilities and, optionally, its name; the
`MCP-Protocol-Version`, `Mcp-Method` and (for tools/call, prompts/get, resources/read) `Mcp-Name` headers must
say the same as the body. endpoint.py hands a POST here when its `MCP-Protocol-Version` is no handshake revision,
or when its body carries that envelope. The checks, in the specification's order, each the first to fail:

- a missing `_meta`, or one without the revision or the capabilities: -32602;
- a header missing or saying otherwise than the body: -32020 (HeaderMismatch);
- a revision the proxy does not speak: -32022, whose `data.supported` lists those it does (a client of a later
  revision re-asks in one of them);
- the errors answer with the HTTP status the specification gives them (400, and 404 for -32601).

`server/discover` answers the proxy's capabilities, its name and every revision it speaks. tools/list,
tools/call, prompts/* and resources/* go through the endpoint's own paths (endpoint.py: the key's tool globs,
its limits, prices, journal line, metrics and span are those of a 2025-11-25 call), with the envelope taken out
of `_meta` (a 2025-11-25 server may refuse a request carrying it), and their results given what this revision
requires (`resultType`; `ttlMs` and `cacheScope` on listings and reads). A tool call that gives a progress token
is answered as an SSE stream when the client accepts one, as at 2025-11-25; other answers are JSON. No answer
carries an Mcp-Session-Id.

`subscriptions/listen` is answered with an SSE stream of the list changes and resource updates it asks for
(listening.py): the acknowledgement first, each notification stamped with the request's id, and its result when
the proxy ends it.

Multi round-trip requests: a tool call, prompts/get or resources/read whose server asks its client something
(sampling, elicitation, roots),
when the client declared that capability in `_meta`, is answered `input_required` with the server's requests in
`inputRequests` and a `requestState` of the proxy's; the client calls again with `inputResponses` and that
`requestState` (by the same key, the same tool, prompt or URI), which the proxy gives to the server's requests waiting meanwhile,
and is answered what comes next (client_requests.py's Rounds). The call is admitted, counted and charged once,
when first made; the later rounds are answered as JSON. A `requestState` the proxy does not hold for this key and
tool (unknown, used already, past the call's deadline), or `inputResponses` without one, or either on another
method, is -32602. A person not connected to a per_user server is sent to its connect page in such a round, when
the client declared URL-mode elicitation (person_tokens.py: its next request is the call made anew). The
methods this revision removed (initialize, ping, logging/setLevel, resources/subscribe and unsubscribe) are
-32601 under it, and a notification is accepted (202) and dropped: a client cancels by closing its stream (a
tool call streamed as SSE is then cancelled on its server)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any, Callable, Iterable, Iterator, Protocol

from argoproxy.edge.http_objects import Answer, Request
from argoproxy.jsonfast import dumps, loads
from argoproxy.mcp import jsonrpc, listening
from argoproxy.mcp.catalog import Catalog, Globs
from argoproxy.mcp.client_requests import declared, url_mode
from argoproxy.mcp.link import Link
from argoproxy.mcp.notices import LEVELS, LOG_LEVEL
from argoproxy.mcp.person_tokens import BY_ROUND, connect_round, page_by
from argoproxy.mcp.protocol import SERVER_INFO, STATELESS_VERSIONS, VERSIONS

HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
ENVELOPE = frozenset({VERSION_KEY, CAPABILITIES_KEY, CLIENT_INFO_KEY})  # LOG_LEVEL stays: the supervisor reads it
VERSION_HEADER, METHOD_HEADER, NAME_HEADER = "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name"
NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}  # what Mcp-Name repeats
ROUNDS = frozenset(NAMED)  # the calls whose server may ask the client for input (input_required)
# The revision's requests the proxy serves (the proxy's own cot_proxy/servers too, at /mcp).
SESSION_PREFIX = "stateless:"  # a request's own name for its calls: no session, nothing remembered by it
SERVED = frozenset({"server/discover", "subscriptions/listen", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
                    "resources/templates/list", "resources/read", "completion/complete", "cot_proxy/servers"})
CACHEABLE = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list",
                       "resources/read", "server/discover"})
STATUS = {jsonrpc.PARSE_ERROR: 400, jsonrpc.INVALID_REQUEST: 400, jsonrpc.INVALID_PARAMS: 400,
          HEADER_MISMATCH: 400, UNSUPPORTED_PROTOCOL_VERSION: 400, jsonrpc.METHOD_NOT_FOUND: 404}
SENTINEL = re.compile(r"=\?base64\?(.*)\?=")
EVENT = b"event: message\ndata: "


class Endpoint(Protocol):
    """What the 2025-11-25 endpoint (endpoint.py's McpEndpoint) lends this revision: its own paths for every call."""

    link: Link
    servers: tuple[str, ...]
    sessions: Any
    limits: Any
    streams: listening.StreamSlots

    def capabilities(self, server: str | None) -> dict[str, Any]: ...

    def catalog(self, session: str, check: Any = None, owner: str = "") -> Catalog: ...

    def request(self, catalog: Catalog, message: dict[str, Any], server: str | None,
                globs: Globs, owner: str = "", session: str = "") -> dict[str, Any]: ...

    def tool_call(self, message: jsonrpc.Message, server: str | None, owner: str, globs: Globs, session: str,
                  sse: bool, taken: Any, check: Any = None, rounds: dict[str, Any] | None = None) -> Answer: ...

    def asking_call(self, raw: dict[str, Any], server: str | None, owner: str, globs: Globs, session: str,
                    check: Any = None, rounds: dict[str, Any] | None = None
                    ) -> tuple[dict[str, Any], Iterator[dict[str, Any]] | None]: ...


def enveloped(message: jsonrpc.Message) -> bool:
    """A request of this revision by its body (its `_meta` names a revision), whatever its headers say."""
    meta = message.params.get("_meta")
    return isinstance(meta, dict) and VERSION_KEY in meta


def answer(endpoint: Endpoint, req: Request, message: jsonrpc.Message, server: str | None, owner: str,
           globs: Globs, taken: Any) -> Answer:
    """The answer to one POST of this revision (or of a revision the proxy does not speak: -32022)."""
    requested = req.headers.get(VERSION_HEADER, "").strip()
    if requested and requested not in VERSIONS:
        raise unsupported(requested, message.id)
    if message.is_notification:
        return Answer(b"", 202)
    held(req, message, server)
    method, raw = message.method, stripped(message.raw)
    if method == "server/discover":
        return json_answer(jsonrpc.result(raw["id"], discovered(endpoint, server)), method)
    if method == "subscriptions/listen":
        return listening.subscription(endpoint, req, raw, server, owner, globs)
    session = SESSION_PREFIX + secrets.token_hex(8)  # a name for this request's calls alone (cancelling them)
    again = connect_round(raw["params"]) if method in ROUNDS else None  # after a connect page: the call made anew
    if again is not None:
        raw = {**raw, "params": again[0]}
    elif method in ROUNDS and ("inputResponses" in raw["params"] or "requestState" in raw["params"]):
        return json_answer(resumed(endpoint, raw, server, owner, globs, session), method)
    capabilities = message.params["_meta"][CAPABILITIES_KEY]
    if method in ROUNDS and url_mode(capabilities) and (again is None or again[1]):
        page_by.set(lambda: BY_ROUND)  # a person not connected to a per_user server: sent to its page in a round
    asks = declared(capabilities) if method in ROUNDS else []
    rounds = {"asks": asks, "owner": owner, "name": tool_of(raw, server)} if asks else None
    if method in ("prompts/get", "resources/read"):  # the server may ask the client for input meanwhile
        return json_answer(endpoint.asking_call(raw, server, owner, globs, session, rounds=rounds)[0], method)
    if method == "tools/call":
        return tool_answer(endpoint, req, raw, server, owner, globs, session, taken, rounds)
    answer = endpoint.request(endpoint.catalog(session, owner=owner), raw, server, globs, owner)
    return json_answer(answer, method)


def held(req: Request, message: jsonrpc.Message, server: str | None) -> None:
    """A request of this revision, its envelope held against its headers, for a method served here (raises
    the error otherwise)."""
    if not message.is_request:
        raise jsonrpc.RpcError(jsonrpc.INVALID_REQUEST, "Invalid Request: POST one request or notification, "
                               "not a response.", message.id, status=400)
    checked(req, message)
    method = message.method
    if method not in SERVED or (method == "cot_proxy/servers" and server is not None):
        raise jsonrpc.RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found at {STATELESS_VERSIONS[-1]}: "
                               f"{str(method)[:80]}", message.id, status=404)
    if ("inputResponses" in message.params or "requestState" in message.params) and method not in ROUNDS:
        raise jsonrpc.RpcError(jsonrpc.INVALID_PARAMS, "The proxy asks its clients for input only during tool "
                               "calls, prompts and reads: inputResponses and requestState answer nothing here.",
                               message.id, status=400)


def tool_answer(endpoint: Endpoint, req: Request, raw: dict[str, Any], server: str | None, owner: str,
                globs: Globs, session: str, taken: Any, rounds: dict[str, Any] | None) -> Answer:
    """A tools/call's answer: whole, or its events as they come (SSE asked for) in this revision's shape."""
    sse = "text/event-stream" in req.headers.get("Accept", "").lower()
    called = endpoint.tool_call(jsonrpc.Message(raw), server, owner, globs, session, sse, taken, rounds=rounds)
    if called.is_streamed:  # a client cancels by closing the stream: its call is cancelled on its server
        called.response = reshaped_events(called.chunks, "tools/call",
                                          lambda: endpoint.link.cancel(session, raw["id"]))
        return called
    return json_answer(loads(called.get_data()), "tools/call")


def tool_of(message: dict[str, Any], server: str | None) -> str:
    """The tool, prompt or resource a call names, as the client named it and where (a round's next request must
    name the same)."""
    method = message["method"]
    return f"{server or ''}/{message['params'].get(NAMED[method])}" + ("" if method == "tools/call" else f" {method}")


def resumed(endpoint: Endpoint, raw: dict[str, Any], server: str | None, owner: str, globs: Globs,
            session: str) -> dict[str, Any]:
    """A tool call's next round: the client's inputResponses given to the requests its server made, and the
    call's answer or its next input_required result (client_requests.py's Rounds)."""
    params = raw["params"]
    state, responses = params.get("requestState"), params.get("inputResponses", {})
    catalog = endpoint.catalog(session, owner=owner)  # the key may still call it
    routed = catalog.target(server, raw, globs) if raw["method"] == "tools/call" else catalog.routed(server, raw, globs)
    if isinstance(routed, dict):
        return routed
    to, finish = (routed[0], None) if isinstance(routed, tuple) else (routed.server, routed.finish)
    if not isinstance(state, str) or not isinstance(responses, dict):
        raise jsonrpc.RpcError(jsonrpc.INVALID_PARAMS, "inputResponses (an object) come with the requestState the "
                               "proxy gave.", raw["id"], status=400)
    answer = endpoint.link.resume(state, owner, tool_of(raw, server), responses, raw, endpoint.limits.of(to).timeout)
    if answer is None:
        raise jsonrpc.RpcError(jsonrpc.INVALID_PARAMS, "Invalid or expired requestState.", raw["id"], status=400)
    return answer if finish is None else finish(answer)


def checked(req: Request, message: jsonrpc.Message) -> None:
    """The envelope read and held against the headers, in the specification's order (see the docstring)."""
    meta = message.params.get("_meta")
    if not isinstance(meta, dict) or VERSION_KEY not in meta or CAPABILITIES_KEY not in meta:
        raise jsonrpc.RpcError(jsonrpc.INVALID_PARAMS, f"params._meta must carry {VERSION_KEY!r} and "
                               f"{CAPABILITIES_KEY!r}.", message.id, status=400)
    if not isinstance(meta[CAPABILITIES_KEY], dict) or not isinstance(meta.get(CLIENT_INFO_KEY, {}), dict):
        raise jsonrpc.RpcError(jsonrpc.INVALID_PARAMS, "The client's capabilities and info in params._meta must be "
                               "objects.", message.id, status=400)
    if meta.get(LOG_LEVEL, LEVELS[0]) not in LEVELS:
        raise jsonrpc.RpcError(jsonrpc.INVALID_PARAMS, f"{LOG_LEVEL} in params._meta must be one of the "
                               f"specification's levels ({', '.join(LEVELS)}).", message.id, status=400)
    version, headers = meta[VERSION_KEY], req.headers
    if headers.get(VERSION_HEADER, "").strip() != version:
        raise mismatch("MCP-Protocol-Version", "the protocol version in params._meta", message.id)
    if headers.get(METHOD_HEADER, "").strip() != message.method:
        raise mismatch(METHOD_HEADER, "the method", message.id)
    field = NAMED.get(str(message.method))
    named = message.params.get(field) if field else None
    if named is not None and header_value(headers.get(NAME_HEADER)) != named:
        raise mismatch(NAME_HEADER, f"params.{field}", message.id)
    if version not in STATELESS_VERSIONS:
        raise unsupported(str(version), message.id)


def header_value(value: str | None) -> str | None:
    """A header's value as the client meant it: one that would not survive as a header is sent base64-encoded
    as `=?base64?…?=` (None: a malformed one, which then matches nothing)."""
    found = SENTINEL.fullmatch(value) if value is not None else None
    if found is None:
        return value.strip() if value is not None else None
    try:
        decoded = base64.b64decode(found.group(1), validate=True)
        if base64.b64encode(decoded).decode() != found.group(1):
            return None  # not the canonical encoding: a client's encoder never writes it
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def mismatch(header: str, what: str, id: jsonrpc.RequestId | None) -> jsonrpc.RpcError:
    return jsonrpc.RpcError(HEADER_MISMATCH, f"Header mismatch: {header} is missing or is not {what}.", id,
                            status=400)


def unsupported(requested: str, id: jsonrpc.RequestId | None) -> jsonrpc.RpcError:
    return jsonrpc.RpcError(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version.", id,
                            {"supported": list(VERSIONS), "requested": requested[:40]}, status=400)


def stripped(message: dict[str, Any]) -> dict[str, Any]:
    """The request as a 2025-11-25 server takes it: the envelope out of `_meta` (the progress token stays)."""
    params = message.get("params") or {}
    meta = {k: v for k, v in params.get("_meta", {}).items() if k not in ENVELOPE}
    params = {k: v for k, v in params.items() if k != "_meta"}
    return {**message, "params": {**params, "_meta": meta} if meta else params}


def discovered(endpoint: Endpoint, server: str | None) -> dict[str, Any]:
    """What the proxy is: the features it serves at this revision (list changes and resource updates through
    subscriptions/listen, when its workers hold streams), its name, and every revision it speaks."""
    own = endpoint.capabilities(server)
    served = ("tools", "prompts", "resources") + (("completions",) if server is not None else ())
    info = SERVER_INFO if server is None else {**SERVER_INFO, "name": f"cot_proxy/{server}"}
    changes = {} if endpoint.streams.most == 0 else {"tools": {"listChanged": True}, "prompts": {"listChanged": True},
                                                     "resources": {"listChanged": True, "subscribe": True}}
    return {"supportedVersions": list(VERSIONS), "capabilities": {k: changes.get(k, {}) for k in served if k in own},
            "_meta": {SERVER_INFO_KEY: info}}


def json_answer(body: dict[str, Any], method: str | None) -> Answer:
    body, status = shaped(body, method)
    return Answer(dumps(body), status, content_type="application/json")


def shaped(body: dict[str, Any], method: str | None) -> tuple[dict[str, Any], int]:
    """A 2025-11-25 answer as this revision gives it, and its HTTP status: a result says it is `complete`, a
    listing or read may be cached by this key alone and is stale at once (a key's globs, or a server's restart,
    change it); -32002 (resource not found) is retired and reads -32602."""
    error = body.get("error")
    if isinstance(error, dict):
        if error.get("code") == jsonrpc.RESOURCE_NOT_FOUND:
            body = {**body, "error": {**error, "code": jsonrpc.INVALID_PARAMS}}
        return body, STATUS.get(body["error"].get("code"), 200)
    result = body.get("result")
    if isinstance(result, dict):
        result.setdefault("resultType", "complete")
        if method in CACHEABLE:
            result["ttlMs"], result["cacheScope"] = 0, "private"
    return body, 200


def reshaped_events(events: Iterable[bytes], method: str, abandoned: Callable[[], object]) -> Iterator[bytes]:
    """A tool call's SSE stream with its last event (the answer) shaped as `shaped` says; the notifications
    before it pass as they are. A stream closed before its answer (the client left) is `abandoned`."""
    source, answered = iter(events), False
    try:
        for event in source:
            sent = loads(event[len(EVENT):].strip()) if event.startswith(EVENT) else None
            if isinstance(sent, dict) and "method" not in sent:
                event, answered = EVENT + dumps(shaped(sent, method)[0]) + b"\n\n", True
            yield event
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # the call's own stream ends now (a budget hold released)
        if not answered:
            abandoned()
