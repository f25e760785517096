"""OpenAI <-> ARGO translation of whole requests and responses."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest
import requests

from argoproxy.meter import tokens
from argoproxy.providers.argo.convert import (
    AUTH_NOTICE,
    MAX_EMBED_BATCH,
    chat_request_to_argo,
    chat_response_to_openai,
    completion_request_to_argo,
    completion_response_to_openai,
    embedding_inputs,
    embedding_request_to_argo,
    embeddings_to_openai,
    error_from_argo,
    parse_argo_json,
    text_and_tool_calls,
)
from argoproxy.providers.argo.tools import decode_tool_calls
from argoproxy.errors import ProxyError
from tests.fakes.fake_argo import AUTH_NOTICE_TEXT, CHAT_PATH, EMBED_PATH, FakeArgo

USER = "alice"


# ------------------------------------------------------------------------------- chat requests


def test_chat_request_keeps_known_fields_and_drops_the_rest():
    body = {
        "model": "argo:gpt-4o",
        "user": "someone-else",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 100,
        "max_completion_tokens": 120,
        "stop": ["\n"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 1,
        "timeout": 30,
        "presence_penalty": 0.5,
        "logit_bias": {"1": 2},
        "parallel_tool_calls": False,
        "seed": 4,
    }
    out = chat_request_to_argo(body, model_id="gpt4o", user=USER)
    assert out == {
        "user": USER,
        "model": "gpt4o",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 100,
        "max_completion_tokens": 120,
        "stop": ["\n"],
    }


def test_chat_request_for_streamchat_says_stream():
    out = chat_request_to_argo({"messages": [{"role": "user", "content": "hi"}], "stream": False}, model_id="gpt4o", user=USER, stream=True)
    assert out["stream"] is True


def test_chat_request_forwards_tools_as_given():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    out = chat_request_to_argo(
        {"messages": [{"role": "user", "content": "hi"}], "tools": tools, "tool_choice": "auto"}, model_id="gpt4o", user=USER
    )
    assert out["tools"] == tools and out["tool_choice"] == "auto"


def test_chat_request_applies_family_normalisation():
    out = chat_request_to_argo({"messages": [{"role": "system", "content": "s"}]}, model_id="claudesonnet4", user=USER)
    assert out["messages"][-1] == {"role": "user", "content": "[continue]"}
    out = chat_request_to_argo(
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}, model_id="gpto1mini", user=USER
    )
    assert [m["role"] for m in out["messages"]] == ["user", "user"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": ["hi"]}, "messages"),
        ({"messages": [{"role": "user", "content": "q"}], "n": 2}, "n"),
    ],
)
def test_chat_request_rejects_bad_input(body, param):
    with pytest.raises(ProxyError) as caught:
        chat_request_to_argo(body, model_id="gpt4o", user=USER)
    assert caught.value.status == 400 and caught.value.param == param


def test_raw_prompt_style_chat_is_accepted():
    out = chat_request_to_argo({"system": "s", "prompt": "q"}, model_id="gpt4o", user=USER)
    assert out == {"user": USER, "model": "gpt4o", "system": "s", "prompt": ["q"]}


# -------------------------------------------------------------------------- completion requests


def test_completion_request_is_prompt_style():
    body = {"model": "argo:gpt-4o", "prompt": "Say hi", "max_tokens": 5, "echo": True, "logprobs": 2, "suffix": "x", "best_of": 2, "stream": True}
    out = completion_request_to_argo(body, model_id="gpt4o", user=USER)
    assert out == {"user": USER, "model": "gpt4o", "prompt": ["Say hi"], "max_tokens": 5}


def test_completion_prompt_list_is_merged_into_one():
    out = completion_request_to_argo({"prompt": ["one", "two", "one"]}, model_id="gpt4o", user=USER)
    assert out["prompt"] == ["one\n\ntwo"]


def test_completion_token_prompt_is_decoded():
    ids = tokens.encoding().encode("hello world")
    out = completion_request_to_argo({"prompt": ids}, model_id="gpt4o", user=USER)
    assert out["prompt"] == ["hello world"]


def test_completion_o1_system_merge():
    out = completion_request_to_argo({"prompt": "q", "system": "s"}, model_id="gpto1preview", user=USER)
    assert out["prompt"] == ["s\n\nq"] and "system" not in out


@pytest.mark.parametrize("body", [{}, {"prompt": None}, {"prompt": {"a": 1}}, {"prompt": [1, "x"]}, {"prompt": "q", "n": 3}])
def test_completion_request_rejects_bad_input(body):
    with pytest.raises(ProxyError) as caught:
        completion_request_to_argo(body, model_id="gpt4o", user=USER)
    assert caught.value.status == 400


# ----------------------------------------------------------------------------- chat responses


def test_chat_response_to_openai():
    out = chat_response_to_openai({"response": "Hello there"}, model="argo:gpt-4o", prompt_tokens=7, created=1000)
    assert out["id"].startswith("chatcmpl-") and len(out["id"]) == len("chatcmpl-") + 32
    assert out["object"] == "chat.completion"
    assert out["created"] == 1000
    assert out["model"] == "argo:gpt-4o"  # the name the client asked for, not ARGO's id
    assert out["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there", "refusal": None}, "logprobs": None, "finish_reason": "stop"}
    ]
    completion = tokens.count_text("Hello there")
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion}


@pytest.mark.parametrize("response", [
    {"content": [{"type": "thinking", "thinking": "Adding.", "signature": "s"}, {"type": "text", "text": "3"}]},
    {"content": "3", "reasoning_content": "Adding."}, {"content": "3", "reasoning": "Adding."}])
@pytest.mark.parametrize("with_tools", [False, True])
def test_reasoning_in_an_argo_answer_is_reasoning_content(response, with_tools):
    """A Claude answer's thinking blocks, or reasoning beside the text, reach the doors as reasoning_content (the
    text and tool readers left them out) and count as output; with tools offered, also in the answer wrapped once
    more that argo-proxy saw."""
    if with_tools:
        response = {"response": response}
    decoder = (lambda r: decode_tool_calls(r, "anthropic", False)) if with_tools else None
    out = chat_response_to_openai({"response": response}, model="m", prompt_tokens=0, decode_tools=decoder)
    message = out["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("3", "Adding.")
    assert out["usage"]["completion_tokens"] == tokens.count_text("3") + tokens.count_text("Adding.")


def test_chat_response_ids_are_unique():
    a = chat_response_to_openai({"response": "x"}, model="m", prompt_tokens=0)
    b = chat_response_to_openai({"response": "x"}, model="m", prompt_tokens=0)
    assert a["id"] != b["id"]


def test_openai_tool_answer():
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    out = chat_response_to_openai({"response": {"content": None, "tool_calls": [call]}}, model="m", prompt_tokens=1)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [call]
    assert out["usage"]["completion_tokens"] == tokens.count_tool_calls([call])


def test_a_tool_decoder_can_be_plugged_in():
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    seen = []

    def decoder(response):
        seen.append(response)
        return None, [call]

    out = chat_response_to_openai({"response": "<tool_call>...</tool_call>"}, model="m", prompt_tokens=0, decode_tools=decoder)
    assert seen == ["<tool_call>...</tool_call>"]
    assert out["choices"][0]["message"]["tool_calls"] == [call]
    assert out["choices"][0]["message"]["content"] is None
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    plain = chat_response_to_openai({"response": "hi"}, model="m", prompt_tokens=0, decode_tools=lambda r: (r, []))
    assert plain["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in plain["choices"][0]["message"]


def test_anthropic_tool_answer_with_content_blocks():
    response = {
        "content": [
            {"type": "text", "text": "Let me add."},
            {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1, "b": 2}},
        ],
        "tool_calls": [{"id": "toolu_2", "input": {"a": 3}, "name": "neg", "type": "tool_use"}],
    }
    text, calls = text_and_tool_calls(response)
    assert text == "Let me add."
    assert calls == [
        {"id": "toolu_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "neg", "arguments": '{"a": 3}'}},
    ]


def test_gemini_tool_answer_gets_generated_ids():
    text, calls = text_and_tool_calls({"content": "", "tool_calls": [{"id": None, "name": "f", "args": {"x": "ü"}}]})
    assert text == ""
    assert calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": "ü"}


@pytest.mark.parametrize("body", [{}, {"response": None}, {"detail": "oops"}])
def test_missing_response_is_502(body):
    with pytest.raises(ProxyError) as caught:
        chat_response_to_openai(body, model="m", prompt_tokens=0)
    assert caught.value.status == 502
    assert "no response" in caught.value.message


@pytest.mark.parametrize("body", [None, "text", ["response"], 3])
def test_non_dict_body_is_502(body):
    with pytest.raises(ProxyError) as caught:
        chat_response_to_openai(body, model="m", prompt_tokens=0)
    assert caught.value.status == 502


def test_response_of_wrong_type_is_502():
    with pytest.raises(ProxyError) as caught:
        chat_response_to_openai({"response": [1, 2]}, model="m", prompt_tokens=0)
    assert caught.value.status == 502


def test_auth_notice_in_response_is_403():
    with pytest.raises(ProxyError) as caught:
        chat_response_to_openai({"response": AUTH_NOTICE_TEXT}, model="m", prompt_tokens=0)
    err = caught.value
    assert err.status == 403
    assert "not registered" in err.message and "username" in err.message
    assert err.body()["error"]["code"] == "argo_auth_error"


def test_auth_notice_match_is_case_insensitive():
    with pytest.raises(ProxyError):
        completion_response_to_openai({"response": AUTH_NOTICE.lower()}, model="m", prompt_tokens=0)


def test_parse_argo_json():
    assert parse_argo_json(b'{"response": "ok"}') == {"response": "ok"}
    with pytest.raises(ProxyError) as caught:
        parse_argo_json(b"<html>Bad gateway</html>")
    assert caught.value.status == 502 and caught.value.code == "upstream_invalid_json"
    with pytest.raises(ProxyError) as caught:
        parse_argo_json(AUTH_NOTICE_TEXT.encode())
    assert caught.value.status == 403


def test_error_from_argo_keeps_status_and_detail():
    err = error_from_argo(422, b'{"detail": [{"loc": ["body", "user"], "msg": "field required"}]}')
    assert err.status == 422 and "field required" in err.message
    err = error_from_argo(500, "Internal Server Error")
    assert err.status == 500 and "Internal Server Error" in err.message
    assert error_from_argo(302, b"").status == 502


# ----------------------------------------------------------------------- completion responses


def test_completion_response_to_openai():
    out = completion_response_to_openai({"response": "Hi!"}, model="argo:gpt-4o", prompt_tokens=2, created=5)
    assert out["id"].startswith("cmpl-")
    assert out["object"] == "text_completion"
    assert out["model"] == "argo:gpt-4o"
    assert out["choices"] == [{"text": "Hi!", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert out["usage"]["prompt_tokens"] == 2
    assert out["usage"]["total_tokens"] == 2 + tokens.count_text("Hi!")


# --------------------------------------------------------------------------------- embeddings


def test_embedding_inputs_forms():
    assert embedding_inputs({"input": "one"}) == ["one"]
    assert embedding_inputs({"input": ["a", "b"]}) == ["a", "b"]
    assert embedding_inputs({"prompt": ["argo", "style"]}) == ["argo", "style"]
    ids = [tokens.encoding().encode(t) for t in ("cat", "dog")]
    assert embedding_inputs({"input": ids}) == ["cat", "dog"]
    assert embedding_inputs({"input": ids[0]}) == ["cat"]


@pytest.mark.parametrize("body", [{}, {"input": []}, {"input": 5}, {"input": [["a"]]}, {"input": [[1], []]}, {"input": [True]}])
def test_embedding_inputs_rejects_bad_input(body):
    with pytest.raises(ProxyError) as caught:
        embedding_inputs(body)
    assert caught.value.status == 400


def test_embedding_requests_are_batched_by_16():
    texts = [f"text {i}" for i in range(37)]
    batches = embedding_request_to_argo({"input": texts, "encoding_format": "float", "user": "x"}, model_id="v3small", user=USER)
    assert [len(b["prompt"]) for b in batches] == [16, 16, 5]
    assert [p for b in batches for p in b["prompt"]] == texts
    assert all(b["user"] == USER and b["model"] == "v3small" and set(b) == {"user", "model", "prompt"} for b in batches)


def test_exactly_16_inputs_is_one_request():
    assert len(embedding_request_to_argo({"input": ["x"] * MAX_EMBED_BATCH}, model_id="v3small", user=USER)) == 1


def _fake_answers(batches):
    return [{"embedding": [[float(int(p.split()[1])), 0.5] for p in b["prompt"]]} for b in batches]


def test_embeddings_are_joined_in_order_with_sequential_indexes():
    texts = [f"text {i}" for i in range(37)]
    request = {"input": texts}
    answers = _fake_answers(embedding_request_to_argo(request, model_id="v3small", user=USER))
    out = embeddings_to_openai(answers, request=request, model="argo:text-embedding-3-small")
    assert out["object"] == "list" and out["model"] == "argo:text-embedding-3-small"
    assert [d["index"] for d in out["data"]] == list(range(37))
    assert [d["embedding"][0] for d in out["data"]] == [float(i) for i in range(37)]
    assert all(d["object"] == "embedding" for d in out["data"])
    expected_tokens = sum(tokens.count_text(t) for t in texts)
    assert out["usage"] == {"prompt_tokens": expected_tokens, "total_tokens": expected_tokens}


def test_embeddings_base64_is_little_endian_float32():
    request = {"input": ["text 3"], "encoding_format": "base64"}
    out = embeddings_to_openai([{"embedding": [[0.25, -1.5, 3.0]]}], request=request, model="m")
    raw = base64.b64decode(out["data"][0]["embedding"])
    assert struct.unpack("<3f", raw) == (0.25, -1.5, 3.0)


def test_embeddings_dimensions_shorten_and_renormalise():
    request = {"input": ["a"], "dimensions": 2}
    embedding_request_to_argo(request, model_id="v3large", user=USER)  # accepted for v3 models
    out = embeddings_to_openai([{"embedding": [[3.0, 4.0, 12.0]]}], request=request, model="m")
    vector = out["data"][0]["embedding"]
    assert vector == pytest.approx([0.6, 0.8])
    assert math.isclose(sum(x * x for x in vector), 1.0)


@pytest.mark.parametrize(
    ("body", "model_id"),
    [
        ({"input": "a", "dimensions": 8}, "ada002"),
        ({"input": "a", "dimensions": 5000}, "v3small"),
        ({"input": "a", "dimensions": 0}, "v3small"),
        ({"input": "a", "encoding_format": "int8"}, "v3small"),
    ],
)
def test_embedding_options_are_validated(body, model_id):
    with pytest.raises(ProxyError) as caught:
        embedding_request_to_argo(body, model_id=model_id, user=USER)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "answers",
    [
        [{"embedding": [[1.0]]}],  # one vector for two inputs
        [{"embedding": [[1.0], [2.0], [3.0]]}],  # too many
        [{"response": "nothing"}],
        ["not a dict"],
        [],
        [{"embedding": [[1.0], [2.0]]}, {"embedding": [[3.0]]}],  # too many answers
    ],
)
def test_embedding_answers_that_do_not_fit_are_502(answers):
    with pytest.raises(ProxyError) as caught:
        embeddings_to_openai(answers, request={"input": ["a", "b"]}, model="m")
    assert caught.value.status == 502


def test_embedding_answer_with_auth_notice_is_403():
    with pytest.raises(ProxyError) as caught:
        embeddings_to_openai([{"response": AUTH_NOTICE_TEXT}], request={"input": "a"}, model="m")
    assert caught.value.status == 403


# ------------------------------------------------------------ against the fake ARGO over HTTP


def test_round_trip_through_fake_argo():
    texts = [f"sentence number {i} ü" for i in range(40)]
    request = {"model": "argo:text-embedding-3-small", "input": texts}
    with FakeArgo() as argo:
        argo.embedding_dimensions = 8
        answers = []
        for batch in embedding_request_to_argo(request, model_id="v3small", user=USER):
            reply = requests.post(argo.embed_url, json=batch, timeout=5)
            assert reply.status_code == 200
            answers.append(reply.json())
        out = embeddings_to_openai(answers, request=request, model="argo:text-embedding-3-small")
        assert [len(r.json["prompt"]) for r in argo.requests_to(EMBED_PATH)] == [16, 16, 8]
    assert [d["index"] for d in out["data"]] == list(range(40))
    assert [d["embedding"] for d in out["data"]] == [FakeArgo.vector(t, "v3small", 8) for t in texts]


def test_fake_argo_enforces_the_16_prompt_limit_and_user():
    with FakeArgo() as argo:
        too_many = requests.post(argo.embed_url, json={"user": USER, "model": "v3small", "prompt": ["x"] * 17}, timeout=5)
        assert too_many.status_code == 400 and "16" in too_many.json()["detail"]
        no_user = requests.post(argo.chat_url, json={"model": "gpt4o", "messages": []}, timeout=5)
        assert no_user.status_code == 422


def test_chat_round_trip_through_fake_argo():
    body = {"model": "argo:gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream_options": {}}
    with FakeArgo() as argo:
        argo.reply = "Grüße"
        upstream = chat_request_to_argo(body, model_id="gpt4o", user=USER)
        reply = requests.post(argo.chat_url, json=upstream, timeout=5)
        out = chat_response_to_openai(parse_argo_json(reply.content), model=body["model"], prompt_tokens=tokens.count_request_tokens(body))
        sent = argo.requests_to(CHAT_PATH)[0]
    assert out["choices"][0]["message"]["content"] == "Grüße"
    assert sent.json == {"user": USER, "model": "gpt4o", "messages": [{"role": "user", "content": "hi"}]}
    assert sent.headers["content-type"] == "application/json"


def test_fake_argo_unregistered_user_and_canned_errors():
    with FakeArgo() as argo:
        argo.registered_users = {"bob"}
        reply = requests.post(argo.chat_url, json={"user": USER, "model": "gpt4o", "messages": []}, timeout=5)
        assert reply.status_code == 200
        with pytest.raises(ProxyError) as caught:
            parse_argo_json(reply.content)
        assert caught.value.status == 403
        argo.registered_users = None
        argo.respond_with(200, "<html>not json</html>", content_type="text/html")
        with pytest.raises(ProxyError) as caught:
            parse_argo_json(requests.post(argo.chat_url, json={"user": USER}, timeout=5).content)
        assert caught.value.status == 502
        argo.respond_with(503, {"detail": "maintenance"}, path=CHAT_PATH)
        assert requests.get(argo.models_url, timeout=5).status_code == 200  # the canned answer waits for its path
        failed = requests.post(argo.chat_url, json={"user": USER}, timeout=5)
        assert error_from_argo(failed.status_code, failed.content).status == 503
        assert requests.get(argo.chat_url, timeout=5).json() == {"detail": "Method Not Allowed"}
        assert requests.post(argo.base_url + "/api/v1/resource/chat", json={"user": USER}, timeout=5).status_code == 404


def test_outputs_validate_as_openai_sdk_types():
    from openai.types import Completion, CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

    ChatCompletion.model_validate(chat_response_to_openai({"response": "hi"}, model="m", prompt_tokens=1))
    calls = [{"id": None, "name": "f", "args": {}}]
    tool = ChatCompletion.model_validate(
        chat_response_to_openai({"response": {"content": None, "tool_calls": calls}}, model="m", prompt_tokens=1)
    )
    assert tool.choices[0].message.tool_calls[0].function.name == "f"
    Completion.model_validate(completion_response_to_openai({"response": "hi"}, model="m", prompt_tokens=1))
    CreateEmbeddingResponse.model_validate(embeddings_to_openai([{"embedding": [[0.1, 0.2]]}], request={"input": "a"}, model="m"))
