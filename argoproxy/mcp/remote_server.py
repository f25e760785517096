"""One remote MCP server as the supervisor reaches it: one session for the whole instance, as a stdio server is
one process, and to the supervisor the same thing (StdioServer's calls: the many clients' ids replaced by the
session's own, progress relayed under each client's token, cancellation, a deadline per call, restarts with
backoff while it cannot be reached). Only the way messages travel differs:

- Streamable HTTP (2025-11-25): each message is a POST to the server's URL, with `Accept: application/json,
  text/event-stream`, the session's `Mcp-Session-Id` (from initialize's answer) and `MCP-Protocol-Version` (the
  revision initialize agreed); a request's answer comes as JSON or as an SSE stream (progress notifications,
  then the answer; a stream that ends early is resumed with a GET and `Last-Event-ID`; a request of the client's
  on it is that call's, client_requests.py). A 404 for the session
  means it ended there: initialize again, and send the call once more.
- HTTP+SSE (2024-11-05), with `transport: sse`, or when a POST of initialize gets 400, 404 or 405 (the
  specification's rule for finding an older server): a GET opens the event stream, whose `endpoint` event names
  the URL messages are POSTed to (it must be on the server's own origin: another is refused and logged), and
  every answer comes on that stream.

The credentials the proxy holds for it (`headers`, the token in `bearer_token_env`) go to it with every request
and nowhere else: redirects are not followed, an endpoint elsewhere is refused, and logs and errors name the
server by its origin only (never its path or query). Proxies and certificates come from the environment as
requests reads them (HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE), but never ~/.netrc, whose login would
replace the server's token. Every answer is read up to MAX_MESSAGE bytes, within the call's deadline.

Runs in the supervisor (argoproxy/mcp/supervisor.py): plain threads, no gevent."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.event_stream import EventReader, TooLarge
from argoproxy.mcp.remote_http import (MAX_MESSAGE, CONNECT_SECONDS, SEND_SECONDS, STREAM_IDLE_SECONDS, MAX_RESUMES,
                                       MAX_RETRY_SECONDS, MAX_SESSION_ID, MAX_CONNECTIONS, SSE, STREAMABLE,
                                       FALLBACK_STATUSES, Unreachable, Fallback, initialize, chunks, bounded,
                                       origin_of, unreachable)
from argoproxy.mcp.protocol import HANDSHAKE_VERSION
from argoproxy.mcp.stdio_server import HANDSHAKE_SECONDS, MAX_BACKOFF, Pending, StdioServer
from argoproxy.mcp.remote_sse import HttpSse
from argoproxy.redaction import Secrets

log = logging.getLogger("cot_proxy")


class RemoteServer(StdioServer, HttpSse):  # (the older HTTP+SSE transport's methods: remote_sse.py)

    def __init__(self, server: McpServer, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(server, home="", environ=environ)
        parts = urlsplit(server.url)
        self.origin = origin_of(server.url)
        self.transport = server.transport or ""
        self.http = requests.Session()
        self.http.trust_env = False  # the environment's proxies and CA bundle are given below; its netrc never
        for scheme in ("http://", "https://"):  # connections kept for the calls at once (urllib3's default: 10)
            self.http.mount(scheme, requests.adapters.HTTPAdapter(pool_maxsize=MAX_CONNECTIONS))
        self.proxies = requests.utils.get_environ_proxies(server.url)
        self.verify: str | bool = self.environ.get("REQUESTS_CA_BUNDLE") or self.environ.get("CURL_CA_BUNDLE") or True
        self.default_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.post_url = server.url
        self.session_id = ""
        self.version = ""
        self.using = ""  # the transport the session speaks: streamable-http or sse
        self.broken = threading.Event()  # the session is lost: the life loop (StdioServer._run) opens another
        self.renew_lock = threading.Lock()
        self.stream: requests.Response | None = None  # HTTP+SSE: the event stream
        self.local = threading.local()  # the deadline of the call this thread is making
        self.token = self.environ.get(server.bearer_token_env, "").strip() if server.bearer_token_env else ""
        # What the server sends back never shows them either (a tool that echoes the headers it was sent).
        self.secrets = Secrets([self.token, *(value for _, value in server.headers)])

    # ------------------------------------------------------------ life (StdioServer._run's restarts and backoff)
    def _run_once(self) -> None:
        self.state, self.started_at = "starting", time.monotonic()
        self.broken.clear()
        try:
            self._open()
        except Unreachable as exc:
            self.last_error = str(exc)
            self._close_stream()
            return
        except Exception as exc:  # noqa: BLE001 - whatever a server answers, its life loop goes on (its text, no URL)
            self.last_error = f"opening a session with {self.origin} failed ({type(exc).__name__})"
            self._close_stream()
            return
        self.state = "ready"
        self.ready.set()
        log.info("mcp server %s: ready (%s, %s)", self.name, self.origin, self.using)
        self.broken.wait()
        self.ready.clear()
        self._close_stream()
        self._fail_pending(f"The MCP server {self.name} could not be reached during the call.")

    def _open(self) -> None:
        self.session_id, self.version, self.post_url, self.using = "", "", self.server.url, ""
        if self.transport != SSE:
            try:
                self._initialize_streamable()
                return
            except Fallback as exc:
                if self.transport == STREAMABLE:
                    raise Unreachable(f"{self.origin} refused initialize ({exc})") from None
                log.info("mcp server %s: initialize got %s: trying the older HTTP+SSE transport", self.name, exc)
        self._open_event_stream()

    def _lost(self, why: str) -> None:
        if not self.broken.is_set():
            self.last_error = why
            log.warning("mcp server %s: %s", self.name, why)
            self.broken.set()

    def _kill(self) -> None:
        """Stopping: the session ends at the server (a DELETE, as the specification asks), the stream closes."""
        if self.session_id and self.using == STREAMABLE:
            headers, self.session_id = self._headers(), ""
            try:
                self.http.delete(self.post_url, headers=headers, timeout=(1.0, 1.0),
                                 allow_redirects=False, proxies=self.proxies, verify=self.verify).close()
            except requests.RequestException:
                pass
        self.broken.set()
        self._close_stream()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "kind": "remote"}

    def _received(self, line: bytes, stream_of: int | None = None) -> None:
        """A message from the server (StdioServer's routing), the proxy's credentials for it taken out first;
        `stream_of`: the call on whose own answer stream it came (a request there is that call's)."""
        super()._received(self.secrets.data(line) if self.secrets else line, stream_of)

    # ------------------------------------------------------------ HTTP
    def _headers(self, session: str | None = None, accept: str = "application/json, text/event-stream",
                 json_body: bool = False) -> dict[str, str]:
        """The credentials and the transport's own headers; `session` None: the current one, "": none (initialize,
        which agrees no revision yet, and HTTP+SSE, whose endpoint names its session)."""
        headers = dict(self.server.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers["Accept"] = accept
        if json_body:
            headers["Content-Type"] = "application/json"
        sid = self.session_id if session is None else session
        if sid:
            headers["Mcp-Session-Id"] = sid
        if session is None and self.version and self.using == STREAMABLE:
            headers["MCP-Protocol-Version"] = self.version
        return headers

    def _post(self, message: dict[str, Any], timeout: float, session: str | None = None) -> requests.Response:
        """One message POSTed (RequestException when the server cannot be reached); a redirect is an answer like
        any other here, never followed: the credentials would go where it points."""
        return self.http.post(self.post_url, data=json.dumps(message, separators=(",", ":")).encode(),
                              headers=self._headers(session, json_body=True),
                              timeout=(min(CONNECT_SECONDS, timeout), timeout), stream=True,
                              allow_redirects=False, proxies=self.proxies, verify=self.verify)

    def _refusal(self, resp: requests.Response) -> str:
        if resp.is_redirect or 300 <= resp.status_code < 400:
            where = origin_of(urljoin(self.post_url, resp.headers.get("Location", "")))
            return (f"{self.origin} answered HTTP {resp.status_code}, a redirect to {where}: the proxy does not follow "
                    "redirects (set the server's url to the address it names)")
        if resp.status_code in (401, 403):
            return f"{self.origin} answered HTTP {resp.status_code}: it refused the credentials the proxy sent"
        return f"{self.origin} answered HTTP {resp.status_code}"

    # ------------------------------------------------------------ Streamable HTTP
    def _initialize_streamable(self) -> None:
        own_id, pending = self._pending()
        try:
            try:
                resp = self._post(initialize(own_id), HANDSHAKE_SECONDS, session="")
            except requests.RequestException as exc:
                raise Unreachable(unreachable(self.origin, exc)) from None
            with resp:
                if resp.status_code in FALLBACK_STATUSES:
                    raise Fallback(f"HTTP {resp.status_code}")
                if resp.status_code != 200:
                    raise Unreachable(self._refusal(resp))
                session = resp.headers.get("Mcp-Session-Id", "")
                if session and (len(session) > MAX_SESSION_ID or not all("\x21" <= c <= "\x7e" for c in session)):
                    raise Unreachable(f"{self.origin} gave a session id that is not visible ASCII")
                why = self._answers(resp, own_id, time.monotonic() + HANDSHAKE_SECONDS)
            answer = self._answer_of(pending, why)
        finally:
            with self.lock:
                self.pending.pop(own_id, None)
        self._initialized(answer)
        self.session_id, self.using = session, STREAMABLE
        try:
            self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, SEND_SECONDS).close()
        except requests.RequestException as exc:
            raise Unreachable(unreachable(self.origin, exc)) from None
        threading.Thread(target=self._server_stream, args=(session,), daemon=True, name=f"mcp-{self.name}-get").start()

    def _server_stream(self, session: str) -> None:
        """The GET stream of what the server sends unasked (list changes, resource updates, log messages), opened
        once the session is and again when it ends (after a pause that doubles while it keeps failing), for as long
        as the session lasts. A server that offers none (405, or another refusal) is not asked again."""
        pause = 1.0
        while self.session_id == session and not self.broken.is_set() and not self.stopping.is_set():
            try:
                resp: requests.Response | None = self.http.get(
                    self.post_url, headers=self._headers(accept="text/event-stream"),
                    timeout=(CONNECT_SECONDS, STREAM_IDLE_SECONDS), stream=True, allow_redirects=False,
                    proxies=self.proxies, verify=self.verify)
            except requests.RequestException:
                resp = None
            if resp is not None:
                with resp:
                    if resp.status_code != 200 or not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                        if resp.status_code not in (404, 405):
                            log.info("mcp server %s: no stream of its own notifications (%s)", self.name,
                                     self._refusal(resp))
                        return
                    pause = 1.0
                    try:
                        for event in EventReader(MAX_MESSAGE).events(chunks(resp, None)):
                            if self.session_id != session:
                                return
                            if event.type == "message":
                                self._received(event.data)
                    except (TooLarge, requests.RequestException):
                        pass
            if self.stopping.wait(pause):
                return
            pause = min(pause * 2, MAX_BACKOFF)

    def _pending(self) -> tuple[int, Pending]:
        pending = Pending(0)
        with self.lock:
            own_id = next(self.ids)
            self.pending[own_id] = pending
        return own_id, pending

    def _answer_of(self, pending: Pending, why: str) -> dict[str, Any]:
        try:
            return pending.events.get_nowait()[1]
        except queue.Empty:
            raise Unreachable(f"{self.origin} did not answer initialize ({why or 'no answer'})") from None

    def _initialized(self, answer: dict[str, Any]) -> None:
        result = answer.get("result")
        if not isinstance(result, dict):
            raise Unreachable(f"initialize failed: {json.dumps(answer.get('error'))[:200]}")
        version = result.get("protocolVersion")
        self.version = version if isinstance(version, str) and version.isprintable() and len(version) < 40 \
            else HANDSHAKE_VERSION
        self.initialized = result

    def _write(self, message: dict[str, Any]) -> bool:
        """A message on its way (StdioServer.call, cancel and the refusals of a server's requests write here): a
        request's answer is read on a thread of its own, which hands it to the waiting call."""
        if self.broken.is_set():
            return False
        if "method" in message and "id" in message:
            work = threading.Thread(target=self._exchange, args=(message, getattr(self.local, "timeout", SEND_SECONDS)))
        else:
            work = threading.Thread(target=self._send, args=(message,))
        work.daemon = True
        work.start()
        return True

    def _send(self, message: dict[str, Any]) -> None:
        """A notification or an answer: the server accepts it (202) or refuses it; nothing waits for either."""
        try:
            with self._post(message, SEND_SECONDS) as resp:
                if resp.status_code not in (200, 202, 204):
                    log.warning("mcp server %s: a %s was refused (%s)", self.name,
                                "notification" if "method" in message else "response", self._refusal(resp))
        except requests.RequestException as exc:
            log.warning("mcp server %s: %s", self.name, unreachable(self.origin, exc))

    def _exchange(self, message: dict[str, Any], timeout: float, renewed: bool = False) -> None:
        """A request POSTed and its answer read, within the call's `timeout` (the call stops waiting then, and the
        reading stops once the call is gone)."""
        own_id = message["id"]
        if self.using == SSE:  # the answer comes on the event stream
            return self._send_to_stream(message)
        session, deadline = self.session_id, time.monotonic() + timeout
        try:
            resp = self._post(message, timeout)
        except requests.exceptions.ReadTimeout as exc:  # this call's own deadline: the others are not harmed
            return self._unanswered(own_id, unreachable(self.origin, exc), jsonrpc.REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            return self._lost(unreachable(self.origin, exc))
        with resp:
            if resp.status_code == 404 and session and not renewed:
                resp.close()
                if self._renew(session):
                    return self._exchange(message, max(1.0, deadline - time.monotonic()), renewed=True)
                return
            if resp.status_code == 200:
                why = self._answers(resp, own_id, deadline, resumable=True)
            else:
                why = self._refusal(resp)
                if resp.headers.get("Content-Type", "").startswith("application/json"):
                    self._answers(resp, own_id, time.monotonic() + CONNECT_SECONDS)  # a JSON-RPC error, perhaps
        self._unanswered(own_id, why)

    def _unanswered(self, own_id: int, why: str, code: int | None = None) -> None:
        """The exchange ended without the call's answer: the call ends now, saying why (`code`: a deadline's, when
        the read ran out of the call's own time before the call's wait did)."""
        with self.lock:
            call = self.pending.pop(own_id, None)
        if call is not None:
            if code is None:
                code = jsonrpc.SERVER_UNAVAILABLE if why.startswith(self.origin + " answered HTTP") \
                    else jsonrpc.INTERNAL_ERROR
            call.events.put(("answer", jsonrpc.error(call.client_id, code,
                                                     f"The MCP server {self.name}: {why or 'no answer to the call'}.")))

    def _renew(self, ended: str) -> bool:
        """The server ended the session (404): one call initializes again, the others wait for it."""
        with self.renew_lock:
            if self.session_id != ended:
                return bool(self.session_id)
            log.info("mcp server %s: its session ended there; initializing again", self.name)
            try:
                self._initialize_streamable()
                return True
            except (Unreachable, Fallback) as exc:
                self._lost(f"initializing again failed: {exc}")
                return False

    def _answers(self, resp: requests.Response, own_id: int, deadline: float, resumable: bool = False) -> str:
        """The messages of an answer (JSON, or an event stream) handed on (StdioServer._received), until the call's
        own answer came or the call is gone; what went wrong when its answer did not come ("" when it did)."""
        kind = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            if kind == "application/json":
                body = b"".join(bounded(chunks(resp, deadline), MAX_MESSAGE))
                self._take(body, own_id)
            elif kind == "text/event-stream":
                self._events(resp, own_id, deadline, resumable)
            else:
                return f"answered {kind[:60] or 'no content type'}, neither JSON nor an event stream"
        except TooLarge:
            log.warning("mcp server %s: an answer longer than %d bytes was refused", self.name, MAX_MESSAGE)
            return f"answered more than {MAX_MESSAGE} bytes"
        except requests.RequestException:
            return "its answer broke off"
        except TimeoutError:
            return "its answer did not end in time"
        return "" if own_id not in self.pending else "its answer held no JSON-RPC answer to the call"

    def _take(self, body: bytes, own_id: int | None = None) -> None:
        """One message, or (before 2025-06-18) a batch of them, on call `own_id`'s answer."""
        if body.lstrip().startswith(b"["):
            try:
                batch = json.loads(body)
            except (ValueError, RecursionError):
                batch = None
            if isinstance(batch, list):
                for message in batch:
                    self._received(json.dumps(message).encode(), own_id)
                return
        self._received(body, own_id)

    def _events(self, resp: requests.Response, own_id: int, deadline: float, resumable: bool) -> None:
        """An answer's event stream; one that ends before the answer, having given event ids, is resumed with a
        GET (Last-Event-ID) after the pause it asked for, up to MAX_RESUMES times within the call's deadline."""
        reader = EventReader(MAX_MESSAGE)
        for _ in range(MAX_RESUMES + 1):
            for event in reader.events(chunks(resp, deadline)):
                if event.type == "message":
                    self._received(event.data, own_id)
                if own_id not in self.pending:
                    return
            if not resumable or reader.last_id is None or own_id not in self.pending:
                return
            pause = min(MAX_RETRY_SECONDS, (reader.retry_ms or 0) / 1000)
            if time.monotonic() + pause >= deadline or self.stopping.wait(pause):
                return
            resp.close()
            resp = self.http.get(self.post_url, headers={**self._headers(accept="text/event-stream"),
                                                         "Last-Event-ID": reader.last_id},
                                 timeout=(CONNECT_SECONDS, max(1.0, deadline - time.monotonic())), stream=True,
                                 allow_redirects=False, proxies=self.proxies, verify=self.verify)
            if resp.status_code != 200 or not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                resp.close()
                return

    # ------------------------------------------------------------ calls: StdioServer's, with their deadline kept
    def call(self, message: dict[str, Any], timeout: float, wait_ready: bool = True, on_note: Any = None,
             session: str = "", asks: frozenset[str] = frozenset(), on_ask: Any = None) -> dict[str, Any]:
        """StdioServer.call; the exchange it starts (_write, on this thread) reads the answer within `timeout`. A
        server that cannot be reached now answers at once, rather than when the call's deadline passes: a listing
        of every server asks each (only a session being opened is waited for, a while)."""
        self.local.timeout = timeout
        if wait_ready and not self.ready.is_set() and \
                not (self.state == "starting" and self.ready.wait(min(timeout, CONNECT_SECONDS))):
            return jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE,
                                 f"The MCP server {self.name} is not running ({self.last_error or self.state}).")
        return super().call(message, timeout, False, on_note, session, asks, on_ask)

