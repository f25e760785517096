"""Web pages cannot use the proxy (argoproxy/edge/web_pages.py), through the running app: a cross-site form post
or `text/plain` fetch (no CORS permission needed, the browser only hides the answer) and a DNS-rebinding page
(its own host name resolved to 127.0.0.1) are refused before anything reaches the upstream; clients that are not
browsers, the proxy's own status page and every loopback spelling of the host are served."""

from __future__ import annotations

import http.client
import json
import socket

import openai
import pytest

from tests.proxy_process import running_proxy

CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


def send(port: int, headers: dict[str, str], method: str = "POST", target: str = "/v1/chat/completions",
         body: bytes = CHAT, version: str = "HTTP/1.1") -> tuple[int, bytes]:
    """One request with exactly these headers (Host included, or none at all)."""
    lines = [f"{method} {target} {version}", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, resp.read()


@pytest.fixture(scope="module")
def local(module_fake):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url) as p:
        yield p


@pytest.mark.parametrize("headers", [
    {"Host": "127.0.0.1:5000", "Origin": "https://evil.example", "Content-Type": "text/plain"},  # cross-site fetch
    {"Host": "localhost:5000", "Origin": "http://localhost:8888", "Content-Type": "application/x-www-form-urlencoded"},
    {"Host": "127.0.0.1", "Origin": "null", "Content-Type": "text/plain"},  # a sandboxed frame, a file:// page
    {"Host": "evil.example:5000", "Content-Type": "text/plain"},  # DNS rebinding: the page's own name
    {"Host": "evil.example:5000", "Origin": "http://evil.example:5000", "Content-Type": "application/json"},
    {"Host": "127.0.0.1.nip.io:5000"},
    {"Host": "evil.example:.localhost"}, {"Host": "[::1]:5000@evil.example"}, {"Host": "evil.example/.localhost"},
])
def test_web_pages_are_refused_before_the_upstream(local, upstream, headers):
    status, data = send(local.port, headers)
    error = json.loads(data)["error"]
    assert status == 403 and error["code"] in ("origin_not_allowed", "host_not_allowed"), data
    assert upstream.received == []


@pytest.mark.parametrize("headers", [
    {"Host": f"{host}", "Content-Type": "application/json"}
    for host in ("127.0.0.1", "127.0.0.1:5000", "localhost", "LOCALHOST:1", "[::1]:5000", "127.1.2.3", "app.localhost",
                 "localhost.", "127.0.0.1.:5000", "[::ffff:127.0.0.1]:5000", "[0:0:0:0:0:0:0:1]")
] + [{"Host": "127.0.0.1:5000", "Origin": "http://127.0.0.1:5000", "Content-Type": "application/json"},
     {"Host": "localhost", "Origin": "http://localhost:80", "Content-Type": "application/json"}])
def test_loopback_names_and_same_site_pages_are_served(local, upstream, headers):
    status, data = send(local.port, headers)
    assert status == 200, data
    assert len(upstream.received) == 1


@pytest.mark.parametrize("target", ["/v1/chat/completions", "/health"])
def test_an_http_1_1_request_without_a_host_is_a_400(local, upstream, target):
    """RFC 9112 (3.2): a server answers 400 to an HTTP/1.1 request with no Host; HTTP/1.0 had none to send."""
    status, data = send(local.port, {"Content-Type": "application/json"}, target=target)
    assert status == 400 and json.loads(data)["error"]["code"] == "missing_host", data
    assert upstream.received == []
    status, data = send(local.port, {"Content-Type": "application/json"}, version="HTTP/1.0")
    assert status == 200, data
    status, data = send(local.port, {"Host": "", "Content-Type": "application/json"})  # an empty one is allowed
    assert status == 200, data


def test_the_sdk_and_the_status_page_are_served(local, upstream):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{local.port}/v1", api_key="unused", max_retries=0)
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
    status, _ = send(local.port, {"Host": f"127.0.0.1:{local.port}"}, "GET", "/ui/data", b"")
    assert status == 200


def test_every_interface_keeps_only_the_origin_rule(module_fake, upstream):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, HOST="0.0.0.0") as p:
        assert send(p.port, {"Host": "proxy.internal.example:8080", "Content-Type": "application/json"})[0] == 200
        status, data = send(p.port, {"Host": "proxy.internal.example:8080", "Origin": "https://evil.example"})
        assert status == 403 and json.loads(data)["error"]["code"] == "origin_not_allowed"


def test_allowed_origins_lets_listed_pages_in(module_fake, upstream):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ALLOWED_ORIGINS="http://localhost:3000/") as p:
        ok = {"Host": f"127.0.0.1:{p.port}", "Origin": "http://localhost:3000", "Content-Type": "application/json"}
        assert send(p.port, ok)[0] == 200
        assert send(p.port, {**ok, "Origin": "http://localhost:3001"})[0] == 403


def test_allowed_hosts_names_a_reverse_proxys_host(module_fake, upstream):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ALLOWED_HOSTS="hub.example.org") as p:
        assert send(p.port, {"Host": "hub.example.org", "Content-Type": "application/json"})[0] == 200
        assert send(p.port, {"Host": "hub.example.org.:443", "Content-Type": "application/json"})[0] == 200
        assert send(p.port, {"Host": "other.example.org", "Content-Type": "application/json"})[0] == 403
