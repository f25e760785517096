"""The upstream client's retry rules, with the transport replaced (no sockets, a fake clock)."""

import pytest
import urllib3

from argoproxy.upstream import client as up
from argoproxy.errors import ProxyError
from argoproxy.fastpath.pool import PooledResponse
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.failures import ConnectRefused, ConnectTimeout, NameNotResolved
from argoproxy.upstream.wire import UpstreamRequest


class FakeRaw:
    def __init__(self, status, headers=None):
        self.status = status
        self.headers = urllib3.HTTPHeaderDict(headers or {})
        self.reason = "x"
        self._fp = None
        self.connection = None

    def isclosed(self):
        return True

    def release_conn(self):
        pass


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(up.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(up, "_sleep", lambda s: now.__setitem__(0, now[0] + s))
    return now


class Scripted:
    """A transport answering from a script of outcomes, on the fake clock."""

    def __init__(self, clock, outcomes, cost):
        self.clock, self.outcomes, self.cost, self.calls = clock, outcomes, cost, []

    def send(self, req, timeout, max_bytes):
        self.calls.append(self.clock[0])
        self.clock[0] += self.cost
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return PooledResponse(FakeRaw(*outcome), req.url)


def client(monkeypatch, clock, outcomes, cost=0.0, retries=2):
    scripted = Scripted(clock, outcomes, cost)
    u = Upstream(connect_timeout=10, read_timeout=60, max_retries=retries, transport=lambda session: scripted)
    return u, scripted.calls


REQ = UpstreamRequest("POST", "http://127.0.0.1:9/v1/chat/completions", {}, b"{}")
REFUSED = ConnectRefused()


def test_refused_connections_are_retried_then_reported(monkeypatch, clock):
    u, calls = client(monkeypatch, clock, [REFUSED, REFUSED, REFUSED])
    with pytest.raises(ProxyError) as err:
        u.send(REQ)
    assert len(calls) == 3 and err.value.status == 502 and "refused" in err.value.message


def test_retry_after_within_budget_is_waited_for(monkeypatch, clock):
    u, calls = client(monkeypatch, clock, [(503, {"Retry-After": "2"}), (200,)])
    assert u.send(REQ).status_code == 200 and calls == [0.0, 2.0]


def test_long_retry_after_goes_to_the_client(monkeypatch, clock):
    u, calls = client(monkeypatch, clock, [(429, {"Retry-After": "120"})])
    assert u.send(REQ).status_code == 429 and len(calls) == 1


def test_429_without_retry_after_is_not_retried_but_503_is(monkeypatch, clock):
    u, calls = client(monkeypatch, clock, [(429,)])
    assert u.send(REQ).status_code == 429 and len(calls) == 1
    u, calls = client(monkeypatch, clock, [(429, {"Retry-After": "1", "x-should-retry": "true"}), (200,)])
    assert u.send(REQ).status_code == 429 and len(calls) == 1  # a 4xx, 429 included, is never asked again
    u, calls = client(monkeypatch, clock, [(503,), (200,)])
    assert u.send(REQ).status_code == 200 and len(calls) == 2


def test_retries_stop_at_the_budget(monkeypatch, clock):
    timeout = ConnectTimeout()
    u, calls = client(monkeypatch, clock, [timeout, timeout, timeout], cost=10.0, retries=5)
    with pytest.raises(ProxyError) as err:
        u.send(REQ)
    assert err.value.status == 504
    assert len(calls) == 2 and calls[-1] < up.RETRY_BUDGET  # no attempt started after the budget


def test_dns_failures_are_not_retried(monkeypatch, clock):
    dns = NameNotResolved()
    u, calls = client(monkeypatch, clock, [dns, (200,)])
    with pytest.raises(ProxyError) as err:
        u.send(REQ)
    assert len(calls) == 1 and err.value.code == "upstream_dns_error"
