"""The upstream client's policy (argoproxy/upstream/client.py's Upstream.send), the same in both modes, run
in-process over the test fake transport (tests/fakes/fake_upstream.py) on a fake clock: which failures are asked
again and how often, the one replay of a request met by a closed connection, the call budget, URL credentials,
each attempt's trace context and span, and the deadlines and bounds each attempt is handed. The transports'
side of these (what they raise, a fresh connection) is test_upstream_transport.py's."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.upstream import client as policy
from argoproxy.upstream import failures
from argoproxy.upstream.client import CallBudget
from argoproxy.upstream.failures import (ClosedUnanswered, ConnectRefused, ConnectTimeout, NameNotResolved,
                                         NotConnected, ProxyRefused, ReadTimeout, TlsFailure)
from argoproxy.upstream.proxy_env import ProxyChoice
from argoproxy.upstream.wire import UpstreamRequest
from tests.fakes.fake_upstream import FakeResponse, FakeUpstream

URL = "http://127.0.0.1:9/v1/chat/completions"
# What the transports raise (the failure family: test_upstream_transport.py holds each transport to it).
REFUSED = ConnectRefused()
READ_TIMEOUT = ReadTimeout()
CLOSED = ClosedUnanswered()


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [0.0]
    monkeypatch.setattr(policy.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(policy, "_sleep", lambda s: now.__setitem__(0, now[0] + s))
    return now


def upstream(*outcomes: FakeResponse | BaseException | int, retries: int = 2) -> FakeUpstream:
    """The real client over the fake transport, whose attempts meet these outcomes in turn (an int: a whole
    answer of that status)."""
    up = FakeUpstream(read_timeout=60, max_retries=retries)
    for outcome in outcomes:
        up.queue.append(answer(outcome) if isinstance(outcome, int) else outcome)
    return up


def answer(status: int, **headers: str) -> FakeResponse:
    return FakeResponse("", status, {"Content-Length": "2", **{k.replace("_", "-"): v for k, v in headers.items()}},
                        [b"{}"])


def post(**headers: str) -> UpstreamRequest:
    return UpstreamRequest("POST", URL, {"Content-Type": "application/json", **headers}, b"{}")


# ---- what is asked again


def test_a_refused_connection_is_asked_again_up_to_max_retries():
    up = upstream(REFUSED, REFUSED, REFUSED)
    with pytest.raises(ProxyError) as err:
        up.send(post())
    assert len(up.sent) == 3 and err.value.code == "upstream_connection_refused"
    up = upstream(REFUSED, 200)
    assert up.send(post()).status_code == 200 and up.sent[-1].fresh_connection is False


@pytest.mark.parametrize("failure, tries", [
    (ConnectRefused(), 3), (ConnectTimeout(), 3), (NotConnected(), 3), (ProxyRefused(), 3),
    (NameNotResolved(), 1), (TlsFailure(), 1), (ReadTimeout(), 1), (ClosedUnanswered(), 1),
], ids=lambda v: type(v).__name__ if not isinstance(v, int) else str(v))
def test_only_a_connection_never_made_is_asked_again_within_max_retries(failure, tries):
    up = upstream(failure, failure, failure)  # a POST: never replayed
    with pytest.raises(ProxyError) as err:
        up.send(post())
    assert len(up.sent) == tries and (err.value.status, err.value.code) == (failure.status, failure.code)


def test_a_read_timeout_is_not_asked_again_the_model_may_be_working():
    up = upstream(READ_TIMEOUT, 200)
    with pytest.raises(ProxyError) as err:
        up.send(post())
    assert len(up.sent) == 1 and err.value.status == 504 and err.value.code == "upstream_timeout"


@pytest.mark.parametrize("outcomes, tries, status", [
    ((502, 503, 200), 3, 200),
    ((504, 504, 504), 3, 504),  # MAX_RETRIES spent: the last answer goes to the client
    ((400, 200), 1, 400),
    ((429, 200), 1, 429),
    ((answer(429, Retry_After="1", x_should_retry="true"), 200), 1, 429),  # a 4xx is never asked again
    ((answer(503, x_should_retry="false"), 200), 1, 503),
    ((answer(500, x_should_retry="true"), 200), 2, 200),
    ((500, 200), 1, 500),
    ((answer(503, Retry_After="120"), 200), 1, 503),  # past RETRY_AFTER_BUDGET: the client's SDK waits
], ids=["502 503 retried", "retries spent", "400", "429", "429 told to retry", "told not to retry",
        "500 told to retry", "500", "long Retry-After"])
def test_which_answers_are_asked_again(outcomes, tries, status):
    up = upstream(*outcomes)
    resp = up.send(post())
    assert (len(up.sent), resp.status_code, resp.retried) == (tries, status, tries - 1)


def test_retry_after_is_waited_for_and_retries_stop_at_the_retry_budget(clock):
    up = upstream(answer(503, Retry_After="2"), 200)
    assert up.send(post()).status_code == 200 and clock[0] == 2.0
    up = upstream(*[answer(503, Retry_After="9")] * 4, retries=5)
    assert up.send(post()).status_code == 503 and len(up.sent) == 2  # a third would start past RETRY_BUDGET


def test_the_call_budget_bounds_every_attempt():
    up = upstream(503, 503, 200)
    budget = CallBudget(2)
    assert up.send(post(), budget=budget).status_code == 503 and len(up.sent) == 2 and budget.left == 0
    up = upstream(REFUSED, 200)
    budget = CallBudget(1)
    with pytest.raises(ProxyError):
        up.send(post(), budget=budget)
    assert len(up.sent) == 1


# ---- the one replay of a request met by a closed connection


@pytest.mark.parametrize("req, again", [
    (UpstreamRequest("GET", URL, {}), True),
    (post(**{"Idempotency-Key": "k1"}), True),
    (post(**{"X-Idempotency-Key": "k1"}), True),
    (post(), False),
], ids=["GET", "keyed POST", "x-keyed POST", "POST"])
def test_a_request_met_by_a_closed_connection_is_sent_once_more_only_when_it_may_be(req, again):
    up = upstream(CLOSED, 200, retries=0)  # whatever MAX_RETRIES says
    if again:
        assert up.send(req).status_code == 200
        assert [r.fresh_connection for r in up.sent] == [False, True]  # on a connection of its own
    else:
        with pytest.raises(ProxyError) as err:
            up.send(req)
        assert len(up.sent) == 1 and err.value.code == "upstream_disconnected"


def test_a_replay_is_made_once_and_takes_a_call_of_the_budget():
    up = upstream(CLOSED, CLOSED, 200, retries=3)
    with pytest.raises(ProxyError) as err:
        up.send(UpstreamRequest("GET", URL, {}))
    assert len(up.sent) == 2 and err.value.code == "upstream_disconnected"
    up = upstream(CLOSED, 200)
    with pytest.raises(ProxyError):
        up.send(UpstreamRequest("GET", URL, {}), budget=CallBudget(1))
    assert len(up.sent) == 1


# ---- credentials


def test_url_credentials_go_as_basic_auth_and_leave_the_url():
    up = upstream(200)
    up.send(UpstreamRequest("GET", "http://us%40er:p%3Ass@127.0.0.1:9/v1/models", {}))
    [sent] = up.sent
    assert sent.url == "http://127.0.0.1:9/v1/models"
    assert sent.headers["Authorization"] == "Basic dXNAZXI6cDpzcw=="  # base64 of "us@er:p:ss"


def test_a_configured_key_wins_over_url_credentials():
    up = upstream(200)
    up.send(UpstreamRequest("GET", "http://user:pw@127.0.0.1:9/v1/models", {"Authorization": "Bearer sk-1"}))
    [sent] = up.sent
    assert sent.url == "http://127.0.0.1:9/v1/models" and sent.headers["Authorization"] == "Bearer sk-1"


# ---- trace context and spans


PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_clients_trace_context_goes_up_unless_the_request_has_its_own():
    up = upstream(200, 200)
    up.send(post(), client_headers={"traceparent": PARENT, "tracestate": "k=v", "X-Other": "1"})
    up.send(post(traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"), client_headers={"traceparent": PARENT})
    assert up.sent[0].headers["traceparent"] == PARENT and up.sent[0].headers["tracestate"] == "k=v"
    assert "X-Other" not in up.sent[0].headers
    assert up.sent[1].headers["traceparent"].startswith("00-" + "1" * 32)


class Tracer:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def attempt(self, call: object, req: UpstreamRequest) -> UpstreamRequest:
        self.events.append(("attempt", call))
        return req.with_headers({**req.headers, "traceparent": f"span-{len(self.events)}"})

    def answered(self, call: object, status: int) -> None:
        self.events.append(("answered", status))

    def failed(self, call: object, error: BaseException) -> None:
        self.events.append(("failed", type(error).__name__))


def test_each_attempt_of_a_traced_call_is_a_span_carrying_its_own_context():
    up = upstream(REFUSED, 503, 200)
    up.tracer = tracer = Tracer()
    assert up.send(post(), call="call-1").status_code == 200
    assert tracer.events == [("attempt", "call-1"), ("failed", "ConnectRefused"), ("attempt", "call-1"),
                             ("answered", 503), ("attempt", "call-1"), ("answered", 200)]
    assert [r.headers["traceparent"] for r in up.sent] == ["span-1", "span-3", "span-5"]
    up.send(post())  # the proxy's own call (no client call): no span
    assert len(tracer.events) == 6


# ---- deadlines and bounds handed to the transport


def test_each_attempt_is_handed_its_deadlines_and_its_bound():
    up = upstream(502, 200)
    up.max_response_bytes = 1000
    bounded = up.send(UpstreamRequest("POST", URL, {}, b"{}", timeout=7.5, max_bytes=10))
    default = up.send(post())
    assert up.fake.timeouts == [(1.0, 7.5), (1.0, 7.5), (1.0, 60)]
    assert (bounded.max_bytes, default.max_bytes) == (10, 1000)


def test_an_interim_answer_as_the_answer_is_a_502_never_relayed():
    interim = answer(103)
    up = upstream(interim)
    with pytest.raises(ProxyError) as err:
        up.send(post())
    assert err.value.code == "upstream_bad_response" and interim.closed


# ---- what the client is told of each failure


WHERE = "https://user:pw@api.example:8443/v1/chat/completions?key=k"
PROXY = ProxyChoice("http://puser:ppw@10.0.0.1:3128", "HTTPS_PROXY")


@pytest.mark.parametrize("failure, status, code, message", [
    (failures.ConnectRefused(), 502, "upstream_connection_refused",
     "The upstream server api.example:8443 refused the connection: is it running?"),
    (failures.ConnectTimeout(), 504, "upstream_connect_timeout",
     "Timed out connecting to the upstream server api.example:8443 after 2s."),
    (failures.NotConnected(), 502, "upstream_connection_error",
     "Failed to connect to the upstream server api.example:8443."),
    (failures.NameNotResolved(), 502, "upstream_dns_error",
     "Cannot resolve the upstream host api.example: check the target URL."),
    (failures.TlsFailure(), 502, "upstream_tls_error",
     "TLS verification failed for the upstream server api.example:8443."),
    (failures.ReadTimeout(), 504, "upstream_timeout",
     "The upstream server api.example:8443 did not answer within 7.5s."),
    (failures.ClosedUnanswered(), 502, "upstream_disconnected",
     "The upstream server api.example:8443 closed the connection without answering."),
    (failures.BadAnswer("more than 8 interim (1xx) answers and no answer"), 502, "upstream_bad_response",
     "The upstream server api.example:8443 sent more than 8 interim (1xx) answers and no answer."),
    (failures.UpstreamFailure(), 502, "upstream_error", "Failed to forward the request to api.example:8443."),
    (failures.ProxyRefused(), 502, "proxy_connection_refused", "The proxy 10.0.0.1:3128 (HTTPS_PROXY) refused the "
     "connection: is it running? (set NO_PROXY for hosts reached directly)"),
    (failures.ProxyConnectTimeout(), 504, "proxy_connect_timeout",
     "Timed out connecting to the proxy 10.0.0.1:3128 (HTTPS_PROXY) after 2s."),
    (failures.ProxyNameNotResolved(), 502, "proxy_dns_error",
     "Cannot resolve the proxy host of 10.0.0.1:3128 (HTTPS_PROXY)."),
    (failures.ProxyAuthRequired(), 502, "proxy_auth_required", "The proxy 10.0.0.1:3128 (HTTPS_PROXY) refused the "
     "request: 407 Proxy Authentication Required (check the user and password in that variable)."),
    (failures.ProxyTunnelFailed("502 Bad Gateway"), 502, "proxy_tunnel_failed", "The proxy 10.0.0.1:3128 (HTTPS_PROXY) "
     "could not reach the upstream server api.example:8443: 502 Bad Gateway."),
    (failures.ProxyFailure(), 502, "proxy_error",
     "Failed to reach the upstream server api.example:8443 through the proxy 10.0.0.1:3128 (HTTPS_PROXY)."),
    (failures.ProxyUnsupported(), 502, "proxy_unsupported", "The proxy 10.0.0.1:3128 (HTTPS_PROXY) uses a scheme "
     "cot_proxy does not support: use an http:// or https:// proxy."),
], ids=lambda v: type(v).__name__ if isinstance(v, failures.UpstreamFailure) else None)
def test_each_failure_is_told_with_its_status_code_and_words_never_a_credential(failure, status, code, message):
    error = policy.transport_error(failure, WHERE, (2.0, 7.5), PROXY)
    assert (error.status, error.code, error.message) == (status, code, message)
