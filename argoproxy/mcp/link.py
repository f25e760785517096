"""A worker's way to the supervisor (argoproxy/mcp/supervisor.py): a Unix-socket connection per call at once
(kept open for the next), one JSON line each way. Under gevent the socket is gevent's, so a call waiting for a server holds no worker."""

from __future__ import annotations

import socket
from typing import Any, BinaryIO, Callable, Iterator

from argoproxy.jsonfast import dumps, loads
from argoproxy.mcp import jsonrpc

MAX_ANSWER = 64 * 1024 * 1024
MARGIN = 5.0  # seconds the link waits past the call's own deadline (the supervisor answers the timeout)
MAX_IDLE = 16  # connections a worker keeps open to the supervisor between calls
LISTEN_SILENCE = 30.0  # a listen connection silent this long is lost (the supervisor writes every 10 s at least)


class SupervisorGone(Exception):
    """The supervisor cannot be reached (the proxy is stopping, or it died)."""


class SessionRefused(Exception):
    """The supervisor holds no such session of the call's owner (unknown, ended, or another key's)."""


class ListenRefused(Exception):
    """The supervisor holds no more listeners (of this key, or of the instance): why, as its client is told."""


class Listening:
    """A listen op's own connection (supervisor.py): the notifications as they come, until the supervisor ends
    the listener (`graceful`: the proxy stops, the session ended) or the connection breaks."""

    def __init__(self, sock: socket.socket, lines: BinaryIO) -> None:
        self.sock, self.lines = sock, lines
        self.graceful = False
        self.why = "The proxy's MCP servers cannot be reached now."

    def notes(self) -> Iterator[dict[str, Any]]:
        """Each notification, and {} for each keep-alive (a comment on the client's stream)."""
        try:
            for line in iter(lambda: self.lines.readline(MAX_ANSWER), b""):
                value = loads(line)
                if isinstance(value, dict) and isinstance(value.get("note"), dict):
                    yield value["note"]
                elif isinstance(value, dict) and value.get("alive"):
                    yield {}
                else:
                    self.graceful = isinstance(value, dict) and "end" in value
                    self.why = str(value.get("end") or self.why) if isinstance(value, dict) else self.why
                    return
        except (OSError, ValueError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.shutdown()  # a reader elsewhere (key_watch.py's helper) wakes to the connection's end
        try:
            self.lines.close()
        except RuntimeError:  # that reader is still in its read: its own close (`notes`'s end) comes after
            pass
        self.sock.close()

    def shutdown(self) -> None:
        """Ends `notes` from anywhere (its read returns the connection's end), without waiting for it."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Link:
    def __init__(self, path: str) -> None:
        self.path = path
        # Connections kept open between calls: a connection (and the supervisor's thread for it) made for each
        # call cost more than the call's own work. One holding a call's answer late (its deadline passed) is closed.
        self.idle: list[tuple[socket.socket, BinaryIO]] = []
        # A per-person server's call carries its person and their token, or is refused here (person_tokens.py).
        self.person_fields: Callable[[str, dict[str, Any]], dict[str, Any]] = lambda server, message: {}

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        data = dumps(request) + b"\n"
        line = b""
        if self.idle:  # a kept connection the supervisor closed (it restarted) answers nothing: a new one is made
            line = self._exchange(self.idle.pop(), data, timeout)
        if not line:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                raise SupervisorGone(str(exc)) from None
            line = self._exchange((sock, sock.makefile("rb")), data, timeout)
        try:
            value = loads(line)
        except ValueError:
            raise SupervisorGone("no answer") from None
        if not isinstance(value, dict):
            raise SupervisorGone("no answer")
        return value

    def _exchange(self, conn: tuple[socket.socket, BinaryIO], data: bytes, timeout: float) -> bytes:
        """One request and its answer's line on a connection, kept for the next call when it went well; b"" when the
        connection was found closed (a kept one the supervisor closed: the request is sent again on a new one)."""
        line = self._first(conn, data, timeout)
        self._done(conn, line.endswith(b"\n"))
        return line

    def _first(self, conn: tuple[socket.socket, BinaryIO], data: bytes, timeout: float) -> bytes:
        """A request sent and the first line of its answer read; b"" when the connection was found closed."""
        sock, lines = conn
        try:
            sock.settimeout(timeout)
            sock.sendall(data)
            return lines.readline(MAX_ANSWER)
        except TimeoutError:  # the request was taken and may be running: never sent again on another connection
            lines.close()
            sock.close()
            raise SupervisorGone(f"no answer within {timeout:g}s") from None
        except OSError:
            return b""

    def _done(self, conn: tuple[socket.socket, BinaryIO], keep: bool) -> None:
        if keep and len(self.idle) < MAX_IDLE:
            self.idle.append(conn)
        else:
            conn[1].close()
            conn[0].close()

    def _opened(self, request: dict[str, Any], timeout: float) -> tuple[tuple[socket.socket, BinaryIO], dict[str, Any]]:
        """A request sent on a kept connection (or a new one), and the first line of its answer read: the answer,
        or a request for its client ({"ask": ...}) after which more lines come on the same connection."""
        data = dumps(request) + b"\n"
        line = b""
        if self.idle:
            conn = self.idle.pop()
            line = self._first(conn, data, timeout)
            if not line:
                self._done(conn, False)
        if not line:
            conn = self._connect(timeout)
            line = self._first(conn, data, timeout)
        try:
            value = loads(line) if line.endswith(b"\n") else None
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self._done(conn, False)
            raise SupervisorGone("no answer")
        return conn, value

    def _more(self, conn: tuple[socket.socket, BinaryIO], server: str, message: dict[str, Any], session: str,
              owner: str | None) -> Iterator[dict[str, Any]]:
        """The lines after a request for the client: more such requests, then the call's answer (the connection
        kept again once it is read, closed if the reader stops first)."""
        kept = False
        try:
            for line in iter(lambda: conn[1].readline(MAX_ANSWER), b""):
                value = loads(line)
                if not isinstance(value, dict):
                    break
                if isinstance(value.get("ask"), dict):
                    yield value["ask"]
                    continue
                self._done(conn, line.endswith(b"\n"))
                kept = True
                yield self._result(value, server, message, session, owner)
                return
        except (OSError, ValueError):
            pass
        finally:
            if not kept:
                self._done(conn, False)
        yield jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE, "The proxy's MCP servers cannot be reached now.")

    def _connect(self, timeout: float) -> tuple[socket.socket, BinaryIO]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise SupervisorGone(str(exc)) from None
        return sock, sock.makefile("rb")

    def call(self, server: str, message: dict[str, Any], timeout: float, session: str = "",
             owner: str | None = None, key: str = "") -> dict[str, Any]:
        """The server's answer to a request (under the request's own id), or the JSON-RPC error saying why not.

        With `owner`, the call is made only in that owner's session, which the supervisor checks on the same trip
        (a request's call is its session check): SessionRefused when the session is not theirs, or not held, and
        SupervisorGone when the supervisor cannot be asked. `key`: whose the call is, unchecked (a per_session
        server's process is chosen by it and the session: per_session.py)."""
        request = {"op": "call", "server": server, "message": message, "timeout": timeout, "session": session}
        person = self.person_fields(server, message)
        if "refused" in person:
            return dict(person["refused"])
        request.update(person)
        if owner is not None:
            request["owner"] = owner
        elif key:
            request["key"] = key
        try:
            answer = self.ask(request, timeout + MARGIN)
        except SupervisorGone:
            if owner is not None:
                raise
            return jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE,
                                 "The proxy's MCP servers cannot be reached now.")
        return self._result(answer, server, message, session, owner)

    def relaying(self, server: str, message: dict[str, Any], timeout: float, session: str = "",
                 owner: str | None = None, key: str = "", relay: dict[str, Any] | None = None
                 ) -> tuple[dict[str, Any], Iterator[dict[str, Any]] | None]:
        """`call`'s answer and None; or, when the server asks the client something during the call
        (client_requests.py), that request (a method and an id of the proxy's) and the rest as they come: more
        requests, then the answer. `relay`: the op's fields that say what the client may be asked ({"relay": true,
        "asks": [...]}: without "asks", what its session declared at initialize, which the supervisor holds;
        {"rounds": {...}}: 2026-07-28's input_required)."""
        request: dict[str, Any] = {"op": "call", "server": server, "message": message, "timeout": timeout,
                                   "session": session, **(relay or {"relay": True})}
        person = self.person_fields(server, message)
        if "refused" in person:
            return dict(person["refused"]), None
        request.update(person)
        if owner is not None:
            request["owner"] = owner
        elif key:
            request["key"] = key
        try:
            conn, value = self._opened(request, timeout + MARGIN)
        except SupervisorGone:
            if owner is not None:
                raise
            return jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE,
                                 "The proxy's MCP servers cannot be reached now."), None
        if isinstance(value.get("ask"), dict):  # the session was checked before the call began: no more to see
            return value["ask"], self._more(conn, server, message, session, None)
        self._done(conn, True)
        return self._result(value, server, message, session, owner), None

    def _result(self, answer: dict[str, Any], server: str, message: dict[str, Any], session: str,
                owner: str | None) -> dict[str, Any]:
        if owner is not None and answer.get("session") != "checked":
            # refused; or a supervisor that did not check it (one of older code, kept across a reload): asked apart
            if answer.get("session") == "refused" or not self.session("get", id=session, owner=owner):
                raise SessionRefused(session)
        result = answer.get("message")
        if not isinstance(result, dict):
            return jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE, f"No MCP server {server!r}.")
        return result

    def stream(self, server: str, message: dict[str, Any], timeout: float, session: str = "", key: str = "",
               relay: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The server's progress notifications for a request, then its answer (or the error saying why none).
        `relay`: the call op's fields that relay the server's requests of the client (`relaying`'s "relay" and "asks",
        or 2026-07-28's "rounds"): those requests come among the notifications. Whose the call is, is read now (a
        per-person server's), not when the stream is first read."""
        person = self.person_fields(server, message)
        if "refused" in person:
            return iter([dict(person["refused"])])
        return self._stream(server, message, timeout, session, key, relay, person)

    def _stream(self, server: str, message: dict[str, Any], timeout: float, session: str, key: str,
                relay: dict[str, Any] | None, person: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout + MARGIN)
                sock.connect(self.path)
                sock.sendall(dumps({"op": "call", "server": server, "message": message, "timeout": timeout,
                                    "notes": True, "session": session, "key": key, **(relay or {}), **person})
                             + b"\n")
                with sock.makefile("rb") as lines:
                    for line in iter(lambda: lines.readline(MAX_ANSWER), b""):
                        value = loads(line)
                        if isinstance(value, dict) and isinstance(value.get("note") or value.get("ask"), dict):
                            yield value.get("note") or value["ask"]
                        elif isinstance(value, dict) and isinstance(value.get("message"), dict):
                            yield value["message"]
                            return
                        else:
                            break
        except (OSError, ValueError):
            pass
        yield jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE, "The proxy's MCP servers cannot be reached now.")

    def listen(self, request: dict[str, Any]) -> Listening:
        """A listen op on a connection of its own (never a kept one: it is held while the client listens):
        ListenRefused when the supervisor holds too many, SupervisorGone when it cannot be asked."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(MARGIN)
            sock.connect(self.path)
            sock.sendall(dumps({**request, "op": "listen"}) + b"\n")
            lines = sock.makefile("rb")
            first = loads(lines.readline(MAX_ANSWER) or b"null")
        except (OSError, ValueError) as exc:
            sock.close()
            raise SupervisorGone(str(exc)) from None
        if not isinstance(first, dict) or not first.get("listening"):
            lines.close()
            sock.close()
            if isinstance(first, dict) and "refused" in first:
                raise ListenRefused(str(first["refused"]))
            raise SupervisorGone("no answer")
        sock.settimeout(LISTEN_SILENCE)
        return Listening(sock, lines)

    def tell(self, request: dict[str, Any]) -> dict[str, Any]:
        """A session's subscription, log level or end (supervisor.py's subscribe, unsubscribe, level, ended ops)."""
        return self.ask(request, MARGIN + 30.0)

    def reply(self, session: str, message: dict[str, Any]) -> bool | None:
        """A client's response to a request its call's server made of it (`relaying`): True when it was given to the
        server; False when it answers no request of this session's waiting now; None when it waits on none here and
        the other replicas could not be told (Redis away: replicas.py), so it is lost."""
        answer = self.ask({"op": "reply", "session": session, "message": message}, MARGIN)
        return None if answer.get("lost") else bool(answer.get("replied"))

    def resume(self, state: Any, owner: str, name: str, responses: Any, message: dict[str, Any],
               timeout: float) -> dict[str, Any] | None:
        """2026-07-28: a client's next request of a call whose server asked it for input (client_requests.py's
        Rounds): the call's answer or its next round; None when `state` holds no call of this key's and tool."""
        answer = self.ask({"op": "resume", "state": state, "owner": owner, "name": name, "responses": responses,
                           "message": message}, timeout + MARGIN)
        return answer["message"] if isinstance(answer.get("message"), dict) else None

    def notify(self, server: str, message: dict[str, Any]) -> None:
        try:
            self.ask({"op": "notify", "server": server, "message": message}, MARGIN)
        except SupervisorGone:
            pass

    def cancel(self, session: str, request_id: Any) -> bool:
        """The session's client cancelled its request `request_id`: passed on to the server running it. False when
        it runs on no call here and the other replicas could not be told (Redis away: replicas.py), so it is lost."""
        if jsonrpc.valid_id(request_id):
            try:
                return not self.ask({"op": "cancel", "session": session, "id": request_id}, MARGIN).get("lost")
            except SupervisorGone:
                pass
        return True

    def status(self) -> list[dict[str, Any]]:
        servers = self.ask({"op": "status"}, MARGIN).get("servers")
        return servers if isinstance(servers, list) else []

    def session(self, action: str, **fields: Any) -> dict[str, Any]:
        return self.ask({"op": "session", "action": action, **fields}, MARGIN)
