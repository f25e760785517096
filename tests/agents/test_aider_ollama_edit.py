"""Aider as an Ollama user runs it (`--model ollama_chat/<name>`, OLLAMA_API_BASE at the proxy), completing an edit
through the proxy's Ollama door: the model (a scripted upstream behind the openai backend) answers with a
SEARCH/REPLACE block for the file it was shown, and Aider applies it. Neither the edit nor the block can happen
unless the file went up through /api/chat and the answer came back down as Ollama's NDJSON."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests

from tests.agents.agents import AGENTS, Run, _bounded, _isolated
from tests.agents.scripted import TOKEN
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.proxy_process import running_proxy

TIMEOUT = 240
pytestmark = pytest.mark.timeout(TIMEOUT + 60)


def edit_block(body: dict[str, Any]) -> str:
    """A SEARCH/REPLACE block turning the token the request shows into EDITED-<token> (or a plain text when no
    token was shown: the test then fails on the file)."""
    token = TOKEN.search(json.dumps(body.get("messages")))
    if token is None:
        return "I cannot see note.txt."
    return (f"note.txt\n```\n<<<<<<< SEARCH\n{token.group(0)}\n=======\nEDITED-{token.group(0)}\n"
            ">>>>>>> REPLACE\n```\n")


class EditingUpstream(FakeOpenAI):
    def default_answer(self, method: str, path: str, body: bytes) -> Reply | Stream:
        if not path.endswith("/chat/completions"):
            return super().default_answer(method, path, body)
        request = json.loads(body or b"{}")
        text = edit_block(request)
        base = {"id": "chatcmpl-edit", "created": 1700000000, "model": request.get("model")}
        usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        if not request.get("stream"):
            return Reply({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
        chunk = {**base, "object": "chat.completion.chunk"}
        half = len(text) // 2
        return Stream([{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text[:half]},
                                              "finish_reason": None}]},
                       {**chunk, "choices": [{"index": 0, "delta": {"content": text[half:]}, "finish_reason": None}]},
                       {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                       {**chunk, "choices": [], "usage": usage}, "[DONE]"])


def test_aider_over_the_ollama_door_completes_an_edit(project, tmp_path):
    workdir, token = project
    with EditingUpstream() as up, running_proxy(BACKEND="openai", TARGET_BASE_URL=up.base_url) as proxy:
        run = Run(proxy.url, "qwen2.5-coder", "Prefix the token in note.txt with EDITED-.", tmp_path / "home", workdir)
        agent = AGENTS["aider-ollama"]
        argv, env = agent.setup(run)
        argv += ["--edit-format", "diff", str(workdir / "note.txt")]
        result = _bounded(argv, _isolated(run.home, env), workdir, TIMEOUT)
        report = (f"exit {result.returncode} after {result.seconds:.1f} s\n--- stdout\n{result.stdout[-3000:]}\n"
                  f"--- stderr\n{result.stderr[-2000:]}\n--- proxy log\n{proxy.read_log()[-2000:]}")
        assert result.returncode == 0, report
        assert (workdir / "note.txt").read_text() == f"EDITED-{token}\n", report
        chats = [r for r in up.received if r.path.endswith("/chat/completions")]
        assert chats and token in chats[-1].body.decode(), report  # the file went up through the door
        metrics = requests.get(proxy.url + "/metrics", timeout=30).text
        assert re.search(r'front="ollama"', metrics), "the edit did not come through the Ollama door"
