"""Shared fixtures: a fake OpenAI upstream and the real proxy under Gunicorn in front of it."""

from __future__ import annotations

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import running_proxy


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
