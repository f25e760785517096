"""What real OpenAI-compatible servers accept and what they leave out, through the real app under Gunicorn.

The fake upstream refuses what llama.cpp's server refuses (a `developer` message, an assistant turn with
`content: null`: 500) and can leave usage out of its streams as llama.cpp does; so these tests fail on a
proxy that sends either, or whose front doors lose usage. Also: tpm budgets on streams whose client did not
ask for usage, `/v1/models/{id}` where the upstream has no such route, `/` answered locally, and the routing
mode's start-up line.
"""

from __future__ import annotations

import csv
import io
import json

import openai
import pytest
import requests

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_completion
from tests.polling import poll
from tests.proxy_process import running_proxy

ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """(fake upstream behaving as llama.cpp's server, proxy in front of it with journals)."""
    logs = tmp_path_factory.mktemp("journal")
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, LOG_DIR=str(logs)) as p:
        p.journal_path = logs / "client_interaction.jsonl"
        yield fake, p


@pytest.fixture
def up(llama):
    fake, p = llama
    fake.reset()
    fake.default_content = "Hello from the fake upstream!"
    fake.sends_stream_usage = False
    yield fake, p
    fake.sends_stream_usage = True


def journal(p) -> list[dict]:
    path = p.journal_path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def journaled(p, count: int) -> list[dict]:
    """The journal once it holds `count` lines (a stream is journaled when it ends, after its last byte)."""
    return poll(lambda: (lines := journal(p)) and len(lines) >= count and lines, timeout=20)


# ------------------------------------------------------------------ messages every server takes

def test_the_premise_the_fake_refuses_what_llama_cpp_refuses(up):
    fake, _ = up
    for message in ({"role": "developer", "content": "rules"}, {"role": "assistant", "content": None,
                                                               "tool_calls": [CALL]}):
        r = requests.post(fake.base_url + "chat/completions", json={"model": "m", "messages": [message, *ASK]})
        assert r.status_code == 500, message


def test_developer_becomes_system_on_every_door(up):
    fake, p = up
    client = openai_sdk(p)
    client.chat.completions.create(model="m", messages=[{"role": "developer", "content": "rules"}, *ASK])
    assert fake.received[-1].json()["messages"][0] == {"role": "system", "content": "rules"}
    answer = client.responses.create(model="m", input=[{"role": "developer", "content": "You are Codex."}, *ASK])
    assert answer.output_text == fake.default_content
    assert fake.received[-1].json()["messages"][0] == {"role": "system", "content": "You are Codex."}


def test_tool_turns_carry_empty_content_on_every_door(up):
    fake, p = up
    chat = openai_sdk(p).chat.completions.create(model="m", tools=[TOOL], messages=[
        *ASK, {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    assert chat.choices[0].message.content == fake.default_content
    assert fake.received[-1].json()["messages"][1]["content"] == ""
    message = anthropic_sdk(p).messages.create(model="m", max_tokens=50, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}])
    assert message.content[0].text == fake.default_content
    assert fake.received[-1].json()["messages"][1]["content"] == ""
    answer = openai_sdk(p).responses.create(model="m", input=[
        *ASK, {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}])
    assert answer.output_text == fake.default_content
    assert fake.received[-1].json()["messages"][1]["content"] == ""


def _tool_call_stream() -> Stream:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    delta = {"role": "assistant", "tool_calls": [{"index": 0, **CALL}]}
    return Stream([{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                   {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, "[DONE]"])


def _tool_call_whole() -> Reply:
    answer = chat_completion("", finish_reason="tool_calls")
    answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [CALL]}
    return Reply(answer)


@pytest.fixture
def no_streamed_tool_calls(up):
    fake, p = up
    fake.streams_auto_tool_calls = False
    yield fake, p
    fake.streams_auto_tool_calls = True


def test_the_premise_the_fake_ends_a_streamed_auto_tool_call_before_its_first_event(no_streamed_tool_calls):
    fake, _ = no_streamed_tool_calls
    fake.add(_tool_call_stream())
    r = requests.post(fake.base_url + "chat/completions", json={"model": "m", "stream": True, "tools": [TOOL],
                                                                 "messages": ASK})
    assert r.status_code == 200 and b"data:" not in r.content


def test_a_stream_ended_before_its_first_event_is_asked_again_whole_on_every_door(no_streamed_tool_calls):
    fake, p = no_streamed_tool_calls
    fake.add(_tool_call_stream(), _tool_call_whole())
    chunks = list(openai_sdk(p).chat.completions.create(model="m", tools=[TOOL], messages=ASK, stream=True))
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls and calls[0][0].function.name == "get_weather", chunks
    assert [r.json().get("stream") for r in fake.received] == [True, False]

    fake.reset()
    fake.add(_tool_call_stream(), _tool_call_whole())
    with anthropic_sdk(p).messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "Paris?"}],
                                          tools=[{"name": "get_weather", "input_schema": {"type": "object"}}]) as s:
        message = s.get_final_message()
    assert message.stop_reason == "tool_use" and message.content[-1].input == {"city": "Paris"}

    fake.reset()
    fake.add(_tool_call_stream(), _tool_call_whole())
    events = list(openai_sdk(p).responses.create(model="m", input=ASK, stream=True, tools=[
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]))
    done = [e for e in events if e.type == "response.completed"]
    assert done and done[0].response.output[-1].type == "function_call", events
    assert [r.json().get("stream") for r in fake.received] == [True, False]
    assert poll(lambda: sum(1 for line in journal(p) if line.get("asked_whole") is True) >= 3, timeout=20)


def test_an_answer_asked_again_whole_for_a_stream_is_read_within_a_streams_bound(no_streamed_tool_calls):
    """Read up to MAX_RESPONSE_BYTES (64 MiB), a 59 MB answer cost the worker +277 MB for one streaming client;
    past WHOLE_FOR_A_STREAM (8 MiB) it is a 502 before the first byte."""
    fake, p = no_streamed_tool_calls
    fake.add(_tool_call_stream(), Reply(chat_completion("x" * (9 * 1024 * 1024))))
    r = requests.post(p.base_url + "/chat/completions", json={"model": "m", "stream": True, "tools": [TOOL],
                                                               "messages": ASK}, timeout=60)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_response_too_large", r.text[:300]
    assert "asked again whole" in r.json()["error"]["message"]


def test_developer_kept_where_the_upstream_declares_it():
    """DEVELOPER_ROLE=keep for the single upstream; `developer_role: keep` on one `models:` entry."""
    with FakeOpenAI() as fake:
        fake.accepts_developer = True
        with running_proxy(TARGET_BASE_URL=fake.base_url, DEVELOPER_ROLE="keep") as p:
            openai_sdk(p).responses.create(model="m", input=[{"role": "developer", "content": "d"}, *ASK])
            assert fake.received[-1].json()["messages"][0]["role"] == "developer"
        entries = [{"name": "openai-like", "backend": "openai", "base_url": fake.base_url, "developer_role": "keep"},
                   {"name": "local", "backend": "openai", "base_url": fake.base_url}]
        with running_proxy(MODELS=json.dumps(entries)) as p:
            for model, role in (("openai-like", "developer"), ("local", "system")):
                openai_sdk(p).chat.completions.create(model=model, messages=[{"role": "developer", "content": "d"}])
                assert fake.received[-1].json()["messages"][0]["role"] == role, model


# ------------------------------------------------------------------ usage on streams without it

def test_messages_stream_has_output_tokens_when_the_upstream_sends_no_usage(up):
    fake, p = up
    with anthropic_sdk(p).messages.stream(model="m", max_tokens=50, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == fake.default_content
    assert "include_usage" in fake.received[-1].json()["stream_options"]  # asked, and not answered
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert journaled(p, 1)[-1]["usage_estimated"] is True


def test_responses_completed_has_usage_when_the_upstream_sends_no_usage(up):
    fake, p = up
    before = len(journal(p))
    with openai_sdk(p).responses.stream(model="m", input="Say hello") as stream:
        events = list(stream)
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.output_text == fake.default_content
    usage = completed.response.usage
    assert usage is not None and usage.output_tokens > 0 and usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert journaled(p, before + 1)[-1]["usage_estimated"] is True


def test_upstream_usage_is_used_as_it_comes(up):
    fake, p = up
    fake.sends_stream_usage = True
    before = len(journal(p))
    with anthropic_sdk(p).messages.stream(model="m", max_tokens=50, messages=ASK) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens == fake.usage["completion_tokens"]
    assert "usage_estimated" not in journaled(p, before + 1)[-1]


# ------------------------------------------------------------------ tpm budgets on streams (issue 20, item 4)

THOUSAND = " word" * 1000  # 1,000 tokens in cl100k


def stream_once(p, key: str, asked: bool = False) -> tuple[int, list]:
    body = {"model": "m", "messages": ASK, "stream": True, "max_tokens": 1000}  # a reservation of about 1,010
    if asked:
        body["stream_options"] = {"include_usage": True}
    with requests.post(p.base_url + "/chat/completions", json=body, stream=True, timeout=30,
                       headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            return r.status_code, [r.json()]
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith(b"data: {")]
        return 200, events


@pytest.mark.parametrize("llama_like", [False, True], ids=["usage-when-asked", "no-usage-ever"])
def test_tpm_budget_holds_on_streams_whose_client_did_not_ask_for_usage(llama_like):
    """Eight streamed answers of 1,000 tokens each passed a 1,500 tpm key: the proxy now asks the upstream for
    usage (and strips it: the client did not ask), or counts the stream when none comes (on 2,500 tokens a
    minute: two, the third's reservation does not fit what is left)."""
    with FakeOpenAI() as fake:
        fake.default_content = THOUSAND
        fake.usage = {"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}
        fake.sends_stream_usage = not llama_like
        with running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="sk-admin",
                           KEY_LIMITS='{"TEAM_KEY": {"tpm": 2500}}', TEAM_KEY="sk-team") as p:
            outcomes = [stream_once(p, "sk-team") for _ in range(8)]
            served = [events for status, events in outcomes if status == 200]
            refused = [events[0] for status, events in outcomes if status == 429]
            # a stream's tokens count once it ended: the second may start before the first is counted
            assert len(served) == 2 and len(served) + len(refused) == 8
            assert "2500 tokens per minute" in refused[0]["error"]["message"]
            for events in served:  # the client did not ask for usage: it gets none
                assert "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"]) \
                    == THOUSAND
                assert not any("usage" in c for c in events)
            assert all(r.json()["stream_options"] == {"include_usage": True} for r in fake.received)
            # a client that asks gets the upstream's usage as it came
            status, events = stream_once(p, "sk-admin", asked=True)
            assert status == 200 and (events[-1]["usage"] == fake.usage if not llama_like
                                      else not any(c.get("usage") for c in events))


def test_team_key_tpm_holds_on_streams_too(tmp_path):
    """The same for a team key (`cot_proxy.py keys create --tpm`), against an upstream that never sends usage:
    the streams are counted (team keys record usage in batches, so the test waits until it is recorded)."""
    from tests.integration.test_team_keys import create, keys
    db = tmp_path / "keys.db"

    def output_tokens() -> int:
        rows = csv.DictReader(io.StringIO(keys(db, "usage", "--csv").stdout))
        return sum(int(r["output_tokens"]) for r in rows if r["key"] == "dana")

    with FakeOpenAI() as fake:
        fake.default_content, fake.sends_stream_usage = THOUSAND, False
        with running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="sk-admin",
                           KEYS_DB=str(db)) as p:
            key = create(db, "dana", "--tpm", "2500")
            assert [stream_once(p, key)[0] for _ in range(2)] == [200, 200]
            assert poll(lambda: output_tokens() >= 1900, timeout=20), output_tokens()
            status, events = stream_once(p, key)
            assert status == 429 and "2500 tokens per minute" in events[0]["error"]["message"]


# ------------------------------------------------------------------ /v1/models/{id}, /, start-up line

def test_model_retrieved_from_the_list_where_the_upstream_has_no_such_route(up):
    fake, p = up
    fake.add(Reply({"error": {"message": "Not Found"}}, status=404))  # llama.cpp: no /v1/models/{id}
    model = openai_sdk(p).models.retrieve("fake-model")
    assert model.id == "fake-model" and [r.path for r in fake.received] == ["/v1/models/fake-model", "/v1/models"]
    fake.add(Reply({"error": {"message": "Not Found"}}, status=404))
    with pytest.raises(openai.NotFoundError):
        openai_sdk(p).models.retrieve("not-served")
    assert requests.head(p.base_url + "/models/fake-model").status_code == 200


def test_root_answered_here(up):
    fake, p = up
    for method in ("HEAD", "GET"):
        r = requests.request(method, p.url + "/")
        assert r.status_code == 200, method
    assert r.json()["status"] == "ok" and fake.received == []


def test_routing_serves_glob_models_and_says_what_it_serves():
    with FakeOpenAI() as a, FakeOpenAI() as b:
        entries = [{"name": "gemma", "backend": "openai", "base_url": a.base_url},
                   {"name": "claude-*", "backend": "openai", "base_url": b.base_url}]
        with running_proxy(MODELS=json.dumps(entries), ALLOWED_MODELS="gemma,claude-sonnet-*",
                           ENABLE_AUTH="true", API_KEY_SECRET="sk-client") as p:
            client = openai_sdk(p, "sk-client")
            assert client.models.retrieve("claude-sonnet-4").id == "claude-sonnet-4"  # only the glob serves it
            assert client.models.retrieve("gemma").id == "gemma"
            with pytest.raises(openai.NotFoundError):  # served by the glob, but off the allow-list
                client.models.retrieve("claude-opus-4")
            with pytest.raises(openai.NotFoundError):
                client.models.retrieve("llama")
            assert requests.head(p.url + "/").status_code == 200  # no key needed to see the proxy is up
            log = p.read_log()
        line = next(x for x in log.splitlines() if "cot_proxy listening on" in x)
        assert f"routing 2 models (gemma, claude-*) -> openai at {a.base_url}, openai at {b.base_url}" in line
        assert "api.openai.com" not in line and "default URL" not in line


def test_a_model_neither_the_server_nor_the_proxy_knows_is_openais_404(up):
    """llama.cpp's server answers any /v1/models/{id} with a bare {"detail": "Not Found"}; a model the proxy does
    not know either is then OpenAI's 404 (code model_not_found), which SDKs map to NotFoundError."""
    fake, p = up
    fake.add(Reply({"detail": "Not Found"}, status=404))
    r = requests.get(p.base_url + "/models/nope", timeout=20)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text
    assert "`nope`" in r.json()["error"]["message"]


def test_head_on_a_forwarded_path_says_the_length_a_get_gets(up):
    fake, p = up
    fake.add(Reply(b"x" * 1234, headers={"Content-Type": "application/octet-stream"}))
    r = requests.head(p.base_url + "/files/f/content", timeout=20)
    assert r.status_code == 200 and r.headers["Content-Length"] == "1234" and r.content == b""
    assert requests.get(p.base_url + "/models", timeout=20).status_code == 200  # the connection still frames


def test_head_says_no_length_where_the_proxy_cannot_know_it(fake):
    """A compressed answer goes out decoded where the proxy scans answers for its keys: its decoded length is
    unknown without the body, so HEAD says none rather than 0 (a client would take that for an empty file)."""
    with running_proxy(TARGET_BASE_URL=fake.base_url, OPENAI_API_KEY="sk-upstream-head-test") as p:
        fake.add(Reply(b"x" * 5000, gzip=True, headers={"Content-Type": "application/octet-stream"}))
        r = requests.head(p.base_url + "/files/f/content", timeout=20)
        assert r.status_code == 200 and "Content-Length" not in r.headers and r.content == b"", r.headers
        assert "Content-Encoding" not in r.headers  # as the GET would come: decoded
        assert requests.get(p.base_url + "/models", timeout=20).status_code == 200  # the connection still frames
