"""Corporate proxies: HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY as requests and curl honour them, for
upstream calls (HTTPS through CONNECT), /health probes and image downloads, against a real forward proxy
(proxy.py from PyPI, installed by requirements-dev.txt) and a local TLS upstream whose certificate comes from
a CA made here (trusted through REQUESTS_CA_BUNDLE). The proxy's access log says what went through it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests

from argoproxy.upstream import images
from argoproxy.upstream.proxy_env import proxy_for
from tests.fakes.fake_images import FakeImageServer
from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks
from tests.proxy_process import ProxyProcess, free_port, running_proxy

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("proxy") is None,
                                reason="proxy.py (a forward proxy from PyPI) is not installed: ./run_tests.sh "
                                       "installs it from requirements-dev.txt")


# ---- a real forward proxy -----------------------------------------------------------------------------

class ForwardProxy:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def lines(self) -> list[str]:
        """Its access-log lines so far: `CONNECT host:port` for tunnels, `GET host:port/path` otherwise."""
        return [line for line in self.log.read_text().splitlines() if "access_log" in line]

    def saw(self, text: str, timeout: float = 10.0) -> bool:
        """Whether a log line holds text; a tunnel is logged when it closes, so this waits a little for it."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


@contextmanager
def forward_proxy(tmp: Path, basic_auth: str = "") -> Iterator[ForwardProxy]:
    port = free_port()
    log = tmp / f"proxy-{port}.log"
    command = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", str(port), "--num-workers", "1",
               "--log-file", str(log), "--log-level", "INFO"]
    if basic_auth:
        command += ["--basic-auth", basic_auth]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1, proxies={"http": "", "https": ""})
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("proxy.py did not start")
                time.sleep(0.1)
        yield ForwardProxy(proc, port, log)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with forward_proxy(tmp_path_factory.mktemp("proxy")) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with forward_proxy(tmp_path_factory.mktemp("authproxy"), basic_auth="alice:s3cret-pw") as proxy:
        yield proxy


# ---- a TLS upstream with its own CA -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed (Debian package openssl): no test CA can be made")
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cot_proxy test CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "leaf.key", "-out", "leaf.csr")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", "leaf.pem", "-extfile", "ext.cnf")
    return {"ca": d / "ca.pem", "cert": d / "leaf.pem", "key": d / "leaf.key"}


@contextmanager
def tls_upstream(tls_files: dict[str, Path]) -> Iterator[FakeOpenAI]:
    """FakeOpenAI over TLS, addressed as https://localhost:PORT/v1/."""
    fake = FakeOpenAI()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_files["cert"], tls_files["key"])
    fake.server.socket = ctx.wrap_socket(fake.server.socket, server_side=True)
    fake.base_url = f"https://localhost:{fake.port}/v1/"
    with fake:
        yield fake


# ---- helpers --------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of this machine reaches a test (an empty lower-case one would even switch off the
    upper-case one, as in urllib and curl), so each test sets exactly its own."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def no_proxies(**settings: str) -> dict[str, str]:
    """Settings for running_proxy: exactly these proxy variables (clean_proxy_env removed the machine's)."""
    return settings


def call(proxy: ProxyProcess, stream: bool = False) -> tuple[int, dict | str]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    request = urllib.request.Request(proxy.base_url + "/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            raw = response.read()
            return response.status, raw.decode() if stream else json.loads(raw)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())



# ---- upstream calls and probes ------------------------------------------------------------------------

def test_https_upstream_through_a_connect_tunnel(open_proxy: ForwardProxy, tls_files: dict[str, Path]) -> None:
    with tls_upstream(tls_files) as fake, running_proxy(**no_proxies(
            TARGET_BASE_URL=fake.base_url, HTTPS_PROXY=open_proxy.url, NO_PROXY="127.0.0.1,example.internal",
            REQUESTS_CA_BUNDLE=str(tls_files["ca"]))) as proxy:
        status, answer = call(proxy)
        assert status == 200, answer
        assert answer["choices"][0]["message"]["content"] == fake.default_content
        fake.add(Stream(chat_chunks(["a", "b"])))
        status, text = call(proxy, stream=True)
        assert status == 200 and "data: [DONE]" in text
        assert proxy.health()[0] == 200
        assert [r.path for r in fake.received] == ["/v1/chat/completions", "/v1/chat/completions", "/v1/"]
    assert open_proxy.saw(f"CONNECT localhost:{fake.port}")  # logged when the proxy's connections closed


def test_tls_upstream_is_verified_through_the_tunnel(open_proxy: ForwardProxy, tls_files: dict[str, Path]) -> None:
    """Without the test CA the certificate is refused: the tunnel does not weaken verification."""
    with tls_upstream(tls_files) as fake, running_proxy(**no_proxies(
            TARGET_BASE_URL=fake.base_url, HTTPS_PROXY=open_proxy.url)) as proxy:
        status, answer = call(proxy)
        assert status == 502 and "TLS" in answer["error"]["message"], answer
        assert fake.received == []


def test_plain_http_upstream_through_the_proxy_lower_case(open_proxy: ForwardProxy) -> None:
    with FakeOpenAI() as fake, running_proxy(**no_proxies(
            TARGET_BASE_URL=f"http://localhost:{fake.port}/v1/", http_proxy=open_proxy.url)) as proxy:
        assert call(proxy)[0] == 200
        assert proxy.health()[0] == 200
    assert open_proxy.saw(f"POST localhost:{fake.port}/v1/chat/completions")


@pytest.mark.parametrize("no_proxy", ["127.0.0.1,localhost", "127.0.0.0/8", "*", "localhost:{port},other"])
def test_no_proxy_hosts_are_reached_directly(open_proxy: ForwardProxy, tls_files: dict[str, Path],
                                             no_proxy: str) -> None:
    """The Argonne case: internet behind a proxy, internal hosts (ARGO) directly."""
    with tls_upstream(tls_files) as fake:
        host = "127.0.0.1" if "/" in no_proxy else "localhost"
        before = len(open_proxy.lines())
        with running_proxy(**no_proxies(TARGET_BASE_URL=f"https://{host}:{fake.port}/v1/", HTTP_PROXY=open_proxy.url,
                                        HTTPS_PROXY=open_proxy.url, NO_PROXY=no_proxy.format(port=fake.port),
                                        REQUESTS_CA_BUNDLE=str(tls_files["ca"]))) as proxy:
            assert call(proxy)[0] == 200
            assert proxy.health()[0] == 200
        assert len(fake.received) == 2
    assert not open_proxy.saw(f":{fake.port}", timeout=1.0), open_proxy.lines()[before:]


def test_all_proxy_is_used_when_no_scheme_proxy_is_set(open_proxy: ForwardProxy) -> None:
    with FakeOpenAI() as fake, running_proxy(**no_proxies(
            TARGET_BASE_URL=f"http://localhost:{fake.port}/v1/", ALL_PROXY=open_proxy.url)) as proxy:
        assert call(proxy)[0] == 200
    assert open_proxy.saw(f"localhost:{fake.port}/v1/chat/completions")


def test_a_refused_proxy_is_named_not_the_upstream(tls_files: dict[str, Path]) -> None:
    dead = free_port()
    with tls_upstream(tls_files) as fake, running_proxy(**no_proxies(
            TARGET_BASE_URL=fake.base_url, HTTPS_PROXY=f"http://proxyuser:hunter2@127.0.0.1:{dead}",
            REQUESTS_CA_BUNDLE=str(tls_files["ca"]), MAX_RETRIES="0")) as proxy:
        status, answer = call(proxy)
        message = answer["error"]["message"]
        assert status == 502, answer
        assert f"proxy 127.0.0.1:{dead} (HTTPS_PROXY) refused the connection" in message
        assert "upstream server" not in message
        status, body = proxy.health()
        assert status == 503 and f"proxy 127.0.0.1:{dead} (HTTPS_PROXY)" in body["error"]
        log = proxy.read_log()
    for text in (json.dumps(answer), json.dumps(body), log):
        assert "hunter2" not in text and "proxyuser" not in text


@pytest.mark.parametrize("credentials", ["", "alice:wrong-pw@"])
def test_proxy_authentication_required_is_named(auth_proxy: ForwardProxy, tls_files: dict[str, Path],
                                                credentials: str) -> None:
    with tls_upstream(tls_files) as fake, FakeOpenAI() as plain, running_proxy(**no_proxies(
            TARGET_BASE_URL=fake.base_url, HTTPS_PROXY=f"http://{credentials}127.0.0.1:{auth_proxy.port}",
            REQUESTS_CA_BUNDLE=str(tls_files["ca"]))) as proxy:
        status, answer = call(proxy)
        assert status == 502, answer
        assert answer["error"]["message"].startswith(
            f"The proxy 127.0.0.1:{auth_proxy.port} (HTTPS_PROXY) refused the request: 407 Proxy Authentication Required")
        assert answer["error"]["code"] == "proxy_auth_required"
        status, body = proxy.health()
        assert status == 503 and "407" in body["error"]
        log = proxy.read_log()
    assert fake.received == [] and plain.received == []
    for text in (json.dumps(answer), json.dumps(body), log):
        assert "wrong-pw" not in text


def test_plain_http_407_is_the_proxys_answer(auth_proxy: ForwardProxy) -> None:
    with FakeOpenAI() as fake, running_proxy(**no_proxies(
            TARGET_BASE_URL=f"http://localhost:{fake.port}/v1/", HTTP_PROXY=auth_proxy.url)) as proxy:
        status, answer = call(proxy)
        assert status == 502 and answer["error"]["code"] == "proxy_auth_required", answer
        assert f"127.0.0.1:{auth_proxy.port} (HTTP_PROXY)" in answer["error"]["message"]
        status, body = proxy.health()
        assert status == 503 and "407 Proxy Authentication Required" in body["error"]


def test_proxy_credentials_in_the_url_are_sent(auth_proxy: ForwardProxy, tls_files: dict[str, Path]) -> None:
    with tls_upstream(tls_files) as fake, running_proxy(**no_proxies(
            TARGET_BASE_URL=fake.base_url, HTTPS_PROXY=f"http://alice:s3cret-pw@127.0.0.1:{auth_proxy.port}",
            REQUESTS_CA_BUNDLE=str(tls_files["ca"]))) as proxy:
        assert call(proxy)[0] == 200
        assert proxy.health()[0] == 200
    assert auth_proxy.saw(f"CONNECT localhost:{fake.port}")


# ---- image downloads: through the proxy, still to the checked address ---------------------------------

def test_image_download_through_the_proxy_goes_to_the_checked_address(
        auth_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = images.ImageOptions(allow_private=True, image_timeout=10.0)
    with FakeImageServer() as server:
        url = f"http://localhost:{server.port}/img/red.png"
        monkeypatch.setenv("HTTP_PROXY", f"http://alice:wrong@127.0.0.1:{auth_proxy.port}")
        with pytest.raises(images.ImageFetchError):  # the proxy was asked (and refused): it is in the path
            images.fetch_image(url, opts, images.image_session())
        assert server.requests == []
        monkeypatch.setenv("HTTP_PROXY", f"http://alice:s3cret-pw@127.0.0.1:{auth_proxy.port}")
        session = images.image_session()
        fetched = images.fetch_image(url, opts, session)
        assert fetched.mime == "image/png"
        assert server.requests[-1]["host"] == f"localhost:{server.port}"
        session.close()
    # The proxy was given the address checked here, never the name to resolve again.
    assert auth_proxy.saw(f"GET 127.0.0.1:{server.port}/img/red.png")
    assert not auth_proxy.saw(f"localhost:{server.port}", timeout=0.5)


def test_image_hosts_in_no_proxy_are_fetched_directly(open_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", open_proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost")
    with FakeImageServer() as server:
        session = images.image_session()
        fetched = images.fetch_image(f"http://localhost:{server.port}/img/red.png",
                                     images.ImageOptions(allow_private=True, image_timeout=10.0), session)
        assert fetched.mime == "image/png" and len(server.requests) == 1
        session.close()
    assert not open_proxy.saw(f":{server.port}", timeout=1.0)


def test_private_image_addresses_stay_refused_behind_a_proxy(open_proxy: ForwardProxy,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", open_proxy.url)
    with FakeImageServer() as server, pytest.raises(images.ImageFetchError):
        images.fetch_image(f"http://localhost:{server.port}/img/red.png", images.ImageOptions(image_timeout=5.0),
                           images.image_session())
    assert not open_proxy.saw(f":{server.port}", timeout=1.0)  # refused before anything was sent


# ---- the decision itself, as requests makes it ----------------------------------------------------------

@pytest.mark.parametrize("env,url,expected", [
    ({"HTTPS_PROXY": "http://p:1"}, "https://api.example.com/v1/", "http://p:1"),
    ({"https_proxy": "http://p:1"}, "https://api.example.com/v1/", "http://p:1"),
    ({"HTTPS_PROXY": "http://p:1"}, "http://api.example.com/v1/", ""),
    ({"ALL_PROXY": "http://p:2"}, "http://api.example.com/v1/", "http://p:2"),
    ({"all_proxy": "http://p:2", "HTTP_PROXY": "http://p:3"}, "http://api.example.com/", "http://p:3"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.example.com"}, "https://api.example.com/v1/", ""),
    ({"HTTPS_PROXY": "http://p:1", "no_proxy": ".example.com"}, "https://api.example.com/v1/", ""),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, "https://api.example.com/v1/", ""),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.org"}, "https://api.example.com/v1/", "http://p:1"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.example.com:8443"}, "https://api.example.com:8443/", ""),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.example.com:8443"}, "https://api.example.com/", "http://p:1"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3/v1/", ""),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, "https://11.1.2.3/v1/", "http://p:1"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://api.example.com/", ""),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": " localhost , 127.0.0.1 "}, "https://127.0.0.1:9/", ""),
])
def test_proxy_decision(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    choice = proxy_for(url)
    assert choice.url == expected
    if expected:
        assert choice.variable in env and choice.shown.startswith("p:")
