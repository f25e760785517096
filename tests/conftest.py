"""Shared fixtures: a fake OpenAI upstream and the real proxy under Gunicorn in front of it."""

from __future__ import annotations

import signal

import pytest
from hypothesis import settings

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import running_proxy

# A non-interactive shell starts background jobs (CI's two passes run side by side) with SIGINT ignored, and an
# ignored signal is inherited: the proxies these tests start would shrug off the Ctrl+C they test. Any handler
# here is reset to the default in every child at exec, as a terminal's processes have it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Hypothesis' per-example deadline (200 ms) is a timing assertion: under CI's two passes side by side an example
# can take longer on a loaded machine and fail a correct test.
settings.register_profile("no_deadline", deadline=None)
settings.load_profile("no_deadline")


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def module_fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(module_fake):
    """The proxy with default settings in front of module_fake."""
    with running_proxy(TARGET_BASE_URL=module_fake.base_url) as p:
        yield p


@pytest.fixture
def upstream(module_fake):
    """module_fake with its queue and log reset for this test."""
    module_fake.reset()
    return module_fake
