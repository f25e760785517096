"""The upstream client decides once per scheme://host:port whether a proxy applies (the no-proxy case keeps
the pooled fast path), and remembers a bounded number of hosts."""

from __future__ import annotations

import pytest

from argoproxy import upstream as upstream_module
from argoproxy.upstream import Upstream, UpstreamRequest
from tests.fakes.fake_openai import FakeOpenAI

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_proxy_decision_is_made_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    decided: list[str] = []
    real = upstream_module.proxy_for
    monkeypatch.setattr(upstream_module, "proxy_for", lambda url: decided.append(url) or real(url))
    with FakeOpenAI() as fake:
        client = Upstream(connect_timeout=2, read_timeout=5, max_retries=0)
        for path in ("models", "models", "chat/completions"):
            with client.send(UpstreamRequest("GET", fake.base_url + path, {})) as response:
                assert response.status_code in (200, 404, 405)
                response.content
    assert decided == [fake.base_url + "models"]
    route = next(iter(client._routes.values()))
    assert route.manager is None and route.pool is not None  # direct: the pooled fast path


def test_a_proxied_host_goes_through_a_proxy_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    client = Upstream(connect_timeout=2, read_timeout=5, max_retries=0)
    proxied = client._route("https://api.example:443", "https://api.example:443/v1/")
    direct = client._route("https://direct.example:443", "https://direct.example:443/v1/")
    assert proxied.manager is not None and proxied.proxy.shown == "127.0.0.1:9 (HTTPS_PROXY)"
    assert direct.manager is None
    assert client.proxy_of("https://api.example:443/v1/chat/completions").url == "http://user:pw@127.0.0.1:9"


def test_remembered_hosts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "MAX_ROUTES", 4)
    client = Upstream(connect_timeout=2, read_timeout=5, max_retries=0)
    for n in range(10):
        client._route(f"http://h{n}.example:80", f"http://h{n}.example:80/")
    assert list(client._routes) == [f"http://h{n}.example:80" for n in range(6, 10)]


def test_a_proxy_without_scheme_is_http_and_socks_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from argoproxy.errors import ProxyError
    client = Upstream(connect_timeout=2, read_timeout=5, max_retries=0)
    monkeypatch.setenv("HTTP_PROXY", "127.0.0.1:3128")
    route = client._route("http://api.example:80", "http://api.example:80/v1/")
    assert route.manager is not None and route.manager.proxy.scheme == "http"
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:pw@127.0.0.1:1080")
    with pytest.raises(ProxyError) as error:
        client._route("https://api.example:443", "https://api.example:443/v1/")
    assert error.value.message.startswith("The proxy 127.0.0.1:1080 (HTTPS_PROXY) uses a scheme")
    assert "pw" not in error.value.message
