"""The upstream client carries a client's W3C trace context as it sends (Upstream.send's `client_headers`), on
both transports: where the request's own headers (a backend that builds its own, ARGO's) left it out, the
client's traceparent and tracestate go up; a request that carries one already (a backend that passed the
client's headers on) goes as it is. A fake upstream on loopback records what arrives."""

from __future__ import annotations

import pytest

from argoproxy.fastpath.transport import FastTransport
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.stock import StockTransport
from argoproxy.upstream.wire import UpstreamRequest
from tests.fakes.fake_openai import FakeOpenAI

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CLIENT = {"Traceparent": PARENT, "Tracestate": "vendor=x", "Authorization": "Bearer sk-client"}


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


def arrived(fake: FakeOpenAI, fast: bool, headers: dict[str, str],
            client_headers: dict[str, str] | None) -> dict[str, str]:
    fake.received.clear()
    upstream = Upstream(connect_timeout=2, read_timeout=5, max_retries=0, transport=FastTransport if fast else StockTransport)
    req = UpstreamRequest("GET", fake.base_url + "models", headers)
    with upstream.send(req, client_headers=client_headers) as resp:
        assert resp.status_code == 200
    (got,) = fake.received
    return {k.lower(): v for k, v in got.headers.items()}


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "stock"])
def test_the_clients_trace_context_goes_up_where_the_request_left_it_out(fake, fast):
    sent = arrived(fake, fast, {"Authorization": "Bearer sk-upstream"}, CLIENT)
    assert (sent["traceparent"], sent["tracestate"]) == (PARENT, "vendor=x")
    assert sent["authorization"] == "Bearer sk-upstream"  # only the trace context is the client's


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "stock"])
def test_a_request_that_carries_a_trace_context_goes_as_it_is(fake, fast):
    own = "00-11111111111111111111111111111111-2222222222222222-01"
    sent = arrived(fake, fast, {"traceparent": own}, CLIENT)
    assert sent["traceparent"] == own and "tracestate" not in sent
    assert "traceparent" not in arrived(fake, fast, {}, None)  # the proxy's own calls: no client, no context
