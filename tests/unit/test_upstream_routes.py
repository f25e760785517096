"""Proxy selection in the upstream client: the fast path decides once per scheme://host:port whether a proxy
applies (a direct host keeps the pooled path; a proxied one is left to requests, which honours the
environment as curl does), remembers a bounded number of hosts, and a failing proxy is named."""

from __future__ import annotations

import pytest

from argoproxy.fastpath import pool as pool_module
from argoproxy.fastpath.pool import DirectPools
from argoproxy.fastpath.transport import FastTransport
from argoproxy.upstream.proxy_env import proxy_for
from argoproxy.upstream.client import Upstream, make_session, transport_error
from argoproxy.upstream.wire import UpstreamRequest
from tests.fakes.fake_openai import FakeOpenAI

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_proxy_decision_is_made_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    decided: list[str] = []
    monkeypatch.setattr(pool_module, "proxy_for", lambda url: decided.append(url) or proxy_for(url))
    with FakeOpenAI() as fake:
        client = Upstream(connect_timeout=2, read_timeout=5, max_retries=0, transport=FastTransport)
        for path in ("models", "models", "chat/completions"):
            with client.send(UpstreamRequest("GET", fake.base_url + path, {})) as response:
                assert type(response).__name__ == "PooledResponse"  # the fast path
                response.content
    assert decided == [fake.base_url + "models"]


def test_a_proxied_host_is_left_to_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    pools = DirectPools(make_session(4))
    with FakeOpenAI() as fake:
        assert pools.send(UpstreamRequest("GET", f"http://localhost:{fake.port}/v1/models", {}), (2, 5)) is None
        direct = pools.send(UpstreamRequest("GET", fake.base_url + "models", {}), (2, 5))
        assert direct is not None and direct.status_code == 200
        direct.close()


def test_remembered_hosts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "MAX_HOSTS", 4)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing is sent: every host is proxied
    pools = DirectPools(make_session(4))
    for n in range(10):
        assert pools.send(UpstreamRequest("GET", f"http://h{n}.example/v1/", {}), (2, 5)) is None
    assert list(pools._pools) == [f"http://h{n}.example" for n in range(6, 10)]


def test_a_socks_proxy_is_named_not_the_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:pw@127.0.0.1:1080")
    client = Upstream(connect_timeout=2, read_timeout=5, max_retries=0, transport=FastTransport)
    with pytest.raises(Exception) as error:
        client.send(UpstreamRequest("GET", "https://api.example/v1/models", {}))
    message = getattr(error.value, "message", str(error.value))
    assert message.startswith("The proxy 127.0.0.1:1080 (HTTPS_PROXY) uses a scheme cot_proxy does not support")
    assert "pw" not in message


def test_transport_error_names_a_refused_proxy() -> None:
    from argoproxy.upstream.failures import ProxyRefused
    from argoproxy.upstream.proxy_env import ProxyChoice
    error = transport_error(ProxyRefused(), "https://api.example/v1/", (2, 5),
                            ProxyChoice("http://u:p@10.0.0.1:3128", "HTTPS_PROXY"))
    assert error.message.startswith("The proxy 10.0.0.1:3128 (HTTPS_PROXY) refused the connection")
    assert error.code == "proxy_connection_refused" and "u:p" not in error.message
