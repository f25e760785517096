"""Issue 6 through the running app: upstream mode conversion, the DashScope backend, JSONL journals,
compatible mode and openai-forward's command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import requests

from tests.clients import openai_sdk
from tests.fakes.fake_dashscope import FakeDashScope
from tests.fakes.fake_openai import Reply, Stream, chat_chunks, chat_completion
from tests.polling import poll
from tests.proxy_process import ROOT, base_env, free_port, running_proxy, wait_until_serving

MSG = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]


sdk = openai_sdk


def chunk(delta, finish=None, index=0):
    return {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


# ------------------------------------------------------------------ upstream mode, openai backend
# One proxy per mode in front of the module's upstream: a conversion keeps nothing of one request for another.
@pytest.fixture(scope="module")
def whole_upstream(module_fake):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, UPSTREAM_MODE="non_stream") as p:
        yield p


@pytest.fixture(scope="module")
def streaming_upstream(module_fake):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, UPSTREAM_MODE="stream") as p:
        yield p


def test_client_streams_upstream_answers_whole(whole_upstream, upstream):
    p, fake = whole_upstream, upstream
    answer = chat_completion("Sunny and 21 C")
    answer["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]
    fake.add(Reply(answer))
    chunks = list(sdk(p).chat.completions.create(model="m", messages=MSG, tools=TOOLS, stream=True,
                                                 stream_options={"include_usage": True}))
    sent = fake.received[-1].json()
    assert sent["stream"] is False and "stream_options" not in sent
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert text == "Sunny and 21 C" and calls[0].function.name == "get_weather" and calls[0].index == 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 12
    # the SDK's own stream helper assembles the same message
    with sdk(p).chat.completions.stream(model="m", messages=MSG) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == "Hello from the fake upstream!"


def test_client_wants_whole_upstream_streams(streaming_upstream, upstream):
    p, fake = streaming_upstream, upstream
    fake.add(Stream([chunk({"role": "assistant", "content": "", "reasoning_content": "hmm "}),
                     chunk({"reasoning_content": "ok"}),
                     chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                            "function": {"name": "get_weather", "arguments": '{"loc'}}]}),
                     chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ation":"Paris"}'}}]}),
                     chunk({}, finish="tool_calls"),
                     {**chunk({}), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
                     "[DONE]"]))
    r = sdk(p).chat.completions.create(model="m", messages=MSG, tools=TOOLS)
    sent = fake.received[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    msg = r.choices[0].message
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls[0].function.arguments == '{"location":"Paris"}' and msg.tool_calls[0].id == "call_9"
    assert msg.model_extra["reasoning_content"] == "hmm ok" and r.usage.total_tokens == 7


def test_legacy_completions_both_ways(whole_upstream, streaming_upstream, upstream):
    fake = upstream
    completion = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                  "choices": [{"index": 0, "text": "Once upon", "finish_reason": "length", "logprobs": None}]}
    fake.add(Reply(completion))
    chunks = list(sdk(whole_upstream).completions.create(model="m", prompt="Tell", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Once upon"
    base = {k: completion[k] for k in ("id", "object", "created", "model")}
    fake.add(Stream([{**base, "choices": [{"index": 0, "text": "Once", "finish_reason": None}]},
                     {**base, "choices": [{"index": 0, "text": " upon", "finish_reason": "length"}]}, "[DONE]"]))
    r = sdk(streaming_upstream).completions.create(model="m", prompt="Tell")
    assert r.choices[0].text == "Once upon" and r.choices[0].finish_reason == "length"


# ------------------------------------------------------------------ DashScope backend
@pytest.fixture(scope="module")
def dashscope_proxy():
    with FakeDashScope(api_key="ds-key") as ds:
        with running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY="ds-key") as p:
            yield ds, p


def test_dashscope_chat_translated_both_ways(dashscope_proxy):
    ds, p = dashscope_proxy
    r = sdk(p).chat.completions.create(model="qwen-plus", messages=MSG, temperature=0.3, extra_body={"top_k": 5})
    sent = ds.received[-1]
    assert sent.path.endswith("/text-generation/generation")
    assert sent.json["input"]["messages"] == MSG
    assert sent.json["parameters"]["result_format"] == "message" and sent.json["parameters"]["top_k"] == 5
    assert sent.header("Authorization") == "Bearer ds-key"
    assert r.choices[0].message.content == ds.reply and r.model == "qwen-plus"
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_dashscope_serves_an_openai_model_name_as_seed_004_does(dashscope_proxy):
    ds, p = dashscope_proxy
    r = sdk(p).chat.completions.create(model="gpt-4", messages=MSG, temperature=0.7)
    sent = ds.received[-1].json
    assert sent["model"] == "qwen-max" and sent["parameters"]["temperature"] == 0.7
    assert r.model == "gpt-4"  # docs/backends/dashscope.md: the answer names the model asked for


def test_dashscope_stream(dashscope_proxy):
    ds, p = dashscope_proxy
    chunks = list(sdk(p).chat.completions.create(model="qwen-plus", messages=MSG, stream=True,
                                                 stream_options={"include_usage": True}))
    sent = ds.received[-1]
    assert sent.header("X-DashScope-SSE") == "enable" and sent.json["parameters"]["incremental_output"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ds.reply
    assert chunks[-1].usage is not None and len({c.id for c in chunks}) == 1


def test_dashscope_embeddings_and_errors(dashscope_proxy):
    ds, p = dashscope_proxy
    e = sdk(p).embeddings.create(model="text-embedding-v3", input=["a", "b", "c"])
    assert [d.index for d in e.data] == [0, 1, 2] and len(e.data[0].embedding) == ds.embedding_dimension
    ds.fail_next("Throttling.RateQuota", 429)
    with pytest.raises(openai.RateLimitError):
        sdk(p).chat.completions.create(model="qwen-plus", messages=MSG)
    ds.error_mid_stream(after=2, code="InternalError", status=500)
    with pytest.raises(openai.APIError):
        list(sdk(p).chat.completions.create(model="qwen-plus", messages=MSG, stream=True))


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"model": "qwen-plus", "stream": True, "messages": MSG}),
    ("/v1/messages", {"model": "qwen-plus", "stream": True, "max_tokens": 9, "messages": MSG}),
    ("/v1/responses", {"model": "qwen-plus", "stream": True, "input": "x"})])
def test_dashscope_mid_stream_error_text_is_sanitized_on_every_door(dashscope_proxy, path, body):
    """DashScope's decoder quotes the upstream's error text: credentials in it are sanitized on every door."""
    ds, p = dashscope_proxy
    ds.error_mid_stream(after=2, code="InternalError", status=500,
                        message="failed at http://admin:hunter2@10.9.8.7:9999/x with Bearer sk-proj-LEAKYKEY1234567890")
    r = requests.post(p.url + path, json=body, timeout=20)
    assert r.status_code == 200 and "error" in r.text, r.text
    assert "hunter2" not in r.text and "LEAKYKEY" not in r.text and "10.9.8.7" not in r.text, r.text


def test_dashscope_uses_client_key_when_none_configured():
    with FakeDashScope(api_key="client-ds-key") as ds:
        with running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url) as p:
            assert sdk(p, key="client-ds-key").chat.completions.create(model="qwen-plus", messages=MSG).choices
            with pytest.raises(openai.AuthenticationError):
                sdk(p, key="wrong").chat.completions.create(model="qwen-plus", messages=MSG)


def test_dashscope_thinking_model_in_stream_mode():
    with FakeDashScope(api_key="k") as ds:
        with running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY="k",
                           UPSTREAM_MODE="stream") as p:
            r = sdk(p).chat.completions.create(model="qwen3-plus", messages=MSG, extra_body={"enable_thinking": True})
            assert ds.received[-1].json["parameters"]["incremental_output"] is True
            assert r.choices[0].message.content == ds.reply
            assert r.choices[0].message.model_extra["reasoning_content"] == ds.reasoning


# ------------------------------------------------------------------ journals
def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_journals_record_both_ends(fake, tmp_path):
    with running_proxy(TARGET_BASE_URL=fake.base_url, LOG_DIR=str(tmp_path), WORKERS="2") as p:
        c = sdk(p, key="sk-journal-canary-1")
        c.chat.completions.create(model="m", messages=MSG)
        "".join(x.choices[0].delta.content or "" for x in c.chat.completions.create(model="m", messages=MSG, stream=True)
                if x.choices)
        for _ in range(20):
            c.chat.completions.create(model="m", messages=MSG)
        journals = tmp_path / "client_interaction.jsonl", tmp_path / "server_interaction.jsonl"
        poll(lambda: all(j.exists() and j.read_text().count("\n") >= 22 for j in journals))  # written as answers end
    clients, servers = map(read_jsonl, journals)
    assert len(clients) == len(servers) == 22
    assert {r["logging_id"] for r in clients} == {r["logging_id"] for r in servers}
    streamed = clients[1]
    assert (streamed["send_mode"], streamed["return_mode"]) == ("stream", "stream")
    assert streamed["output"]["choices"][0]["message"]["content"] == "Hello from the fake upstream!"
    assert clients[0]["input"]["messages"] == MSG and clients[0]["status"] == 200
    assert (tmp_path / "log.log").exists()
    everything = "".join(f.read_text() for f in tmp_path.iterdir())
    assert "sk-journal-canary-1" not in everything


def test_journals_say_when_the_client_left_before_the_end(fake, tmp_path):
    """A stream its client closed mid-way is journaled as far as it went, with `client_left` (it read as an
    answer that ended normally); one read to its end has no such field."""
    with running_proxy(TARGET_BASE_URL=fake.base_url, LOG_DIR=str(tmp_path)) as p:
        fake.add(Stream(chat_chunks([f"piece {n} " for n in range(200)]), delay=0.02))
        with requests.post(p.base_url + "/chat/completions", stream=True, timeout=30,
                           json={"model": "m", "messages": MSG, "stream": True}) as r:
            next(r.iter_content(64))  # the first bytes, then the connection is closed
        fake.add(Stream(chat_chunks(["whole"])))
        assert list(sdk(p).chat.completions.create(model="m", messages=MSG, stream=True))
        journal = tmp_path / "client_interaction.jsonl"
        poll(lambda: journal.exists() and journal.read_text().count("\n") >= 2, timeout=30)
    entries = read_jsonl(journal)
    assert sorted(e.get("client_left", False) for e in entries) == [False, True]
    assert sorted(e["status"] for e in entries) == [200, 499]  # nginx's 499 for the one its client left
    assert all(e["status"] == 499 for e in entries if e.get("client_left"))


def test_debug_lines_reach_log_log(fake, tmp_path):
    """Under DEBUG, LOG_DIR/log.log gets the per-request lines stderr gets (it stayed empty: INFO only)."""
    with running_proxy(TARGET_BASE_URL=fake.base_url, LOG_DIR=str(tmp_path), DEBUG="true") as p:
        assert requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": MSG}).ok
        log = tmp_path / "log.log"
        assert poll(lambda: log.exists() and "/chat/completions model=m status=200" in log.read_text())


# ------------------------------------------------------------------ compatible mode
def test_compatible_mode_errors_are_http_200(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url, COMPATIBLE_MODE="true") as p:
        r = requests.post(p.base_url + "/chat/completions", data="{bad")
        assert r.status_code == 200 and r.json()["error"]["code"] == "invalid_json"
        fake.add(Reply({"error": {"message": "nope", "type": "invalid_request_error"}}, status=401))
        r = requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": MSG})
        assert r.status_code == 200 and r.json()["error"]["message"].endswith("(401): nope")  # whose key: said


# ------------------------------------------------------------------ openai-forward command line
def test_seed_command_line(fake, tmp_path):
    port = free_port()
    env = base_env(str(tmp_path))
    cmd = [sys.executable, str(ROOT / "cot_proxy.py"), "--output_path", str(tmp_path / "logs"), "--expose_host",
           "127.0.0.1", "--expose_port", str(port), "--url", fake.base_url + "chat/completions", "--timeout", "60000"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_serving(port, proc)
        r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "m", "messages": MSG})
        assert r.status_code == 200 and fake.received[-1].path == "/v1/chat/completions"
        assert poll(lambda: (tmp_path / "logs" / "client_interaction.jsonl").exists())  # written as the answer ends
    finally:
        proc.terminate()
        proc.wait(20)
    helptext = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--help-all"], capture_output=True, text=True,
                              env=env).stdout
    for flag in ("--output_path", "--expose_host", "--expose_port", "--mode", "--url", "--timeout", "--compatible"):
        assert flag in helptext
