"""Fixtures shared by the in-process unit tests."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from argoproxy.config.settings import load_settings
from argoproxy.pipeline.call_records import CallEnd, CallStart
from argoproxy.serve.proxy import build_proxy
from tests.fakes.fake_upstream import FakeUpstream


class Observed(NamedTuple):
    """A call as the observers see it: its two records."""
    start: CallStart
    end: CallEnd


@pytest.fixture
def make(tmp_path, monkeypatch):
    """make(**environment) -> (door, upstream, observed calls: Observed records)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    def build(**env: str):
        settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off",
                                              "TARGET_BASE_URL": "http://upstream.test/v1/", **env})
        upstream = FakeUpstream()
        door = build_proxy(settings, upstream)
        calls: list = []
        door.gateway.answers.observers.append(lambda start, end: calls.append(Observed(start, end)))
        return door, upstream, calls
    return build
