"""An answer the upstream breaks off mid-stream reaches the agent as a failure, not as a short success.

Gemini CLI (google-genai's JavaScript reader) raises only for a read that is a bare `{"error": ...}` object, as
Google writes one mid-stream; the Google door's `data: {"error": ...}` event was read as a chunk with no
candidates, and the CLI printed the cut text and exited 0 (outside review of issue 19)."""

from __future__ import annotations

import pytest

from tests.agents.agents import AGENTS, Run
from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks
from tests.proxy_process import running_proxy

TIMEOUT = 240
pytestmark = pytest.mark.timeout(TIMEOUT + 60)


def test_gemini_cli_fails_on_a_stream_cut_short(tmp_path):
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as proxy:
        for _ in range(12):  # the CLI asks again a few times
            fake.add(Stream(chat_chunks(["partial ", "answer"]), cut_after=1))
        (tmp_path / "work").mkdir()
        run = Run(proxy.url, "gemini-2.5-pro", "Say hello.", tmp_path / "home", tmp_path / "work")
        result = AGENTS["gemini"].run(run, TIMEOUT)
    report = f"exit {result.returncode}\n--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert result.returncode != 0, report
    assert "UNAVAILABLE" in result.stderr and "broke off" in result.stderr, report
