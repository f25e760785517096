"""Gunicorn's response, sending its head together with the first body bytes.

Stock Gunicorn writes a response's head and its first body bytes in two sends; on loopback and LAN links each
send (and the client wake-up it causes) costs more than the Python around it. Installed by
argoproxy.fastpath.install, in the Gunicorn master before workers fork. Imports nothing of urllib3 or ssl:
gevent patches the workers later.
"""

from __future__ import annotations

from typing import Any, Callable

from gunicorn.http import wsgi

from argoproxy.fastpath.sockets import COALESCE_LIMIT, send_all

# Set by the balanced gevent worker (balanced_worker.Board.should_shed): True when this answer should close its
# connection so that the client's next one is placed on a less loaded worker.
shed_connection: Callable[[], bool] | None = None
# Set with it: closes a connection so shed once its answer is out (balanced_worker.linger_close).
shed_close: Callable[[Any], None] | None = None


class _Capture:
    """Stands in for the client socket while Gunicorn renders the response head."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def sendall(self, data: bytes) -> None:
        self.data += data


class CoalescingResponse(wsgi.Response):
    """Gunicorn's response, sending its head together with the first body bytes.

    An empty first item still sends the head at once (a stream's headers are never delayed), and close()
    sends a head that no body followed (HEAD, 204, empty bodies)."""

    _head = b""
    _shed = False  # this answer closes its connection to rebalance the workers (shed_connection)
    sock: Any  # Gunicorn's client socket (untyped), swapped for a _Capture while the head is written

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        if shed_connection is not None and not self.must_close and shed_connection():
            self.force_close()
            self._shed = True
        sock, capture = self.sock, _Capture()
        self.sock = capture
        try:
            super().send_headers()
        finally:
            self.sock = sock
        self._head = capture.data

    def process_headers(self, headers: list[tuple[str, str]]) -> None:
        """Gunicorn drops the app's `Connection` header (hop-by-hop) and says keep-alive; the proxy's own errors
        that leave the connection unusable (a 408, a body whose framing broke; COMPATIBLE_MODE sends them as
        200s) say `Connection: close`, and the connection closes after them, so the head says so too: a client
        then does not pool a closed connection. Relayed answers never carry it (hop-by-hop headers are dropped)."""
        super().process_headers(headers)
        if ("Connection", "close") in headers:
            self.force_close()

    def write(self, arg: bytes) -> None:
        super().write(arg)
        if self._head:  # nothing of the body went out with it (empty item, or a body-less response)
            self._flush_head()

    def _emit_body(self, data: bytes) -> None:
        if self.chunked:
            data = b"%X\r\n%b\r\n" % (len(data), data)
        head, self._head = self._head, b""
        if head and len(data) <= COALESCE_LIMIT:
            data = head + data
        elif head:
            send_all(self.sock, head)
        send_all(self.sock, data)

    def sendfile(self, respiter: object) -> bool:
        return False  # the proxy never serves files; write() handles file wrappers item by item

    def close(self) -> None:
        self.send_headers()
        self._flush_head()
        super().close()
        if self._shed and shed_close is not None:
            shed_close(self.sock)

    def _flush_head(self) -> None:
        head, self._head = self._head, b""
        if head:
            send_all(self.sock, head)


def install_gunicorn_response() -> None:
    """Make Gunicorn build CoalescingResponse objects (wsgi.create looks the class up in its module)."""
    wsgi.Response = CoalescingResponse
