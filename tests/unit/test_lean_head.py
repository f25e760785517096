"""fastpath.connections writes a usual request's head itself: the bytes must be those urllib3 and http.client
write (each case is sent both ways on a socket pair and compared), the connection must be left in their state
(the answer is read by their getresponse, and the connection takes the next request), and what their rules
refuse is still refused by them."""

from __future__ import annotations

import socket
import threading

import pytest

from argoproxy.fastpath.connections import LeanHTTPConnection

BODY = b'{"model":"m","stream":true}'
USUAL = {"User-Agent": "OpenAI/Python 1.2", "Content-Type": "application/json", "Authorization": "Bearer sk-x",
         "Accept-Encoding": "identity"}


def _sent(host: str, port: int, method: str, url: str, body, headers, lean: bool) -> bytes:
    """What the peer reads when a connection to host:port sends this request, by the lean path or the
    library's own."""
    ours, theirs = socket.socketpair()
    got = bytearray()
    with ours, theirs:
        theirs.settimeout(5)
        reader = threading.Thread(target=_read_all, args=(theirs, got))  # a long body fills the pair's buffers
        reader.start()
        conn = LeanHTTPConnection(host, port)
        conn.sock = ours
        if not lean:
            conn._lean_head = lambda *args: None  # the library's own code, through the same class
        try:
            conn.request(method, url, body=body, headers=headers)
        finally:
            ours.shutdown(socket.SHUT_WR)
            reader.join()
    return bytes(got)


def _read_all(sock: socket.socket, into: bytearray) -> None:
    while data := sock.recv(1 << 20):
        into += data


CASES = {
    "usual POST": ("127.0.0.1", 8000, "POST", "/v1/chat/completions", BODY, USUAL),
    "query string": ("127.0.0.1", 8000, "GET", "/v1/models?limit=5&x=%20", None, {"Authorization": "Bearer k"}),
    "POST without body": ("127.0.0.1", 8000, "POST", "/v1/x", None, {}),
    "GET with an empty body": ("127.0.0.1", 8000, "GET", "/v1/x", b"", {}),
    "DELETE": ("upstream.example", 8000, "DELETE", "/v1/files/f", None, {"X-A": "1"}),
    "default port": ("upstream.example", 80, "POST", "/", BODY, {}),
    "FQDN with its dot": ("upstream.example.", 8443, "POST", "/v1/x", BODY, {}),
    "own Host, length, agent": ("127.0.0.1", 8000, "POST", "/v1/x", BODY,
                                {"Host": "other:1", "Content-Length": str(len(BODY)), "User-Agent": "u"}),
    "Latin-1 value": ("127.0.0.1", 8000, "POST", "/v1/x", BODY, {"X-Name": "Zo\u00eb"}),
    "long body": ("127.0.0.1", 8000, "POST", "/v1/x", b"x" * 300_000, USUAL),
    # left to the library's code (the lean head declines): the bytes must still be the same
    "IPv6 host": ("::1", 8000, "POST", "/v1/x", BODY, {}),
    "IDNA host": ("b\u00fccher.example", 8000, "POST", "/v1/x", BODY, {}),
    "folded value": ("127.0.0.1", 8000, "POST", "/v1/x", BODY, {"X-Long": "a\r\n b"}),
    "name with a space": ("127.0.0.1", 8000, "POST", "/v1/x", BODY, {"X Odd": "1"}),
    "bytes value": ("127.0.0.1", 8000, "POST", "/v1/x", BODY, {"X-B": b"raw"}),
    "bytearray body": ("127.0.0.1", 8000, "POST", "/v1/x", bytearray(BODY), {}),
    "chunked asked by header": ("127.0.0.1", 8000, "POST", "/v1/x", BODY, {"Transfer-Encoding": "chunked"}),
}


@pytest.mark.parametrize("case", CASES)
def test_the_lean_head_is_the_librarys(case):
    host, port, method, url, body, headers = CASES[case]
    lean = _sent(host, port, method, url, body, headers, lean=True)
    assert lean == _sent(host, port, method, url, body, headers, lean=False)
    assert lean.startswith(f"{method} {url} HTTP/1.1\r\n".encode())


@pytest.mark.parametrize("method,url,headers", [
    ("POST", "/v1/x y", {}),  # a space in the target
    ("POST", "/v1/\u00e9", {}),  # not ASCII
    ("PO ST", "/v1/x", {}),  # not a token
    ("POST", "/v1/x", {"X-Bad": "a\nb"}),  # a bare line feed
    ("POST", "/v1/x", {"Bad:Name": "1"}),
    ("POST", "/v1/x", {"X-Name": "\u20ac"}),  # not Latin-1
])
def test_what_the_library_refuses_it_still_refuses(method, url, headers):
    errors = []
    for lean in (True, False):
        with pytest.raises(Exception) as caught:
            _sent("127.0.0.1", 8000, method, url, BODY, headers, lean)
        errors.append(type(caught.value))
    assert errors[0] is errors[1]


def test_the_answer_and_the_next_request_go_through_the_library():
    """After a lean head, urllib3's getresponse reads the answer (its response options were set), and once the
    answer is read the connection takes the next request: http.client's state is its own again."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = LeanHTTPConnection("127.0.0.1", 8000)
        conn.sock = ours
        for n in range(2):
            conn.request("POST", "/v1/x", body=BODY, headers=USUAL, preload_content=False)
            theirs.recv(65536)
            theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-N: %d\r\n\r\nok" % n)
            resp = conn.getresponse()
            assert (resp.status, resp.headers["X-N"], resp.read()) == (200, str(n), b"ok")
        conn.request("POST", "/v1/x", body=BODY, headers=USUAL)
        with pytest.raises(Exception, match="Request-sent"):  # an unanswered request: the library's own error
            conn.request("POST", "/v1/x", body=BODY, headers=USUAL)
