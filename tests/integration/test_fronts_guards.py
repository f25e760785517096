"""Every guard and observer of the chat path on the Responses and Messages front doors (auth with x-api-key,
the allow-list, LLM_PARAMS, stream-mode conversion, upstream errors and mid-stream breaks, metrics with the
front label, journals, request ids), and the two ways a front reaches an upstream that speaks it natively
(FRONTS_PASSTHROUGH; ARGO native mode's Anthropic endpoint)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import anthropic
import openai
import pytest
import requests
from PIL import Image

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.argo_rules import native_refusal
from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_images import FakeImageServer
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "hi"}]
ANTHROPIC_MESSAGE = {"id": "msg_up", "type": "message", "role": "assistant", "model": "claudesonnet4",
                     "content": [{"type": "text", "text": "from the Anthropic endpoint"}], "stop_reason": "end_turn",
                     "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 4}}


def oai(p, key="sk-proxy") -> openai.OpenAI:
    return openai_sdk(p, key)


def ant(p, key="sk-proxy") -> anthropic.Anthropic:
    return anthropic_sdk(p, key)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Auth on, an allow-list, LLM_PARAMS, journals, the proxy's own upstream key."""
    logs = tmp_path_factory.mktemp("journals")
    with FakeOpenAI() as fake, running_proxy(
            TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="sk-proxy", OPENAI_API_KEY="sk-upstream",
            ALLOWED_MODELS="fake-model", LLM_PARAMS="model=fake-model,temperature=0.125", LOG_DIR=str(logs)) as p:
        yield fake, p, logs


def test_anthropic_clients_get_the_model_list_in_anthropics_shape(guarded):
    """Anthropic's SDK (and Claude Code's gateway model discovery, which reads `display_name`) ask /v1/models
    with anthropic-version: Anthropic's page of ModelInfo, one model, and a 404 in Anthropic's error shape. The
    allow-list filters the list as it does OpenAI's."""
    _, p, _ = guarded
    page = ant(p).models.list()
    assert [(m.type, m.id, m.display_name) for m in page.data] == [("model", "fake-model", "fake-model")]
    assert page.data[0].created_at.year == 1970 and page.has_more is False and page.first_id == "fake-model"
    assert ant(p).models.retrieve("fake-model").display_name == "fake-model"
    with pytest.raises(anthropic.NotFoundError) as missing:
        ant(p).models.retrieve("not-listed")
    assert missing.value.body["type"] == "error" and missing.value.body["error"]["type"] == "not_found_error"
    assert [m.id for m in oai(p).models.list()] == ["fake-model"]  # OpenAI's clients: OpenAI's shape


def test_x_api_key_is_checked_and_never_forwarded(guarded):
    fake, p, _ = guarded
    fake.received.clear()
    ant(p).messages.create(model="fake-model", max_tokens=10, messages=MSG)  # the SDK 2.x: the key as a Bearer
    requests.post(p.url + "/v1/messages", headers={"x-api-key": "sk-proxy", "anthropic-version": "2023-06-01"},
                  json={"model": "fake-model", "max_tokens": 10, "messages": MSG}, timeout=30).raise_for_status()
    assert len(fake.received) == 2
    for received in fake.received:
        headers = {k.lower(): v for k, v in received.headers.items()}
        assert headers["authorization"] == "Bearer sk-upstream" and "x-api-key" not in headers
        assert "sk-proxy" not in json.dumps(headers)
    with pytest.raises(anthropic.AuthenticationError) as info:
        ant(p, key="wrong").messages.create(model="fake-model", max_tokens=10, messages=MSG)
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        oai(p, key="wrong").responses.create(model="fake-model", input="hi")
    r = requests.post(p.url + "/v1/messages/count_tokens", json={"model": "fake-model", "messages": MSG})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_allow_list_and_llm_params(guarded):
    fake, p, _ = guarded
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        ant(p).messages.create(model="other-model", max_tokens=10, messages=MSG)
    assert info.value.body["error"]["type"] == "permission_error"
    with pytest.raises(openai.PermissionDeniedError):
        oai(p).responses.create(model="other-model", input="hi")
    r = requests.post(p.url + "/v1/messages/count_tokens", headers={"x-api-key": "sk-proxy"},
                      json={"model": "other-model", "messages": MSG})
    assert r.status_code == 403
    oai(p).responses.create(model="fake-model", input="hi", temperature=0.9)
    assert fake.received[-1].json()["temperature"] == 0.125


def test_metrics_carry_the_front_and_journals_the_client_side(guarded):
    fake, p, logs = guarded
    oai(p).responses.create(model="fake-model", input="journal me")
    ant(p).messages.create(model="fake-model", max_tokens=10, messages=[{"role": "user", "content": "and me"}])
    text = requests.get(p.url + "/metrics", headers={"Authorization": "Bearer sk-proxy"}).text
    assert 'front="responses",model="fake-model",route="chat",status="200"' in text
    assert 'front="messages",model="fake-model",route="chat",status="200"' in text
    assert 'front="messages",model="fake-model",route="chat",status="401"' not in text
    records = [json.loads(line) for f in Path(logs).rglob("*.jsonl") for line in f.read_text().splitlines()]
    client = [r for r in records if "journal me" in json.dumps(r) and r.get("front") == "responses"]
    assert client, records[-2:]
    assert any(r["path"] == "/v1/responses" and r["input"]["input"] == "journal me" for r in client)
    assert any(r["output"] and r["output"].get("object") == "response" for r in client)
    assert "sk-proxy" not in json.dumps(records) and "sk-upstream" not in json.dumps(records)


def test_request_ids_in_answers_and_errors(guarded):
    _, p, _ = guarded
    r = requests.post(p.url + "/v1/messages", headers={"x-api-key": "sk-proxy", "X-Request-ID": "req-fronts-1"},
                      json={"model": "fake-model", "max_tokens": 5, "messages": MSG})
    assert r.headers["X-Request-ID"] == "req-fronts-1"  # the client's echoed; the proxy's own names the request
    assert r.headers["request-id"] == r.headers["X-Cot-Proxy-Request-ID"] != "req-fronts-1"
    r = requests.post(p.url + "/v1/responses", headers={"Authorization": "Bearer sk-proxy", "X-Request-ID": "req-2"},
                      json={"model": "fake-model"})
    assert r.status_code == 400 and r.json()["error"]["request_id"] == r.headers["X-Cot-Proxy-Request-ID"]
    assert r.json()["error"]["client_request_id"] == "req-2"
    assert r.json()["error"]["param"] == "input"


# ------------------------------------------------------------------ upstream errors and stream modes

@pytest.fixture(scope="module")
def plain():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, OPENAI_API_KEY="sk-secret-up") as p:
        yield fake, p


def test_upstream_errors_in_each_front_shape_and_sanitized(plain):
    fake, p = plain
    fake.add(Reply({"error": {"message": "Key sk-secret-up may not use this", "type": "permission"}}, status=403))
    r = requests.post(p.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": MSG})
    assert r.status_code == 403 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "permission_error" and "sk-secret-up" not in r.text
    fake.add(Reply({"error": {"message": "no such model", "type": "invalid_request_error"}}, status=404))
    with pytest.raises(openai.NotFoundError) as info:
        oai(p).responses.create(model="m", input="x")
    assert "no such model" in str(info.value)


def test_bad_values_name_the_fronts_own_parameter(plain):
    """The chat request's checks run on the translation; their errors name what the client sent."""
    _, p = plain
    with pytest.raises(openai.BadRequestError) as info:
        oai(p).responses.create(model="m", input="x", max_output_tokens=0)
    assert info.value.body["param"] == "max_output_tokens" and "`max_output_tokens`" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        oai(p).responses.create(model="m", input=[])
    assert info.value.body["param"] == "input"
    r = requests.post(p.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": MSG,
                                                    "metadata": {"user_id": 5}})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("metadata.user_id:")


def test_fields_left_out_are_still_checked_as_the_documents_give_them(plain):
    """A server tool's own fields and a text block's citations (Messages), an MCP tool's fields and an input
    item's status (Responses) are left out for a chat upstream, but a wrong one is refused, through the official
    SDKs, in each API's error shape, naming the field, and nothing reaches the upstream; well-formed, they are
    answered."""
    fake, p = plain
    fake.reset()
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 0}
    with pytest.raises(anthropic.BadRequestError) as refused:
        ant(p).messages.create(model="m", max_tokens=5, messages=MSG, tools=[web_search])
    assert refused.value.body["error"] == {"type": "invalid_request_error",
                                           "message": "tools.0.max_uses: must be an integer of at least 1."}
    cited = {"type": "text", "text": "see", "citations": [{"type": "char_location", "cited_text": "a",
                                                           "document_index": -1, "document_title": None,
                                                           "start_char_index": 0, "end_char_index": 1}]}
    with pytest.raises(anthropic.BadRequestError) as refused:
        ant(p).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": [cited]}])
    assert refused.value.body["error"]["message"].startswith("messages.0.content.0.citations.0.document_index:")
    mcp = {"type": "mcp", "server_label": "docs", "require_approval": "sometimes"}
    with pytest.raises(openai.BadRequestError) as bad:
        oai(p).responses.create(model="m", input="hi", tools=[mcp])
    assert bad.value.body["param"] == "tools[0].require_approval" and bad.value.status_code == 400
    replayed = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "status": "done"}
    with pytest.raises(openai.BadRequestError) as bad:
        oai(p).responses.create(model="m", input=[replayed, {"type": "function_call_output", "call_id": "c1",
                                                             "output": "r"}])
    assert bad.value.body["param"] == "input[0].status"
    assert fake.received == []
    cited["citations"][0]["document_index"] = 0
    answer = ant(p).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": [cited]}],
                                    tools=[{**web_search, "max_uses": 3}])
    assert answer.content[0].type == "text"
    assert oai(p).responses.create(model="m", input=[{**replayed, "status": "completed"}, {
        "type": "function_call_output", "call_id": "c1", "output": "r"}], tools=[{**mcp, "require_approval": "never"}
                                                                            ]).status == "completed"
    assert len(fake.received) == 2 and "citations" not in json.dumps(json.loads(fake.received[0].body))

def test_retries_before_the_first_byte(plain):
    fake, p = plain
    fake.received.clear()
    fake.add(Reply({"error": {"message": "busy"}}, status=503), Reply(chat_completion("after a retry")))
    m = ant(p).messages.create(model="m", max_tokens=5, messages=MSG)
    assert m.content[0].text == "after a retry" and len(fake.received) == 2
    fake.add(Reply({"error": {"message": "busy"}}, status=503))
    with oai(p).responses.stream(model="m", input="x") as s:
        assert s.get_final_response().output_text == "Hello from the fake upstream!"


def test_a_stream_that_breaks_ends_in_the_fronts_error_events(plain):
    fake, p = plain
    fake.add(Stream(chat_chunks(["Hel", "lo", "!"]), cut_after=2))
    with oai(p).responses.stream(model="m", input="x") as s:
        types = [e.type for e in s]
    assert types[-2:] == ["error", "response.failed"]
    fake.add(Stream(chat_chunks(["Hel", "lo", "!"]), cut_after=2))
    with pytest.raises(anthropic.APIStatusError):
        with ant(p).messages.stream(model="m", max_tokens=5, messages=MSG) as s:
            list(s)


@pytest.mark.parametrize("mode", ["stream", "non_stream"])
def test_upstream_mode_conversion(fake, mode):
    with running_proxy(TARGET_BASE_URL=fake.base_url, UPSTREAM_MODE=mode, THINK_MODE="reasoning") as p:
        fake.default_content = "<think>plan</think>Converted!"
        r = oai(p).responses.create(model="m", input="x")
        assert fake.received[-1].json().get("stream", False) is (mode == "stream")
        assert r.output_text == "Converted!" and r.output[0].type == "reasoning"
        with ant(p).messages.stream(model="m", max_tokens=50, messages=MSG, thinking={"type": "adaptive"}) as s:
            final = s.get_final_message()
        assert fake.received[-1].json().get("stream", False) is (mode == "stream")
        assert [b.type for b in final.content] == ["thinking", "text"] and final.content[1].text == "Converted!"
        assert final.usage.output_tokens == 7


def test_reasoning_content_from_the_upstream(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url) as p:  # THINK_MODE=strip: only tags are stripped
        answer = chat_completion("Answer.")
        answer["choices"][0]["message"]["reasoning_content"] = "upstream reasoning"
        fake.add(Reply(answer), Reply(answer))
        r = oai(p).responses.create(model="m", input="x")
        assert r.output[0].type == "reasoning" and r.output[0].content[0].text == "upstream reasoning"
        m = ant(p).messages.create(model="m", max_tokens=50, messages=MSG, thinking={"type": "enabled",
                                                                                    "budget_tokens": 1024})
        assert m.content[0].type == "thinking" and m.content[0].thinking == "upstream reasoning"


# ------------------------------------------------------------------ upstreams that speak the front natively

def test_fronts_passthrough(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url, FRONTS_PASSTHROUGH="messages,responses",
                       LLM_PARAMS="model=claude-x,temperature=0.25") as p:
        fake.add(Reply(ANTHROPIC_MESSAGE))
        m = ant(p, key="sk-client").messages.create(model="claude-x", max_tokens=10, messages=MSG,
                                                    extra_headers={"anthropic-version": "2023-06-01"})
        assert m.content[0].text == "from the Anthropic endpoint"
        sent = fake.received[-1]
        assert sent.path == "/v1/messages" and sent.json()["temperature"] == 0.25
        fake.add(Reply(ANTHROPIC_MESSAGE))  # the SDK's own version (2026-10-21 on) refuses any sampling parameter
        ant(p, key="sk-client").messages.create(model="claude-x", max_tokens=10, messages=MSG)
        assert "temperature" not in fake.received[-1].json()
        fake.add(Reply({"id": "resp_up", "object": "response", "created_at": 1, "status": "completed",
                        "model": "gpt", "output": [], "error": None, "incomplete_details": None,
                        "instructions": None, "metadata": {}, "parallel_tool_calls": True, "temperature": 1,
                        "tool_choice": "auto", "tools": [], "top_p": 1}))
        r = oai(p).responses.create(model="gpt", input="x")
        assert r.id == "resp_up" and fake.received[-1].path == "/v1/responses"


def test_a_passed_through_error_keeps_what_clients_back_off_by(fake):
    """A 529 or 429 from an upstream that speaks the door itself: the body as it came, and its Retry-After and
    rate-limit headers (the anthropic SDK fell back to its own backoff without them)."""
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with running_proxy(TARGET_BASE_URL=fake.base_url, FRONTS_PASSTHROUGH="messages", MAX_RETRIES="0") as p:
        fake.add(Reply(overloaded, status=529, headers={"Retry-After": "3", "anthropic-ratelimit-requests-remaining": "0"}))
        r = requests.post(p.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 8, "messages": MSG},
                          timeout=30)
        assert r.status_code == 529 and r.json() == overloaded
        assert r.headers["Retry-After"] == "3" and r.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_a_team_keys_budget_counts_what_native_answers_say_they_used(fake, tmp_path):
    """A relayed native answer is not parsed, but its usage is read from its bytes as they pass: whole or
    streamed, it counts against a team key's budget (it was charged the prompt's estimate only)."""
    from tests.integration.test_team_keys import create
    db = tmp_path / "keys.db"
    stream = [{"type": "message_start", "message": {**ANTHROPIC_MESSAGE, "content": [], "usage": {
        "input_tokens": 500, "output_tokens": 1}}}, {"type": "content_block_start", "index": 0, "content_block": {
            "type": "text", "text": ""}}, {"type": "content_block_delta", "index": 0, "delta": {
                "type": "text_delta", "text": "hi"}}, {"type": "content_block_stop", "index": 0},
              {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 500}},
              {"type": "message_stop"}]
    with running_proxy(TARGET_BASE_URL=fake.base_url, FRONTS_PASSTHROUGH="messages", ENABLE_AUTH="true",
                       API_KEY_SECRET="admin", KEYS_DB=str(db)) as p:
        key = create(db, "nat", "--budget", "2500/day")
        client = ant(p, key=key)
        fake.add(Reply({**ANTHROPIC_MESSAGE, "usage": {"input_tokens": 400, "output_tokens": 600}}))
        client.messages.create(model="claude-x", max_tokens=10, messages=MSG)  # 1,000 tokens
        fake.add(Stream([f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in stream]))
        with client.messages.stream(model="claude-x", max_tokens=10, messages=MSG) as events:
            assert events.get_final_text() == "hi"  # 1,000 more
        fake.add(Reply({**ANTHROPIC_MESSAGE, "usage": {"input_tokens": 400, "output_tokens": 600}}))
        client.messages.create(model="claude-x", max_tokens=10, messages=MSG)  # 3,000: over from now on
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="claude-x", max_tokens=10, messages=MSG)


def test_a_native_responses_stream_without_usage_is_charged_its_estimate(fake, tmp_path):
    """A Responses stream relayed natively whose usage never comes (here the upstream sends none; a client that
    leaves before response.completed is the same) is charged the estimate of its `input` and of the text it
    relayed: the estimator used to count chat `messages` only, so it was free."""
    from tests.integration.test_team_keys import create, usage_row
    db = tmp_path / "keys.db"
    words = "the quick brown fox jumps over the lazy dog " * 40
    events = [{"type": "response.created", "response": {"id": "resp_up", "status": "in_progress"}},
              {"type": "response.output_text.delta", "item_id": "m1", "output_index": 0, "content_index": 0,
               "delta": words}]
    with running_proxy(TARGET_BASE_URL=fake.base_url, FRONTS_PASSTHROUGH="responses", ENABLE_AUTH="true",
                       API_KEY_SECRET="admin", KEYS_DB=str(db)) as p:
        key = create(db, "resp")
        fake.add(Stream([f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]))
        r = requests.post(p.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"}, timeout=20,
                          json={"model": "gpt", "stream": True, "instructions": "be brief",
                                "input": [{"role": "user", "content": [{"type": "input_text", "text": words}]}]})
        assert r.status_code == 200 and b"quick brown" in r.content
        name, model, day, count, input_tokens, output_tokens, cost, unpriced = usage_row(db, "resp", 1)
    assert int(input_tokens) >= 360 and int(output_tokens) >= 360  # 9 tokens × 40, each way


def test_argo_native_messages_go_to_the_anthropic_endpoint(argo_native):
    up, p = argo_native
    up.add(Reply(ANTHROPIC_MESSAGE))
    raw = ant(p, key="client-key").messages.with_raw_response.create(
        model="argo:claude-sonnet-4", max_tokens=10, messages=MSG, metadata={"user_id": "someone"})
    assert raw.parse().content[0].text == "from the Anthropic endpoint"
    sdk = raw.http_request.headers  # the SDK 2.x's: the key as a Bearer token, its version (2026-10-21 on)
    assert sdk["authorization"] == "Bearer client-key" and sdk["anthropic-version"] >= "2026-10-21"
    sent = up.received[-1]
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert sent.path == "/v1/messages" and sent.json()["model"] == "claudesonnet4"
    assert sent.json()["metadata"]["user_id"] == "alice" and headers["x-api-key"] == "alice"
    assert headers["anthropic-version"] == sdk["anthropic-version"] and "client-key" not in json.dumps(headers)
    up.add(Reply({"input_tokens": 12}))
    count = ant(p).messages.count_tokens(model="argo:claude-sonnet-4", messages=MSG,
                                         extra_headers={"anthropic-version": "2023-06-01"})
    assert count.input_tokens == 12 and up.received[-1].path == "/v1/messages/count_tokens"
    assert {k.lower(): v for k, v in up.received[-1].headers.items()}["anthropic-version"] == "2023-06-01"
    up.add(Reply({"type": "error", "error": {"type": "invalid_request_error", "message": "Model 'x' is bad"}},
                 status=400))
    r = requests.post(p.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": MSG})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Model 'x' is bad"  # relayed as it came


def test_argo_native_messages_send_a_long_contexts_other_members_as_written(argo_native):
    """Issue 22: Claude Code's long histories go to ARGO's Anthropic endpoint with the model, metadata.user_id and
    the key set, and every other member as the client wrote it (not encoded again)."""
    up, p = argo_native
    up.add(Reply(ANTHROPIC_MESSAGE))
    messages = ('[{"role": "user", "content": "r\\u00e9sum\\u00e9 ' + "x" * 200_000 + '"}]').encode()
    raw = (b'{"model": "argo:claude-sonnet-4", "max_tokens": 10, "messages": ' + messages
           + b', "system": "Be\\u0020brief.", "timeout": 30}')
    r = requests.post(p.url + "/v1/messages", data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    sent = up.received[-1]
    assert messages in sent.body and b'"system":"Be\\u0020brief."' in sent.body  # values as written
    body = sent.json()
    assert body["model"] == "claudesonnet4" and body["metadata"] == {"user_id": "alice"} and "timeout" not in body


def test_argo_native_chat_sends_a_long_context_as_written_with_the_user_added(argo_native):
    """Issue 22: where the proxy only adds members (ARGO's user), the upstream gets the client's bytes as they came
    with the new member before the closing brace (the 5 MB text is not walked a second time)."""
    up, p = argo_native
    up.add(Reply(chat_completion("ok")))
    raw = (b'{"model": "gpt4o",\n "messages": [{"role": "user", "content": "r\\u00e9sum\\u00e9 ' + b"x" * 200_000
           + b'"}] }\n')
    r = requests.post(p.url + "/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    sent = up.received[-1].body
    assert sent == raw[:raw.rindex(b"}")] + b',"user":"alice"}'


def test_argo_native_other_models_and_responses_translate_to_chat(argo_native):
    up, p = argo_native
    up.add(Reply(chat_completion("via chat")), Reply(chat_completion("via chat too")))
    m = ant(p).messages.create(model="argo:gpt-4o", max_tokens=10, messages=MSG)
    assert m.content[0].text == "via chat" and up.received[-1].path == "/v1/chat/completions"
    assert up.received[-1].json()["model"] == "gpt4o" and up.received[-1].json()["user"] == "alice"
    r = oai(p).responses.create(model="argo:gpt-4o", input="x")
    assert r.output_text == "via chat too" and up.received[-1].path == "/v1/chat/completions"


def test_argo_native_anthropic_images_are_inlined():
    with FakeOpenAI(refuse=native_refusal) as up, FakeArgo() as argo, FakeImageServer() as imgs:
        env = argo_env(argo, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=up.base_url, IMAGE_ALLOW_PRIVATE="true")
        with running_proxy(**env) as p:
            up.add(Reply(ANTHROPIC_MESSAGE))
            ant(p).messages.create(model="argo:claude-sonnet-4", max_tokens=10, messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "url", "url": imgs.url("/img/red.png")}},
                {"type": "image", "source": {"type": "url", "url": imgs.url("/page.html")}}]}])
            blocks = up.received[-1].json()["messages"][0]["content"]
            assert blocks[1]["source"]["type"] == "base64" and blocks[1]["source"]["media_type"] == "image/png"
            Image.open(io.BytesIO(base64.b64decode(blocks[1]["source"]["data"]))).verify()
            assert blocks[2]["source"] == {"type": "url", "url": imgs.url("/page.html")}  # not an image: kept



def test_answers_read_whole_are_bounded(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url, MAX_RESPONSE_BYTES="20000") as p:
        fake.add(Reply(chat_completion("x" * 50_000)))
        with pytest.raises(anthropic.APIStatusError) as info:
            ant(p).messages.create(model="m", max_tokens=5, messages=MSG)
        assert info.value.status_code == 502 and info.value.body["type"] == "error"
        fake.add(Stream(chat_chunks(["y" * 5000] * 10)))  # relayed as it arrives: not cut
        with oai(p).responses.stream(model="m", input="x") as s:
            assert len(s.get_final_response().output_text) == 50_000


@pytest.mark.parametrize("target", ["/v1/messages;x=1", "/v1/./messages", "/v1/messages%09",
                                    "/v1/messages/count_tokens;a"])
def test_a_messages_path_refused_before_its_route_answers_in_anthropics_shape(plain, target):
    """A spelling the path rules refuse (a parameter, a dot segment, a control character) is still plainly the
    Messages door's: its 400 comes in Anthropic's shape, as the Google door's do in Google's."""
    _, p = plain
    r = requests.post(p.url + target, json={"model": "m", "max_tokens": 5, "messages": []}, timeout=10)
    body = r.json()
    assert r.status_code == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    assert "request-id" in {k.lower() for k in r.headers}
    chat = requests.post(p.url + "/v1/chat/completions;x=1", json={}, timeout=10).json()
    assert chat["error"]["code"] == "invalid_path"  # the other routes keep OpenAI's
