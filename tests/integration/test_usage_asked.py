"""Every door asks its upstream for usage (issue 69, item 5), through the real app under Gunicorn: chat, Responses,
Messages, Google, Interactions and Ollama, each whole, streamed and (where the door has it) in the background,
before an upstream that sends a stream's usage only to a request that asks for it (as OpenAI's does). Each call's
upstream request asks (a stream: `stream_options.include_usage`; a whole answer carries its usage), and the team
key's usage row shows the upstream's count, reasoning included (the fake bills 100 output tokens, 60 of them
reasoning; the text relayed is a token or two, what an estimate would have charged)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.keys_cli import run_keys
from tests.polling import poll
from tests.proxy_process import running_proxy

USAGE = {"prompt_tokens": 40, "completion_tokens": 100, "total_tokens": 140,
         "completion_tokens_details": {"reasoning_tokens": 60}}
MSG = [{"role": "user", "content": "hi"}]
GOOGLE_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def case(path: str, body: dict[str, Any], header: str = "Authorization") -> tuple[str, dict[str, Any], str]:
    return path, body, header


# door, mode -> (path, body without its model, the header the door's clients send their key in). {m}: the model.
CASES = {
    ("chat", "whole"): case("/v1/chat/completions", {"messages": MSG}),
    ("chat", "stream"): case("/v1/chat/completions", {"messages": MSG, "stream": True}),
    ("responses", "whole"): case("/v1/responses", {"input": "hi"}),
    ("responses", "stream"): case("/v1/responses", {"input": "hi", "stream": True}),
    ("responses", "background"): case("/v1/responses", {"input": "hi", "background": True}),
    ("messages", "whole"): case("/v1/messages", {"messages": MSG, "max_tokens": 500}, "x-api-key"),
    ("messages", "stream"): case("/v1/messages", {"messages": MSG, "max_tokens": 500, "stream": True}, "x-api-key"),
    ("google", "whole"): case("/v1beta/models/{m}:generateContent", GOOGLE_BODY, "x-goog-api-key"),
    ("google", "stream"): case("/v1beta/models/{m}:streamGenerateContent?alt=sse", GOOGLE_BODY, "x-goog-api-key"),
    ("interactions", "whole"): case("/v1beta/interactions", {"input": "hi"}, "x-goog-api-key"),
    ("interactions", "stream"): case("/v1beta/interactions", {"input": "hi", "stream": True}, "x-goog-api-key"),
    ("interactions", "background"): case("/v1/interactions", {"input": "hi", "background": True}, "x-goog-api-key"),
    ("interactions", "background stream"): case("/v1/interactions", {"input": "hi", "background": True,
                                                                     "stream": True}, "x-goog-api-key"),
    ("ollama", "whole"): case("/api/chat", {"messages": MSG, "stream": False}),
    ("ollama", "stream"): case("/api/chat", {"messages": MSG}),  # Ollama streams unless told not to
    ("ollama generate", "stream"): case("/api/generate", {"prompt": "hi"}),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(fake upstream, keys database, each case's answer): one proxy for every case, each case's request sent first
    (its usage row is then written by the time the cases read them: rows are written every half second)."""
    db = tmp_path_factory.mktemp("usage") / "keys.db"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET="admin", KEYS_DB=str(db)) as proxy:
        fake.accepts_developer = fake.accepts_null_content = True
        fake.usage = dict(USAGE)
        made = run_keys("create", "asker", keys_db=db)
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        answers = {}
        for (door, mode), (path, body, header) in CASES.items():
            model = model_of(door, mode)
            value = f"Bearer {key}" if header == "Authorization" else key
            answers[door, mode] = requests.post(proxy.url + path.format(m=model), json={**body, "model": model},
                                                headers={header: value}, timeout=30)
        yield fake, db, answers


def model_of(door: str, mode: str) -> str:
    return f"usage-{door}-{mode}".replace(" ", "-")  # one per case: its own usage row


def usage_row(db, model: str) -> dict[str, str] | None:
    rows = csv.DictReader(io.StringIO(run_keys("usage", "--csv", keys_db=db).stdout))
    return next((r for r in rows if r["key"] == "asker" and r["model"] == model), None)


def sent_for(fake: FakeOpenAI, model: str) -> dict[str, Any]:
    """The chat request the upstream received for `model` (one per case)."""
    found = [r.json() for r in fake.received if r.path.endswith("/chat/completions") and r.json()["model"] == model]
    assert len(found) == 1, (model, [r.path for r in fake.received])
    return found[0]


@pytest.mark.parametrize("door, mode", list(CASES), ids=[f"{d}-{m}".replace(" ", "_") for d, m in CASES])
def test_the_upstream_is_asked_for_usage_and_the_key_charged_it(served, door, mode):
    fake, db, answers = served
    model = model_of(door, mode)
    assert answers[door, mode].status_code == 200, answers[door, mode].text
    row = poll(lambda: usage_row(db, model), timeout=15)  # a background run ends after its answer
    assert (row["requests"], row["input_tokens"], row["output_tokens"]) == ("1", "40", "100"), row
    sent = sent_for(fake, model)
    streamed = sent.get("stream") is True  # whole, the upstream's answer carries its usage unasked
    assert not streamed or sent.get("stream_options", {}).get("include_usage") is True, sent
    assert streamed == ("stream" in mode) or "background" in mode, sent  # a background run streams or not
