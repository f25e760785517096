"""A client that leaves is logged and journaled as such, nginx's 499, on every door: mid-stream (the Messages,
Responses and Google doors logged "ended with an error: The upstream server ... broke off the response", an
upstream failure, while the journal said client_left) and before the first upstream byte (journaled with
status 0)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks
from tests.polling import poll
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "hi"}]
LEFT = "the client closed its connection before the answer's end (499)"
DOORS = {
    "chat": ("/v1/chat/completions", {"model": "m", "messages": MSG, "stream": True}),
    "messages": ("/v1/messages", {"model": "m", "max_tokens": 64, "messages": MSG, "stream": True}),
    "responses": ("/v1/responses", {"model": "m", "input": "hi", "stream": True}),
    "google": ("/v1beta/models/m:streamGenerateContent?alt=sse", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}


def journal_entries(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.fixture(scope="module")
def proxy_and_upstream(tmp_path_factory):
    logs = tmp_path_factory.mktemp("journal")
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, LOG_DIR=str(logs), VERBOSE="true") as p:
        yield p, fake, logs / "client_interaction.jsonl"


@pytest.mark.parametrize("door", list(DOORS))
def test_a_client_leaving_mid_stream_is_a_499_not_an_upstream_failure(door, proxy_and_upstream):
    proxy, fake, journal = proxy_and_upstream
    before = len(journal_entries(journal))
    said = proxy.read_log().count(LEFT)
    path, body = DOORS[door]
    fake.add(Stream(chat_chunks([f"piece {n} " for n in range(300)]), delay=0.02))
    with requests.post(proxy.url + path, json=body, stream=True, timeout=30) as r:
        assert r.status_code == 200
        next(r.iter_content(64))  # the first bytes, then the connection is closed
    entries = poll(lambda: journal_entries(journal)[before:] or None, timeout=30)
    assert entries and entries[0]["status"] == 499 and entries[0].get("client_left") is True, entries
    assert poll(lambda: proxy.read_log().count(LEFT) > said, timeout=10), proxy.read_log()[-3000:]
    assert "ended with an error" not in proxy.read_log(), proxy.read_log()[-3000:]
    assert "broke off" not in proxy.read_log(), proxy.read_log()[-3000:]


def test_a_client_leaving_before_the_first_upstream_byte_is_journaled_as_499(proxy_and_upstream):
    proxy, fake, journal = proxy_and_upstream
    before = len(journal_entries(journal))
    fake.add(Stream(chat_chunks(["late"]), first_delay=4.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(proxy.url + "/v1/messages", json=DOORS["messages"][1], timeout=(5, 0.5))
    entries = poll(lambda: journal_entries(journal)[before:] or None, timeout=30)
    assert entries and entries[0]["status"] == 499 and entries[0].get("client_left") is True, entries
