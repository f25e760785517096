"""Credentials written into an upstream URL (http://user:password@host/v1/) mean the same in both transports:
Basic auth when nothing else authorizes the request, and never in place of a configured key. Before, the
stock Session (FAST_PATH=off) replaced OPENAI_API_KEY's Bearer header with Basic auth from the URL, while the
fast path dropped the credentials. A fake upstream on loopback records what arrives."""

from __future__ import annotations

import base64

import pytest

from argoproxy.fastpath.transport import FastTransport
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.stock import StockTransport
from argoproxy.upstream.wire import UpstreamRequest
from tests.fakes.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


def sent(fake: FakeOpenAI, fast: bool, url: str, headers: dict[str, str]) -> dict[str, str]:
    fake.received.clear()
    upstream = Upstream(connect_timeout=2, read_timeout=5, max_retries=0, transport=FastTransport if fast else StockTransport)
    with upstream.send(UpstreamRequest("GET", url, headers)) as resp:
        assert resp.status_code == 200
    (got,) = fake.received
    assert got.path == "/v1/models"
    return {k.lower(): v for k, v in got.headers.items()}


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "stock"])
def test_url_credentials_are_basic_auth_and_a_configured_key_wins(fake, fast):
    url = fake.base_url.replace("http://", "http://al%40ice:pa%3Ass@") + "models"
    basic = "Basic " + base64.b64encode(b"al@ice:pa:ss").decode()
    assert sent(fake, fast, url, {})["authorization"] == basic
    assert sent(fake, fast, url, {"Authorization": "Bearer sk-configured"})["authorization"] == "Bearer sk-configured"
    assert "authorization" not in sent(fake, fast, fake.base_url + "models", {})
