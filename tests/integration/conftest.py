"""Fixtures shared by several integration modules."""

from __future__ import annotations

import pytest

from tests.fakes.argo_rules import native_refusal
from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy


@pytest.fixture(scope="module")
def argo_native():
    """(OpenAI-compatible fake, proxy): the ARGO backend in native mode (USE_NATIVE_OPENAI) in front of them. The
    fake refuses what ARGO's native APIs refuse (tests/fakes/argo_rules.py) before any scripted answer."""
    with FakeOpenAI(refuse=native_refusal) as up, FakeArgo() as argo:
        up.accepts_null_content = True  # ARGO's OpenAI-compatible API takes null beside tool calls, as OpenAI does
        # ARGO's model list is read from FakeArgo's tests (test_argo_model_list.py): here a GET of it would take
        # the answer queued for the request under test
        with running_proxy(**argo_env(argo, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=up.base_url,
                                      ARGO_MODEL_LIST="false")) as p:
            yield up, p
