"""The older HTTP+SSE transport (2024-11-05) of a remote MCP server (RemoteServer has these methods): a GET opens
the event stream, whose `endpoint` event names the URL messages are POSTed to (on the server's own origin only:
the credentials go with every POST), and every answer comes on that stream (remote_server.py's docstring)."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import requests

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp.event_stream import EventReader, TooLarge
from argoproxy.mcp.remote_http import (CONNECT_SECONDS, MAX_MESSAGE, SEND_SECONDS, SSE, STREAM_IDLE_SECONDS,
                                       Unreachable, chunks, initialize, origin_of, unreachable)
from argoproxy.mcp.stdio_server import HANDSHAKE_SECONDS

log = logging.getLogger("cot_proxy")


class HttpSse:
    # RemoteServer's, which these methods use
    server: McpServer
    name: str
    origin: str
    http: requests.Session
    proxies: dict[str, str]
    verify: str | bool
    default_port: int
    post_url: str
    using: str
    stream: requests.Response | None
    call: Callable[..., dict[str, Any]]
    _headers: Callable[..., dict[str, str]]
    _post: Callable[..., requests.Response]
    _refusal: Callable[[requests.Response], str]
    _initialized: Callable[[dict[str, Any]], None]
    _received: Callable[..., None]
    _lost: Callable[[str], None]
    _unanswered: Callable[..., None]

    def _open_event_stream(self) -> None:
        try:
            stream = self.http.get(self.server.url, headers=self._headers(session="", accept="text/event-stream"),
                                   timeout=(CONNECT_SECONDS, STREAM_IDLE_SECONDS), stream=True,
                                   allow_redirects=False, proxies=self.proxies, verify=self.verify)
        except requests.RequestException as exc:
            raise Unreachable(unreachable(self.origin, exc)) from None
        if stream.status_code != 200 or not stream.headers.get("Content-Type", "").startswith("text/event-stream"):
            stream.close()
            raise Unreachable(self._refusal(stream) if stream.status_code != 200
                              else f"{self.origin} answered the GET with no event stream")
        self.stream = stream
        endpoint: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stream, args=(stream, endpoint), daemon=True,
                         name=f"mcp-{self.name}-events").start()
        try:
            said = endpoint.get(timeout=HANDSHAKE_SECONDS)
        except queue.Empty:
            raise Unreachable(f"{self.origin} sent no endpoint event") from None
        self.post_url = self._endpoint(said)
        self.using = SSE
        answer = self.call(initialize(0), HANDSHAKE_SECONDS, wait_ready=False)
        self._initialized(answer)
        self._send_to_stream({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _endpoint(self, said: str) -> str:
        """The URL the `endpoint` event names, which must be on the server's own origin: the credentials go with
        every POST to it."""
        url = urljoin(self.server.url, said.strip())
        parts = urlsplit(url)
        if (parts.scheme != urlsplit(self.server.url).scheme or parts.username or parts.password
                or (parts.hostname or "") != (urlsplit(self.server.url).hostname or "")
                or (parts.port or (443 if parts.scheme == "https" else 80)) != self.default_port):
            log.warning("mcp server %s: its endpoint event names another origin (%s); refused", self.name,
                        origin_of(url))
            raise Unreachable(f"its endpoint event named another origin ({origin_of(url)}), which the proxy refuses")
        return url

    def _read_stream(self, stream: requests.Response, endpoint: queue.Queue[str]) -> None:
        reader = EventReader(MAX_MESSAGE)
        try:
            for event in reader.events(chunks(stream, None)):
                if stream is not self.stream:
                    break
                if event.type == "endpoint":
                    endpoint.put(event.data.decode("utf-8", "replace"))
                elif event.type == "message":
                    self._received(event.data)
            why = f"{self.origin} ended its event stream"
        except TooLarge:
            why = f"{self.origin} sent an event longer than {MAX_MESSAGE} bytes"
        except requests.RequestException:
            why = f"{self.origin}'s event stream broke off"
        stream.close()
        if stream is self.stream:
            self._lost(why)

    def _send_to_stream(self, message: dict[str, Any]) -> None:
        """HTTP+SSE: a message POSTed to the endpoint; a request's answer comes on the stream."""
        try:
            with self._post(message, SEND_SECONDS, session="") as resp:
                if resp.status_code in (200, 202, 204):
                    return
                why = self._refusal(resp)
        except requests.RequestException as exc:
            return self._lost(unreachable(self.origin, exc))
        if "id" in message and "method" in message:
            self._unanswered(message["id"], why)

    def _close_stream(self) -> None:
        """The event stream let go: its reader closes it when it next wakes (a close from here would wait for the
        reader's lock, held until the server sends something), and hands on nothing more from it."""
        self.stream = None
