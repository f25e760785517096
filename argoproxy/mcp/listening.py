"""The streams a client listens on for what the servers send unasked (list changes, resource updates, log
messages): a 2025-11-25 session's GET stream and 2026-07-28's `subscriptions/listen`, each an SSE stream fed by a
listen connection to the supervisor (link.py; the fan-out is notices.py's), and the session requests that shape
them (resources/subscribe and unsubscribe, logging/setLevel), held by the supervisor.

A stream is held until its client leaves, its session ends (DELETE; with Redis's sessions also expiry or being pushed
out by its key's newer ones, seen within about 10 s), its team key is revoked (key_watch.py, as a
tool call's stream), or the proxy stops; a comment every 10 s keeps it alive through proxies. The supervisor
bounds the streams per key and per instance (429); a worker that gives a thread to each stream (gthread) holds at
most a quarter of its threads in them, and a sync worker, whose one stream would hold the worker, offers none (a
GET is 405, as the specification allows a server that offers no stream). A gevent worker told to stop (SIGTERM: a
reload or the proxy's stop) ends its streams at once, where they would hold it until graceful_timeout: their
clients listen again, on another worker."""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from typing import Any, Callable, Iterator, Protocol

from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.keepalive import has_left, watch_departure
from argoproxy.jsonfast import dumps
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.key_watch import KEY_REFUSED, KeyWatch, KeyWithdrawn, watched
from argoproxy.mcp.limits import LIMITED
from argoproxy.mcp.link import Link, Listening, ListenRefused
from argoproxy.mcp.catalog import Catalog, Globs, not_allowed
from argoproxy.mcp.names import server_uri
from argoproxy.mcp.protocol import HANDSHAKE_VERSIONS
from argoproxy.turns import under_gevent

log = logging.getLogger("cot_proxy")

KEEPALIVE = b": keep-alive\n\n"
EVENT = b"event: message\ndata: "
SESSION_METHODS = frozenset({"resources/subscribe", "resources/unsubscribe", "logging/setLevel"})
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
FLAGS = {"toolsListChanged": "notifications/tools/list_changed",
         "promptsListChanged": "notifications/prompts/list_changed",
         "resourcesListChanged": "notifications/resources/list_changed"}
MAX_URIS = 256  # a listen request's resource subscriptions at most (notices.py's bound)
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ALIVE_EVERY = 10.0  # seconds between asks whether a shared session still is, while notifications flow


class StreamSlots:
    """The streams this worker holds at once: None, unbounded (gevent: a stream holds no thread); 0, none."""

    def __init__(self, most: int | None) -> None:
        self.most, self.held, self.lock = most, 0, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.most is not None and self.held >= self.most:
                return False
            self.held += 1
            return True

    def give(self) -> None:
        with self.lock:
            self.held -= 1


HELD: set[Listening] = set()  # this worker's open streams' connections, ended when it is told to stop
CHAINED: list[bool] = []


def held(opened: Listening) -> None:
    """The stream is this worker's until it ends; the first chains the worker's SIGTERM handler (Gunicorn's) with
    one that ends them all (only from the main thread, where signals are handled: any of gevent's greenlets)."""
    HELD.add(opened)
    if not CHAINED and (under_gevent() or threading.current_thread() is threading.main_thread()):
        CHAINED.append(True)
        previous = signal.getsignal(signal.SIGTERM)
        if callable(previous):
            def stop(signum: int, frame: Any) -> None:
                for stream in list(HELD):
                    stream.shutdown()
                previous(signum, frame)
            signal.signal(signal.SIGTERM, stop)


def room_for(worker_class: str, threads: int) -> StreamSlots:
    return StreamSlots(None if worker_class == "gevent" else 0 if worker_class == "sync" else max(1, threads // 4))


class StreamsEndpoint(Protocol):
    """What the endpoint (endpoint.py's McpEndpoint) lends: its link, its sessions, its limits (the team keys)."""

    link: Link
    servers: tuple[str, ...]
    sessions: Any
    limits: Any
    streams: StreamSlots

    def catalog(self, session: str, check: Any = None, owner: str = "") -> Catalog: ...


# ------------------------------------------------------------ 2025-11-25: a session's GET stream
def session_stream(endpoint: StreamsEndpoint, req: Request, server: str | None, owner: str,
                   globs: Globs = ()) -> Answer:
    if endpoint.streams.most == 0:
        return Answer(b"", 405, {"Allow": "POST, DELETE"})
    if "text/event-stream" not in req.headers.get("Accept", "").lower():
        return refusal(406, jsonrpc.INVALID_REQUEST, "A GET of /mcp opens an event stream: its Accept header must "
                       "allow text/event-stream.")
    version = req.headers.get("Mcp-Protocol-Version", "").strip()
    if version and version not in HANDSHAKE_VERSIONS:
        return refusal(400, jsonrpc.INVALID_REQUEST, f"Unsupported MCP-Protocol-Version: {version[:40]}")
    session = req.headers.get("Mcp-Session-Id", "").strip()
    if not session:
        return refusal(400, jsonrpc.INVALID_REQUEST, "Missing Mcp-Session-Id: send initialize first.")
    if endpoint.sessions.version(session, owner) is None:
        return refusal(404, jsonrpc.INVALID_REQUEST, "Unknown or ended session: initialize again.")
    opened = opened_stream(endpoint, {"session": session, "owner": owner, "server": server,
                                      "heard": heard(endpoint, globs, session, owner, server)})
    if isinstance(opened, Answer):
        return opened
    notes = relayed(endpoint, req, opened)
    sessions = endpoint.sessions
    alive = None if sessions.checked_by_calls else lambda: sessions.alive(session)  # Redis's: asked
    return Answer(session_events(notes, opened, endpoint.streams, owner, alive), 200, STREAM_HEADERS,
                  content_type="text/event-stream")


def session_events(notes: Iterator[dict[str, Any] | KeyWithdrawn], opened: Listening, room: StreamSlots,
                   owner: str, alive: Callable[[], bool] | None = None) -> Iterator[bytes]:
    """The GET stream's events; `alive`, asked at each keep-alive and every ALIVE_EVERY seconds of notifications:
    whether its session is still held where the supervisor cannot see it go (Redis's, expired or pushed out)."""
    asked = time.monotonic()
    try:
        yield KEEPALIVE  # the head goes now: the client knows its stream is open
        for sent in notes:
            if isinstance(sent, KeyWithdrawn):
                log.info("mcp: %s's key was refused while it listened (%s): its stream ended", owner, sent)
                return
            if alive is not None and (not sent or time.monotonic() - asked >= ALIVE_EVERY):
                asked = time.monotonic()
                if not alive():
                    log.info("mcp: a session of %s's is gone from the shared store: its stream ended", owner)
                    return
            yield EVENT + dumps(sent) + b"\n\n" if sent else KEEPALIVE
    finally:
        close(notes)
        opened.close()
        HELD.discard(opened)
        room.give()


def session_request(endpoint: StreamsEndpoint, session: str, message: dict[str, Any], server: str | None,
                    owner: str = "", globs: Globs = ()) -> dict[str, Any]:
    """resources/subscribe, resources/unsubscribe or logging/setLevel of a session: held by the supervisor, for a
    server the key reaches (catalog.py's `reaches`; at /mcp a key hears only those: `heard`)."""
    method, params, id = message["method"], message.get("params") or {}, message["id"]
    catalog = endpoint.catalog(session, owner=owner)
    if server is not None and not catalog.reaches(server, globs):
        return not_allowed(id, f"{server}'s {method}", "")
    if method == "logging/setLevel":  # at /mcp, a key narrowed by tool globs sets the servers it reaches alone
        reached = heard(endpoint, globs, session, owner, server) if server is None else None
        told = endpoint.link.tell({"op": "level", "session": session, "server": server, "level": params.get("level"),
                                   **({"heard": reached} if reached is not None else {})})
        if "error" in told:
            return jsonrpc.error(id, jsonrpc.INVALID_PARAMS, "params.level must be one of the specification's "
                                 "levels (debug, info, notice, warning, error, critical, alert, emergency).")
        return jsonrpc.result(id, {})
    uri = params.get("uri")
    owned = owner_of_uri(endpoint, uri, server) if isinstance(uri, str) else None
    if owned is None:
        return jsonrpc.error(id, jsonrpc.INVALID_PARAMS, "Unknown resource", {"uri": uri})
    if not catalog.reaches(owned[0], globs):
        return not_allowed(id, str(uri), "Resource")
    sent = {**message, "params": {**params, "uri": owned[1]}}
    told = endpoint.link.tell({"op": method.partition("/")[2], "session": session, "server": owned[0],
                               "message": sent})
    answer = told.get("message")
    if not isinstance(answer, dict):
        return jsonrpc.error(id, jsonrpc.INVALID_PARAMS, "Unknown resource", {"uri": uri})
    return {**answer, "id": id}


def owner_of_uri(endpoint: StreamsEndpoint, uri: str, server: str | None) -> tuple[str, str] | None:
    """(server, its own URI) of a URI as the client knows it: under the server's name at /mcp."""
    if server is not None:
        return server, uri
    owned = server_uri(uri)
    return owned if owned is not None and owned[0] in endpoint.servers else None


# ------------------------------------------------------------ 2026-07-28: subscriptions/listen
def subscription(endpoint: StreamsEndpoint, req: Request, message: dict[str, Any], server: str | None,
                 owner: str, globs: Globs = ()) -> Answer:
    """The listen request's stream: the acknowledgement (the filter honored) first, then each notification it
    asked for, stamped with the request's id; its result last when the proxy ends it (a graceful close)."""
    id = message["id"]
    if "text/event-stream" not in req.headers.get("Accept", "").lower():
        return refusal(406, jsonrpc.INVALID_REQUEST, "subscriptions/listen answers an event stream: the Accept "
                       "header must allow text/event-stream.", id)
    asked = (message.get("params") or {}).get("notifications")
    uris = asked.get("resourceSubscriptions", []) if isinstance(asked, dict) else None
    if not isinstance(asked, dict) or not isinstance(uris, list) or not all(isinstance(u, str) for u in uris) \
            or len(uris) > MAX_URIS:
        return refusal(400, jsonrpc.INVALID_PARAMS, f"params.notifications must be an object; its "
                       f"resourceSubscriptions at most {MAX_URIS} URIs.", id)
    honored: dict[str, Any] = {flag: True for flag in FLAGS if asked.get(flag) is True}
    session = "stateless:" + secrets.token_hex(8)
    servers = heard(endpoint, globs, session, owner, server)
    owned = {uri: found for uri in uris if (found := owner_of_uri(endpoint, uri, server)) is not None
             and (servers is None or found[0] in servers)}
    if owned:
        honored["resourceSubscriptions"] = list(owned)
    kinds = [FLAGS[flag] for flag in honored if flag in FLAGS] + (["notifications/resources/updated"] if owned else [])
    opened = opened_stream(endpoint, {"session": session, "owner": owner, "heard": servers,
                                      "server": server, "kinds": kinds, "uris": list(owned.values())}, id)
    if isinstance(opened, Answer):
        return opened
    meta = {SUBSCRIPTION_ID: id}
    first = {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
             "params": {"notifications": honored, "_meta": meta}}
    return Answer(listen_events(relayed(endpoint, req, opened), opened, endpoint.streams, id, first), 200,
                  STREAM_HEADERS, content_type="text/event-stream")


def listen_events(notes: Iterator[dict[str, Any] | KeyWithdrawn], opened: Listening, room: StreamSlots, id: Any,
                  first: dict[str, Any]) -> Iterator[bytes]:
    meta = {SUBSCRIPTION_ID: id}
    try:
        yield EVENT + dumps(first) + b"\n\n"
        for sent in notes:
            if isinstance(sent, KeyWithdrawn):
                yield EVENT + dumps(jsonrpc.error(id, KEY_REFUSED, f"{sent} The subscription ended.")) + b"\n\n"
                return
            if not sent:
                yield KEEPALIVE
                continue
            params = sent.get("params") or {}
            yield EVENT + dumps({**sent, "params": {**params, "_meta": meta}}) + b"\n\n"
        if opened.graceful:  # the proxy ended it (not a broken connection): the revision's graceful close
            yield EVENT + dumps(jsonrpc.result(id, {"_meta": meta, "resultType": "complete"})) + b"\n\n"
    finally:
        close(notes)
        opened.close()
        HELD.discard(opened)
        room.give()


# ------------------------------------------------------------ both
def heard(endpoint: StreamsEndpoint, globs: Globs, session: str, owner: str, scope: str | None) -> list[str] | None:
    """The servers a key narrowed by tool globs hears on its stream: those whose tools, listed as the stream opens,
    its globs allow at least one of (the proxy's and keys without globs: None, every server)."""
    if not globs:
        return None
    catalog = endpoint.catalog(session, owner=owner)
    return [server for server in (endpoint.servers if scope is None else (scope,)) if catalog.reaches(server, globs)]


def opened_stream(endpoint: StreamsEndpoint, request: dict[str, Any], id: Any = None) -> Listening | Answer:
    """A listen connection to the supervisor, with room for it in this worker; or the answer saying why not."""
    if not endpoint.streams.take():
        return refusal(429, LIMITED, "This worker holds as many notification streams as it may.", id)
    try:
        opened = endpoint.link.listen(request)
        held(opened)
        return opened
    except ListenRefused as why:
        endpoint.streams.give()
        return refusal(429, LIMITED, str(why), id)
    except BaseException:
        endpoint.streams.give()
        raise


def relayed(endpoint: StreamsEndpoint, req: Request, opened: Listening) -> Iterator[dict[str, Any] | KeyWithdrawn]:
    """The notifications, watched while a team key sends them: a revoked key's stream ends within a second; and
    until the client leaves."""
    keys = endpoint.limits.keys if req.team_key is not None else None
    notes = opened.notes() if keys is None else watched(opened.notes(), KeyWatch(keys, req.presented_keys))
    client = getattr(req.server_write, "client", None)  # its socket, under Gunicorn
    return notes if client is None else until_left(notes, client, opened)


def until_left(notes: Iterator[dict[str, Any] | KeyWithdrawn], client: Any,
               opened: Listening) -> Iterator[dict[str, Any] | KeyWithdrawn]:
    """The notifications until the client closes its connection. A stream whose client left held its key's slot
    (MCP_STREAMS_PER_KEY) until a write failed, about 25 s: the first write after a close still succeeds. Under
    gevent the socket is watched, and the listen connection shut down at once; with threads it is looked at with
    each keep-alive (10 s)."""
    stop = watch_departure(client, opened.shutdown)
    try:
        for sent in notes:
            if not sent and stop is None and has_left(client):
                return
            yield sent
    finally:
        if stop is not None:
            stop()
        close(notes)


def close(stream: Any) -> None:
    closing = getattr(stream, "close", None)
    if closing is not None:
        closing()


def refusal(status: int, code: int, message: str, id: Any = None) -> Answer:
    return Answer(dumps(jsonrpc.error(id, code, message)), status, content_type="application/json")
