"""Per-key budgets in-process: sliding-window requests and tokens per minute, reservations, requests in flight,
Retry-After, across processes."""

import os

import pytest

from argoproxy.errors import ProxyError
from argoproxy.config.routing_settings import KeyLimit
from argoproxy.admission.key_limits import KeyLimiter
from argoproxy.shared_cells import SharedCells
from argoproxy.teamkeys.local_windows import SLOTS, WIDTH

CELLS = SLOTS * WIDTH  # key_limits count in the team keys' shared windows (argoproxy/teamkeys/local_windows.py)

ENV = {"TEAM_A_KEY": "sk-a", "TEAM_B_KEY": "sk-b"}
ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 600}


class Clock:
    def __init__(self, now=6000.0):  # the start of a minute window
        self.now = now

    def __call__(self):
        return self.now


def limiter(*limits, clock=None, cells=None):
    return KeyLimiter(limits, ENV, cells=cells, clock=clock or Clock())


def test_keys_are_recognised_by_value_and_named_by_variable():
    a, b = KeyLimit("TEAM_A_KEY", rpm=1), KeyLimit("TEAM_B_KEY", tpm=10)
    lim = limiter(a, b)
    assert lim.identify(["sk-b"]) is b and lim.identify(["nope", "sk-a"]) is a and lim.identify(["x"]) is None


def test_requests_per_minute_then_429_with_retry_after():
    clock = Clock()
    a = KeyLimit("TEAM_A_KEY", rpm=3)
    lim = limiter(a, clock=clock)
    for _ in range(3):
        lim.admit(a)
    with pytest.raises(ProxyError) as info:
        lim.admit(a)
    err = info.value
    assert err.status == 429 and err.code == "rate_limit_exceeded" and "3 requests" in err.message
    # all three in the current window: the estimate frees room 80 s from now (the next window, then 1/3 slid
    # out), but Retry-After never exceeds the window (by then a true sliding window has let all three go)
    assert err.headers["Retry-After"] == "60"
    clock.now += 80
    lim.admit(a)


def test_the_window_slides():
    clock = Clock()
    a = KeyLimit("TEAM_A_KEY", rpm=10)
    lim = limiter(a, clock=clock)
    for _ in range(10):
        lim.admit(a)
    clock.now += 60 + 30  # half of the previous window still counts: 5 requests
    for _ in range(5):
        lim.admit(a)
    with pytest.raises(ProxyError) as info:
        lim.admit(a)
    assert int(info.value.headers["Retry-After"]) == 6  # one more request slides out every 6 s
    clock.now += 6
    lim.admit(a)


def test_tokens_per_minute_from_usage():
    clock = Clock()
    b = KeyLimit("TEAM_B_KEY", tpm=1000)
    lim = limiter(b, clock=clock)
    held = lim.admit(b, ASK)  # holds its reservation (its input and max_tokens 600) until it ends
    with pytest.raises(ProxyError) as info:
        lim.admit(b, ASK)  # what the request in flight holds leaves too little: it frees as it ends
    assert "1000 tokens" in info.value.message and info.value.headers["Retry-After"] == "1"
    assert "it may use up to 6" in info.value.message  # what this request may use, said
    lim.settle(held, 1500)  # an answer may overshoot; the next request waits
    with pytest.raises(ProxyError) as info:
        lim.admit(b, ASK)
    assert "1000 tokens" in info.value.message and int(info.value.headers["Retry-After"]) >= 60
    clock.now += 120
    lim.admit(b, ASK)


def test_a_request_larger_than_the_whole_tpm_is_refused_and_not_to_be_retried():
    b = KeyLimit("TEAM_B_KEY", tpm=1000)
    lim = limiter(b)
    with pytest.raises(ProxyError) as info:
        lim.admit(b)  # a body the proxy does not read: the 4,096-token default, more than the whole tpm
    assert info.value.status == 429 and info.value.headers == {"x-should-retry": "false"}
    assert "larger than this API key's whole budget of 1000 tokens per minute" in info.value.message
    lim.admit(b, {**ASK, "max_tokens": 900})  # nothing was held by the refusal


def test_keys_have_separate_budgets():
    a, b = KeyLimit("TEAM_A_KEY", rpm=1), KeyLimit("TEAM_B_KEY", rpm=1)
    lim = limiter(a, b)
    lim.admit(a)
    lim.admit(b)
    with pytest.raises(ProxyError):
        lim.admit(a)


def test_counted_across_processes(tmp_path):
    a = KeyLimit("TEAM_A_KEY", rpm=100)
    clock = Clock()
    name = "limits.cells"
    lim = limiter(a, clock=clock, cells=SharedCells(name, CELLS, directory=str(tmp_path)))
    pids = []
    for _ in range(4):  # four "workers" admit 25 requests each, at the same time
        pid = os.fork()
        if pid == 0:
            try:
                child = limiter(a, clock=clock, cells=SharedCells(name, CELLS, directory=str(tmp_path)))
                for _ in range(25):
                    child.admit(a)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    assert lim.usage(a)[0] == 100
    with pytest.raises(ProxyError):
        lim.admit(a)


def test_max_parallel_caps_requests_in_flight_until_each_ends():
    a = KeyLimit("TEAM_A_KEY", max_parallel=2)
    lim = limiter(a)
    first, second = lim.admit(a), lim.admit(a)
    with pytest.raises(ProxyError) as info:
        lim.admit(a)
    assert info.value.status == 429 and "2 requests in flight" in info.value.message
    lim.settle(first, 0)
    lim.settle(lim.admit(a), 0)
    lim.settle(second, 0)
