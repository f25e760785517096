"""The per-family ARGO normalisations (reference section 5.5), family by family."""

from __future__ import annotations

import copy

import pytest

from argoproxy.providers.argo.normalize import (
    CLAUDE_NON_STREAMING_MAX_TOKENS,
    CONTINUE_PLACEHOLDER,
    flatten_text_parts,
    join_unique,
    normalize_chat,
)

USER = "alice"


def norm(body, model_id, **kw):
    return normalize_chat(body, model_id=model_id, user=USER, **kw)


# ------------------------------------------------------------------------------- every family


@pytest.mark.parametrize("model_id", ["gpt4o", "gpto1preview", "claudesonnet4", "gemini25pro", "mystery"])
def test_user_and_model_are_forced(model_id):
    out = norm({"user": "mallory", "model": "argo:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, model_id)
    assert out["user"] == USER
    assert out["model"] == model_id


def test_input_is_not_modified():
    body = {
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]}],
        "system": ["a", "a"],
        "prompt": "x",
    }
    before = copy.deepcopy(body)
    norm(body, "gemini25pro")
    norm(body, "gpto1mini")
    assert body == before


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a\n\nb"]),
        (["a", "b", "a"], ["a\n\nb"]),  # deduplicated, order kept
        ([1, 2.5], ["1\n\n2.5"]),  # items stringified
        (["  padded  "], ["padded"]),
        (7, ["7"]),
    ],
)
def test_prompt_becomes_one_item_list(prompt, expected):
    assert norm({"prompt": prompt}, "gpt4o")["prompt"] == expected


@pytest.mark.parametrize(
    ("system", "expected"),
    [("be kind", "be kind"), (["x", "y", "x"], "x\n\ny"), (42, "42")],
)
def test_system_field_becomes_joined_string(system, expected):
    out = norm({"system": system, "prompt": ["q"]}, "gpt4o")
    assert out["system"] == expected


def test_null_system_and_prompt_are_dropped():
    out = norm({"messages": [{"role": "user", "content": "q"}], "system": None, "prompt": None}, "gpt4o")
    assert "system" not in out and "prompt" not in out


def test_developer_role_becomes_system_for_every_family():
    for model_id in ("gpt4o", "gpto3", "claudeopus4", "gemini25flash"):
        out = norm({"messages": [{"role": "developer", "content": "rules"}, {"role": "user", "content": "q"}]}, model_id)
        assert out["messages"][0]["role"] == "system"


# ------------------------------------------------------------------------------------- OpenAI


def test_openai_messages_pass_unchanged():
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image_url", "image_url": {"url": "data:x"}}]},
        {"role": "assistant", "content": "a"},
    ]
    out = norm({"messages": messages, "max_tokens": 50000}, "gpt4o")
    assert out["messages"] == messages  # content arrays are not flattened outside Gemini system messages
    assert out["max_tokens"] == 50000  # the Claude cap does not apply


def test_openai_gets_no_continue_placeholder():
    out = norm({"messages": [{"role": "system", "content": "only system"}]}, "gpt4o")
    assert out["messages"] == [{"role": "system", "content": "only system"}]


# --------------------------------------------------------------------------- o1-preview / o1-mini


@pytest.mark.parametrize("model_id", ["gpto1preview", "gpto1mini"])
def test_o1_system_messages_become_user(model_id):
    out = norm({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]}, model_id)
    assert out["messages"] == [{"role": "user", "content": "sys"}, {"role": "user", "content": "q"}]


@pytest.mark.parametrize("model_id", ["gpto1preview", "gpto1mini"])
def test_o1_system_field_is_merged_into_prompt(model_id):
    out = norm({"system": "sys", "prompt": ["q1", "q2"]}, model_id)
    assert "system" not in out
    assert out["prompt"] == ["sys\n\nq1\n\nq2"]


def test_o1_system_field_with_messages_becomes_leading_user_message():
    out = norm({"system": ["s1", "s2"], "messages": [{"role": "user", "content": "q"}]}, "gpto1preview")
    assert "system" not in out
    assert out["messages"] == [{"role": "user", "content": "s1\n\ns2"}, {"role": "user", "content": "q"}]


def test_o1_developer_message_also_becomes_user():
    out = norm({"messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": "q"}]}, "gpto1mini")
    assert [m["role"] for m in out["messages"]] == ["user", "user"]


def test_other_o_series_keep_system():
    out = norm({"system": "sys", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}, "gpto3")
    assert out["system"] == "sys"
    assert out["messages"][0]["role"] == "system"


# ------------------------------------------------------------------------------------- Claude


def test_claude_gets_continue_when_there_is_no_user_message():
    out = norm({"messages": [{"role": "system", "content": "sys"}, {"role": "assistant", "content": "a"}]}, "claudesonnet4")
    assert out["messages"][-1] == {"role": "user", "content": CONTINUE_PLACEHOLDER}
    assert len(out["messages"]) == 3


def test_claude_with_a_user_message_is_left_alone():
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    out = norm({"messages": messages}, "claudeopus4")
    assert out["messages"] == messages


def test_claude_prompt_style_counts_as_user_content():
    out = norm({"system": "sys", "prompt": "q"}, "claudesonnet37")
    assert "messages" not in out
    assert out["prompt"] == ["q"]


def test_claude_empty_prompt_gets_continue():
    out = norm({"system": "sys", "prompt": ""}, "claudesonnet37")
    assert out["prompt"] == [CONTINUE_PLACEHOLDER]


def test_claude_system_content_arrays_are_not_flattened():
    system = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    out = norm({"messages": [{"role": "system", "content": system}, {"role": "user", "content": "q"}]}, "claudesonnet4")
    assert out["messages"][0]["content"] == system


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_claude_non_streaming_max_tokens_is_capped(key):
    body = {"messages": [{"role": "user", "content": "q"}], key: 64000}
    assert norm(body, "claudeopus4")[key] == CLAUDE_NON_STREAMING_MAX_TOKENS
    assert norm(body, "claudeopus4", upstream_stream=True)[key] == 64000
    assert norm({**body, key: 1000}, "claudeopus4")[key] == 1000


# ------------------------------------------------------------------------------------- Gemini


def test_gemini_gets_continue_when_there_is_no_user_message():
    out = norm({"messages": [{"role": "system", "content": "sys"}]}, "gemini25pro")
    assert out["messages"][-1] == {"role": "user", "content": CONTINUE_PLACEHOLDER}


def test_gemini_with_no_messages_at_all_gets_continue():
    out = norm({"messages": []}, "gemini25flash")
    assert out["messages"] == [{"role": "user", "content": CONTINUE_PLACEHOLDER}]


def test_gemini_system_and_developer_arrays_are_flattened():
    system = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    user = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]
    out = norm(
        {"messages": [{"role": "system", "content": system}, {"role": "developer", "content": system}, {"role": "user", "content": user}]},
        "gemini25pro",
    )
    assert out["messages"][0] == {"role": "system", "content": "first\n\nsecond"}
    assert out["messages"][1] == {"role": "system", "content": "first\n\nsecond"}
    assert out["messages"][2]["content"] == user  # user arrays (images) stay arrays


def test_gemini_max_tokens_is_not_capped():
    out = norm({"messages": [{"role": "user", "content": "q"}], "max_tokens": 64000}, "gemini25pro")
    assert out["max_tokens"] == 64000


# -------------------------------------------------------------------------------------- helpers


def test_join_unique_and_flatten():
    assert join_unique(["a", "b", "a", "c"]) == "a\n\nb\n\nc"
    assert flatten_text_parts([{"type": "text", "text": "x"}, {"type": "image_url"}, "y"]) == "x\n\ny"
    assert flatten_text_parts("plain") == "plain"
