"""Asking an upstream what it is (argoproxy/upstream/local_server.py), against real servers on loopback: what each
local server answers, and what a server of anyone's choosing may answer instead (too long, too slow, a redirect,
a proxy's own answer), each read within its bound and never taken as a local server's."""

from __future__ import annotations

import http.server
import json
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest
import requests.utils

from argoproxy.upstream import local_server
from argoproxy.upstream.local_server import says_local
from tests.proxy_process import free_port

LLAMA_PROPS = {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 4, "model_path": "m.gguf"}


@contextmanager
def server(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[tuple[str, list]]:
    """A server whose every GET is answered by `answer`; yields its base URL and the requests' (path, headers)."""
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, dict(self.headers.items())))
            answer(self)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def json_at(bodies: dict[str, Any], headers: dict[str, str] | None = None):
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        body = json.dumps(bodies[h.path]).encode() if h.path in bodies else b"{}"
        h.send_response(200 if h.path in bodies else 404)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return answer


@pytest.mark.parametrize("bodies, said", [
    ({"/props": LLAMA_PROPS}, "llama.cpp (GET /props)"),
    ({"/version": {"version": "0.11.0"}}, "vLLM (GET /version)"),
    ({"/api/version": {"version": "0.12.3"}}, "Ollama (GET /api/version)"),
    ({"/props": {"total_slots": 4}, "/version": {"version": "1.2", "litellm": True}}, None),  # neither's shape
    ({}, None),
])
def test_each_local_server_says_what_it_is_in_its_own_shape(bodies, said):
    with server(json_at(bodies)) as (url, seen):
        answer = says_local(url, "sk-upstream")
        assert (answer.server, answer.settled) == (said, True)
        assert says_local(url, "sk-upstream") is answer  # asked once
    assert seen[0][0] == "/props" and seen[0][1]["Authorization"] == "Bearer sk-upstream"  # as its requests carry it


def test_a_proxys_own_answer_is_not_a_local_servers():
    """cot_proxy's Ollama door answers /api/version: a relay to OpenAI behind another cot_proxy is no local server."""
    with server(json_at({"/api/version": {"version": "0.12.3"}}, {"X-Cot-Proxy-Request-ID": "r1"})) as (url, _):
        assert says_local(url).server is None


def test_a_redirect_is_not_followed():
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path == "/elsewhere":
            return json_at({"/elsewhere": LLAMA_PROPS})(h)
        h.send_response(302)
        h.send_header("Location", "/elsewhere")
        h.send_header("Content-Length", "0")
        h.end_headers()
    with server(answer) as (url, seen):
        assert says_local(url).server is None
    assert "/elsewhere" not in [path for path, _ in seen]


def test_an_answer_past_its_bound_is_dropped_unread():
    """llama.cpp's /props, with a chat template of 2 MiB: read up to 1 MiB, then dropped (said nothing)."""
    body = json.dumps({**LLAMA_PROPS, "chat_template": "x" * (2 << 20)}).encode()

    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except OSError:
            pass  # the proxy stopped reading
    with server(answer) as (url, _):
        answer_ = says_local(url)
        assert (answer_.server, answer_.settled) == (None, True)


def test_an_answer_that_drips_is_dropped_at_its_deadline():
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path != "/props":
            return json_at({})(h)
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        try:
            for _ in range(100_000):
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass
    with server(answer) as (url, _):
        start = time.monotonic()
        assert says_local(url).server is None
        assert time.monotonic() - start < 3 * local_server.DEADLINE  # never the 20,000 s it would drip


def test_a_server_not_reached_is_asked_again_later(monkeypatch):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/"
    first = says_local(url)
    assert (first.server, first.settled) == (None, False)
    assert says_local(url) is first  # not before RETRY_SECONDS
    monkeypatch.setattr(local_server, "RETRY_SECONDS", 0.0)
    import http.server as hs
    httpd = hs.ThreadingHTTPServer(("127.0.0.1", port), type("H", (hs.BaseHTTPRequestHandler,), {
        "do_GET": lambda h: json_at({"/version": {"version": "0.11.0"}})(h), "log_message": lambda *a: None}))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert says_local(url).server == "vLLM (GET /version)"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_server_restarted_with_another_context_is_read_again(monkeypatch):
    """The window a request gets at llama.cpp was read once per process: a server restarted with another -c kept
    the old one (reservations, `run`'s agents) until the proxy restarted."""
    props = {"/props": {**LLAMA_PROPS, "default_generation_settings": {"n_ctx": 4096}}}
    with server(json_at(props)) as (url, seen):
        assert says_local(url).context == 4096
        props["/props"] = {**LLAMA_PROPS, "default_generation_settings": {"n_ctx": 32768}}
        assert says_local(url).context == 4096 and len(seen) == 1  # kept: not asked per request
        monkeypatch.setattr(local_server, "KEPT_SECONDS", 0.0)
        assert says_local(url).context == 32768


@pytest.mark.parametrize("no_proxy, root, direct", [
    ("127.0.0.0/8", "http://127.0.0.1:8080", True),
    ("10.0.0.0/8,127.0.0.1", "http://10.2.3.4:11434", True),
    ("localhost:8080", "http://localhost:8080", True),
    (".internal", "https://gpu.internal", True),
    ("*", "http://anything.example", True),
    ("10.0.0.0/8", "http://127.0.0.1:8080", False),
    ("", "http://127.0.0.1:8080", False),
])
def test_no_proxy_is_read_as_requests_reads_it(monkeypatch, no_proxy, root, direct):
    """The questions to a local server go where the upstream's calls go: urllib alone skips CIDR ranges."""
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert requests.utils.should_bypass_proxies(root, None) is direct  # the upstream client's reading
    assert local_server._bypassed(root) is direct
