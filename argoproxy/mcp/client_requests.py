"""Requests a server makes of its client while it runs a client's call (a tool call, a prompt, a resource read:
sampling/createMessage, elicitation/create, roots/list), taken to that call's client, and the client's answers taken back to the server under its own id.

Which call a server's request belongs to:
- a remote Streamable HTTP server sends it on the call's own POST stream: it is that call's;
- a stdio server's pipe (and the older HTTP+SSE transport's one event stream) carries no association: it is the
  call's when exactly one call is in flight on that server, and refused when several are (a request of a shared
  process could be any of theirs; a `per_session: true` server's process runs one session's calls) or none is.

It reaches the client only when the client declared the capability (`sampling`, `elicitation`, `roots`: at
initialize at 2025-11-25, in each request's `_meta` at 2026-07-28); other requests, and those that belong to no
call, get the MCP error (-32601) back at once, and a `ping` is answered here.

At 2025-11-25 the request goes to the client on the call's SSE stream (its answer becomes a stream when the first
such request comes) under an id of the proxy's, unguessable and held for the call's session alone; the client POSTs
its response with its Mcp-Session-Id, and the supervisor gives it to the server under the server's own id. A
response of another session (or key), to an unknown id, to one answered already, or after the call ended is
refused, and nothing of it reaches the server. A call that ends with requests unanswered (its deadline passed:
the client never answered) tells the server so for each.

At 2026-07-28 (multi round-trip requests: Rounds) the call's answer is an `input_required` result holding the
server's requests (`inputRequests`, keyed by the proxy's ids) and a `requestState` of the proxy's (unguessable,
held for the key that made the call, the tool it named, and the call's deadline); the client makes the request
again with `inputResponses` and that `requestState`, and the proxy gives the responses to the server's requests,
which waited meanwhile, and answers with what comes next: the call's result, or another round.

Runs in the supervisor (argoproxy/mcp/supervisor.py): plain threads, no gevent."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from typing import Any, Callable, Protocol

from argoproxy.mcp import jsonrpc

log = logging.getLogger("cot_proxy")

# The server's requests a client may be asked, by the capability that says it takes them.
METHODS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
CAPABILITIES = frozenset(METHODS.values())
# What the proxy declares to its servers at initialize: it relays these to its clients that declared them. Roots is
# not declared: servers ask for roots when they start, outside any client's call (one asking during a call is
# relayed all the same).
OFFERED: dict[str, Any] = {"sampling": {}, "elicitation": {}}
ID_PREFIX = "cot_proxy-ask-"
MAX_OPEN = 32  # one call's requests waiting for its client at once (more are refused)
STATE_GRACE = 5.0  # seconds a finished round's call is kept past its deadline for the client's next request


class WaitingCall(Protocol):
    """A call waiting for its server's answer (stdio_server.py's Pending)."""

    session: str
    asks: frozenset[str]  # what its client may be asked
    asked: set[str]  # the proxy's ids of its server's requests waiting for the client
    events: queue.Queue[tuple[str, dict[str, Any]]]


URL_MODE = "elicitation.url"  # kept among a session's asks: its client takes URL-mode elicitation (person_tokens.py)


def declared(capabilities: Any) -> list[str]:
    """The capabilities of a client's (initialize's, or a 2026-07-28 request's `_meta`) that let it be asked."""
    return sorted(k for k in capabilities if k in CAPABILITIES) if isinstance(capabilities, dict) else []


def url_mode(capabilities: Any) -> bool:
    """The client takes URL-mode elicitation (`elicitation: {url: {}}`; an empty `elicitation` is form mode)."""
    elicitation = capabilities.get("elicitation") if isinstance(capabilities, dict) else None
    return isinstance(elicitation, dict) and isinstance(elicitation.get("url"), dict)


class ServerAsk:
    __slots__ = ("server_id", "call")

    def __init__(self, server_id: jsonrpc.RequestId, call: WaitingCall) -> None:
        self.server_id, self.call = server_id, call


class ClientRequests:
    """One server's requests waiting for a client's answer, by the proxy's id for them."""

    def __init__(self, name: str, write: Callable[[dict[str, Any]], bool]) -> None:
        self.name = name
        self.write = write
        self.lock = threading.Lock()
        self.open: dict[str, ServerAsk] = {}

    def received(self, message: dict[str, Any], call: WaitingCall | None, why: str) -> None:
        """A request the server made: to `call`'s client, or refused (`why`: why it belongs to no call)."""
        method, server_id = message.get("method"), message["id"]
        if method == "ping":
            self.write(jsonrpc.result(server_id, {}))
            return
        capability = METHODS.get(str(method))
        if call is None or capability is None or capability not in call.asks:
            why = why if call is None else f"the client did not declare the {capability} capability" \
                if capability else f"the proxy relays no {str(method)[:60]} to its clients"
            self.write(jsonrpc.error(server_id, jsonrpc.METHOD_NOT_FOUND, f"Not relayed: {why}."))
            return
        params = message.get("params")
        with self.lock:
            if len(call.asked) >= MAX_OPEN:
                token = ""
            else:
                token = ID_PREFIX + secrets.token_urlsafe(24)
                self.open[token] = ServerAsk(server_id, call)
                call.asked.add(token)
        if not token:
            self.write(jsonrpc.error(server_id, jsonrpc.INVALID_REQUEST, f"Not relayed: {MAX_OPEN} requests of "
                                     "this call already wait for its client."))
            return
        call.events.put(("ask", {"jsonrpc": "2.0", "id": token, "method": method,
                                 "params": params if isinstance(params, dict) else {}}))

    def answered(self, session: str, message: dict[str, Any]) -> bool:
        """The client's response, given to the server under its own id; False (nothing sent) when it answers no
        request of this session's call waiting now."""
        given = message.get("id")
        token = given if isinstance(given, str) else ""
        with self.lock:
            asked = self.open.get(token)
            if asked is None or not session or asked.call.session != session:
                return False
            del self.open[token]
            asked.call.asked.discard(token)
        return self.write(response(asked.server_id, message))

    def ended(self, call: WaitingCall) -> None:
        """The call ended with requests of it unanswered: the server hears that no answer will come."""
        with self.lock:
            waiting = [self.open.pop(t) for t in call.asked if t in self.open]
            call.asked.clear()
        for asked in waiting:
            self.write(jsonrpc.error(asked.server_id, jsonrpc.REQUEST_TIMEOUT,
                                     "The client did not answer before its call ended."))


def proxy_id(message: dict[str, Any]) -> bool:
    """Whether the response answers an id of the proxy's (perhaps another replica's: replicas.py)."""
    given = message.get("id")
    return isinstance(given, str) and given.startswith(ID_PREFIX)


def response(server_id: jsonrpc.RequestId, message: dict[str, Any]) -> dict[str, Any]:
    """The client's answer as the server gets it: its result or its error (code, message, data), nothing else."""
    result = message.get("result")
    if isinstance(result, dict):
        return jsonrpc.result(server_id, result)
    error = message.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), int) and not isinstance(error.get("code"), bool):
        return jsonrpc.error(server_id, error["code"], str(error.get("message", ""))[:1000], error.get("data"))
    return jsonrpc.error(server_id, jsonrpc.INTERNAL_ERROR, "The client's answer held no result.")


# ---------------------------------------------------------------- 2026-07-28: multi round-trip requests

Note = Callable[[dict[str, Any]], None]
Call = Callable[..., dict[str, Any]]  # a server's call (StdioServer.call's keywords: on_note, session, asks, on_ask)
Answered = Callable[[str, dict[str, Any]], bool]  # a server's way to its requests' answers (ClientRequests.answered)


class Parked:
    """A call whose client was asked for input, waiting for the client's next request (or running meanwhile)."""

    __slots__ = ("answered", "owner", "name", "session", "deadline", "events")

    def __init__(self, answered: Answered, owner: str, name: str, session: str, deadline: float) -> None:
        self.answered, self.owner, self.name, self.session, self.deadline = answered, owner, name, session, deadline
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()


class Rounds:
    """The calls of 2026-07-28 clients whose servers asked for input, by the `requestState` the client was given."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parked: dict[str, Parked] = {}

    def first(self, call: Call, answered: Answered, message: dict[str, Any], timeout: float, session: str,
              rounds: dict[str, Any], on_note: Note | None) -> dict[str, Any]:
        """The call made (`call`, its server's; `answered`, where its requests' answers go): its answer, or its
        first round's `input_required` result. The call runs on a thread of its own, which outlives this answer
        when the server waits for the client's input."""
        parked = Parked(answered, str(rounds.get("owner", "")), str(rounds.get("name", "")), session,
                        time.monotonic() + timeout)
        asks = frozenset(declared(dict.fromkeys(rounds.get("asks") or ())))
        events = parked.events

        def run() -> None:
            answer = call(message, timeout, on_note=lambda note: events.put(("note", note)), session=session,
                          asks=asks, on_ask=lambda ask: events.put(("ask", ask)))
            events.put(("answer", answer))

        threading.Thread(target=run, name="mcp-round", daemon=True).start()
        return self.next(parked, message.get("id"), on_note)

    def resume(self, state: Any, owner: str, name: str, responses: Any, request_id: Any,
               on_note: Note | None) -> dict[str, Any] | None:
        """The client's next request of a call: its responses given to the server, then what comes next; None when
        `state` is no call's waiting for this key (unknown, another key's, another tool's, or its deadline past)."""
        with self.lock:
            self._trim()
            parked = self.parked.get(state) if isinstance(state, str) else None
            if parked is None or parked.owner != owner or parked.name != name:
                return None
            del self.parked[state]  # each state is good for one next request
        for token, result in (responses.items() if isinstance(responses, dict) else ()):
            if isinstance(result, dict):
                parked.answered(parked.session, {"id": token, "result": result})
        return self.next(parked, request_id, on_note)

    def next(self, parked: Parked, request_id: Any, on_note: Note | None) -> dict[str, Any]:
        """The call's answer (under this request's id), or the requests it waits on now as an input_required
        result, whose state is kept for the client's next request."""
        asked: dict[str, Any] = {}
        while True:
            try:
                if asked:
                    kind, message = parked.events.get_nowait()  # the requests made together go together
                else:
                    kind, message = parked.events.get(timeout=max(0.0, parked.deadline + 1.0 - time.monotonic()))
            except queue.Empty:
                break
            if kind == "answer":
                return {**message, "id": request_id}
            if kind == "ask":
                asked[message["id"]] = {"method": message["method"], "params": message["params"]}
            elif on_note is not None:
                on_note(message)
        if not asked:
            return jsonrpc.error(request_id, jsonrpc.REQUEST_TIMEOUT, "The call did not end within its deadline.")
        state = secrets.token_urlsafe(32)
        with self.lock:
            self._trim()
            self.parked[state] = parked
        return jsonrpc.result(request_id, {"resultType": "input_required", "inputRequests": asked,
                                           "requestState": state})

    def _trim(self) -> None:
        now = time.monotonic()
        for state in [s for s, p in self.parked.items() if p.deadline + STATE_GRACE < now]:
            del self.parked[state]
