"""Fixtures of the contract suites: each seam's implementations, both in one run."""

from __future__ import annotations

import http.client
from typing import Iterator

import pytest

from argoproxy.fastpath.headers import parse_headers
from argoproxy.fastpath.transport import FastTransport
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.stock import StockTransport
from argoproxy.upstream.transport import TransportFactory
from tests.contracts.wire_upstream import WireUpstream

MODES = ("on", "off")


@pytest.fixture(params=MODES, ids=lambda mode: f"FAST_PATH-{mode}")
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> TransportFactory:
    """The upstream transport each mode runs, with the response-head parser the mode's process has
    (fastpath.install() puts the fast path's in with FAST_PATH=on)."""
    if request.param == "on":
        monkeypatch.setattr(http.client, "parse_headers", parse_headers)
        return FastTransport
    return StockTransport


@pytest.fixture
def client(transport: TransportFactory) -> Upstream:
    """The real client, its policy over the mode's transport; no retries unless a test asks."""
    return Upstream(connect_timeout=5, read_timeout=10, max_retries=0, transport=transport)


@pytest.fixture
def wire() -> Iterator[WireUpstream]:
    server = WireUpstream()
    yield server
    server.close()
