"""The allow-list holds for batch work (issue 20, item 3), through the running app driven by the official SDKs:
a JSONL upload for purpose `batch`, a batch over a file already upstream, and Anthropic's message batches are
checked model by model with ALLOWED_MODELS set, in each door's error shape."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
import requests

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import running_proxy

MAX_BODY = 64 * 1024


def jsonl(*models: str | None) -> bytes:
    lines = []
    for i, model in enumerate(models):
        body = {"messages": [{"role": "user", "content": "hi"}], **({} if model is None else {"model": model})}
        lines.append(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    return ("\n".join(lines) + "\n").encode()


def message_batch(model: str) -> list[dict]:
    return [{"custom_id": "a", "params": {"model": "claude-sonnet-4", "max_tokens": 8,
                                          "messages": [{"role": "user", "content": "hi"}]}},
            {"custom_id": "b", "params": {"model": model, "max_tokens": 8,
                                          "messages": [{"role": "user", "content": "hi"}]}}]


@pytest.fixture(scope="module")
def batches():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, ALLOWED_MODELS="gpt-4o*,claude-*",
                           MAX_BODY_BYTES=str(MAX_BODY)) as p:
            yield fake, p


def test_an_upload_for_purpose_batch_is_checked_line_by_line(batches):
    fake, p = batches
    client = openai_sdk(p)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.files.create(file=("b.jsonl", jsonl("gpt-4o", "evil")), purpose="batch")
    err = info.value.body
    assert err["code"] == "model_not_allowed" and err["param"] == "body.model" and "Line 2" in err["message"]
    with pytest.raises(openai.BadRequestError):  # a line naming no model would get the upstream's default
        client.files.create(file=("b.jsonl", jsonl("gpt-4o", None)), purpose="batch")
    with pytest.raises(openai.PermissionDeniedError):  # a lenient server reads `Model` as `model`
        client.files.create(file=("b.jsonl", jsonl("gpt-4o").replace(b'"model"', b'"Model"') + jsonl("evil")),
                            purpose="batch")
    assert fake.batches.files == {}
    uploaded = client.files.create(file=("b.jsonl", jsonl("gpt-4o", "gpt-4o-mini")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "validating" and fake.batches.batches[-1]["input_file_id"] == uploaded.id
    # other purposes name no models line by line: not read
    assert client.files.create(file=("notes.jsonl", b'{"model": "evil"}\n'), purpose="user_data").id


def test_a_batch_over_a_file_already_upstream_is_checked_before_it_is_forwarded(batches):
    """A file that did not come through the check (uploaded before the allow-list, or in parts through the
    Uploads API): the proxy reads it from the upstream and refuses the batch."""
    fake, p = batches
    client = openai_sdk(p)
    fake.batches.files["file-old"] = ("batch", jsonl("gpt-4o") * 50 + jsonl("evil"))
    created = len(fake.batches.batches)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.batches.create(input_file_id="file-old", endpoint="/v1/chat/completions", completion_window="24h")
    assert "Line 51 of the batch input file file-old" in info.value.body["message"]
    fake.batches.files["file-big"] = ("batch", jsonl("gpt-4o") * (MAX_BODY // 100))  # past MAX_BODY_BYTES
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id="file-big", endpoint="/v1/chat/completions", completion_window="24h")
    assert info.value.body["code"] == "batch_input_too_large" and "MAX_BODY_BYTES" in info.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-none", endpoint="/v1/chat/completions", completion_window="24h")
    for file_id in ("../models", "a/b", ".."):  # never a way to make the proxy fetch another upstream path
        r = requests.post(p.base_url + "/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                                         "completion_window": "24h"}, timeout=10)
        assert r.status_code == 400 and r.json()["error"]["param"] == "input_file_id"
    r = requests.post(p.url + "/batches", json={"input_file_id": "file-old", "endpoint": "/v1/chat/completions",
                                                "completion_window": "24h"}, timeout=10)  # without /v1
    assert r.status_code == 403 and fake.received[-1].path == "/v1/files/file-old/content"
    assert len(fake.batches.batches) == created


def test_message_batches_check_every_requests_model_in_anthropics_shape(batches):
    fake, p = batches
    client = anthropic_sdk(p)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        client.messages.batches.create(requests=message_batch("evil"))
    assert info.value.body["type"] == "error" and "evil" in info.value.body["error"]["message"]
    r = requests.post(p.url + "/v1/messages/batches", json={"requests": message_batch("evil")}, timeout=10)
    assert r.status_code == 403 and r.json()["type"] == "error" and r.headers["request-id"]
    assert fake.batches.message_batches == []
    batch = client.messages.batches.create(requests=message_batch("claude-haiku-4"))
    assert batch.processing_status == "in_progress" and len(fake.batches.message_batches) == 1
