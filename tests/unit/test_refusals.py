"""Error answers by cause (argoproxy/observe/refusals.py) and what the status page's load history counts of them:
a refused request is the key's refusal, never a request against its rpm."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.observe.load_history import LoadHistory
from argoproxy.observe.refusals import CAUSES, DECIDED, FAILED, error_cause, refusal_cause
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.call_records import CallEnd, ended
from argoproxy.shared_cells import SharedCells


@pytest.mark.parametrize(("status", "code", "cause", "expected"), [
    (429, "rate_limit_exceeded", None, "rate"),
    (429, "rate_limit_exceeded", "budget", "budget"),
    (429, "background_limit_reached", None, "rate"),
    (429, "queue_full", "queue", "queue"),  # admission's: the servers were full, not the key past its limits
    (503, "queue_timeout", None, "queue"),
    (401, "missing_api_key", None, "auth"),
    (401, "invalid_api_key", None, "auth"),
    (403, "admin_key_required", None, "auth"),
    (403, "origin_not_allowed", None, "auth"),
    (403, "model_not_allowed", None, "model"),
    (404, "model_not_found", None, "model"),
    (400, "invalid_json", None, "request"),
    (404, "unknown_route", None, "request"),
    (413, "request_too_large", None, "request"),
    (400, "upstream_400", None, "upstream"),
    (429, "upstream_429", None, "upstream"),  # the upstream's own rate limit is not a key's
    (502, "upstream_connection_refused", None, "upstream"),
    (504, "proxy_connect_timeout", None, "upstream"),
    (403, "argo_auth_error", None, "upstream"),
    (503, "unhealthy", None, "upstream"),
    (502, None, None, "upstream"),
    (500, "internal_error", None, "proxy"),
    (503, "key_store_unavailable", None, "proxy"),
])
def test_an_error_answers_cause(status, code, cause, expected):
    assert error_cause(status, code, cause) == expected


def test_the_causes_are_decisions_or_failures():
    assert DECIDED | FAILED == set(CAUSES) and not DECIDED & FAILED
    assert {"rate", "budget", "auth", "model", "upstream"} <= set(CAUSES)  # the ones the operators asked for


def test_a_team_keys_refusal_says_budget_or_rate():
    """Team keys answer both with code rate_limit_exceeded (what clients read); the cause tells them apart."""
    from argoproxy.teamkeys.service import TeamKeys
    from argoproxy.teamkeys.records import Budget, KeyRecord

    class Store:
        def __init__(self, by: str) -> None:
            self.by = by

        def reserve(self, record, now, tokens, money=0):
            return 30.0, self.by, ""

    record = KeyRecord(name="alice", digest="d", prefix="sk-proxy-a", models=(), rpm=5, tpm=0,
                       budget=Budget(40, "day"))
    for by, cause in (("budget", "budget"), ("requests", "rate"), ("tokens", "rate"), ("parallel", "rate")):
        with pytest.raises(ProxyError) as refused:
            TeamKeys(Store(by)).reserve(Call.of("chat", "POST", "v1/chat/completions"), record, {"max_tokens": 1})
        assert (refused.value.status, refused.value.code, refused.value.cause) == (429, "rate_limit_exceeded", cause)


def call_with(status: int, refused: str | None = None, upstream_status: int | None = None) -> CallEnd:
    call = Call.of("chat", "POST", "v1/chat/completions")
    call.outcome.status, call.outcome.refused, call.outcome.upstream_status = status, refused, upstream_status
    return ended(call)


def test_a_calls_cause():
    assert refusal_cause(call_with(200)) is None
    assert refusal_cause(call_with(499)) is None  # the client left: nobody refused it
    assert refusal_cause(call_with(429, "budget")) == "budget"
    assert refusal_cause(call_with(404, upstream_status=404)) == "upstream"  # relayed as it came
    assert refusal_cause(call_with(502)) == "upstream"


def history() -> LoadHistory:
    return LoadHistory(SharedCells("load.cells", 1 + 60 * 5 + 512 * 30, directory=""))


def test_refused_requests_are_not_counted_against_the_keys_rpm():
    """Four answered, four refused for the budget: the key's rpm reads 4, as admission counts, and its refusals
    are apart (the page read `8 / 5`)."""
    h = history()
    now = 1_000_020.0  # a minute's start: nothing of the window before is in the estimate
    for _ in range(4):
        h.add("alice", 12, None, admitted=True, now=now)
    for _ in range(4):
        h.add("alice", 0, "budget", admitted=False, now=now)
    h.add("alice", 0, "model", now=now)
    h.add(None, 0, "auth", now=now)
    h.add("bob", 0, "upstream", admitted=True, now=now)
    assert h.last_minute("alice", now) == (4, 48, {"budget": 4, "model": 1})
    assert h.last_minute("bob", now) == (1, 0, {"upstream": 1})
    minute = h.minutes(now)[-1]
    assert (minute["requests"], minute["refused"], minute["errors"], minute["tokens"]) == (11, 6, 1, 48)
    # half a minute into the next window, half of what was counted is still in the sliding estimate
    assert h.last_minute("alice", now + 90) == (2, 24, {"budget": 2})  # the model's one: round(0.5), none
    assert h.last_minute("alice", now + 200) == (0, 0, {})
