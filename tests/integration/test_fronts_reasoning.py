"""Reasoning across doors, through the real app under Gunicorn with the official SDKs as clients: whatever
reasoning the upstream returns (`reasoning_content` as DeepSeek and older vLLM send it, `reasoning` as vLLM 0.10+
and OpenRouter do, or `<think>` text in the answer as llama.cpp's server does) reaches each door's client in its
API's own shape when the client asks for it (Messages thinking blocks with a signature, Responses reasoning items
with their summary, Google thought parts, chat's reasoning_content), whole and streamed, with the reasoning tokens
in the door's usage; and THINK_MODE decides alike on every door (docs/think-tags.md has the table)."""

from __future__ import annotations

import json

import pytest
import requests
from google.genai import types

from tests.clients import anthropic_sdk, google_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.proxy_process import running_proxy

REASONING = "The user wants a greeting, so I will greet them."
ANSWER = "Hello there!"
SOURCES = ("reasoning_content", "reasoning", "think")
USAGE = {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25}
REPORTED = 12  # the reasoning tokens an upstream that counts them reports (DeepSeek's API does; vLLM does not)
MSG = [{"role": "user", "content": "Say hello"}]
THOUGHTS = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))


def usage(source: str) -> dict:
    """The upstream's usage: with reasoning_tokens where the source's servers report them."""
    if source == "reasoning_content":
        return {**USAGE, "completion_tokens_details": {"reasoning_tokens": REPORTED}}
    return dict(USAGE)


def reply(source: str) -> Reply:
    message = {"role": "assistant", "content": f"<think>{REASONING}</think>{ANSWER}" if source == "think" else ANSWER}
    if source != "think":
        message[source] = REASONING
    return Reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": usage(source),
                  "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})


def stream(source: str) -> Stream:
    """The reasoning and the answer in pieces (a <think> tag cut in two, as a tokenizer may send it)."""
    if source == "think":
        text = f"<think>{REASONING}</think>{ANSWER}"
        deltas = [{"content": text[:4]}, {"content": text[4:20]}, {"content": text[20:]}]
    else:
        deltas = [{source: REASONING[:10]}, {source: REASONING[10:]}, {"content": ANSWER[:5]}, {"content": ANSWER[5:]}]
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    return Stream(events + [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                            {**base, "choices": [], "usage": usage(source)}, "[DONE]"])


def answer(source: str, streamed: bool) -> Reply | Stream:
    return stream(source) if streamed else reply(source)


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url) as p:  # THINK_MODE=strip, the default
        yield p


def counted(tokens: int | None, source: str) -> bool:
    """The reasoning tokens a door reports: the upstream's, or counted from the text (about 11) where it has none."""
    return tokens == REPORTED if source == "reasoning_content" else tokens is not None and 5 <= tokens <= 20


# ------------------------------------------------------------------ chat: reasoning_content

@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("source", SOURCES)
def test_chat_gives_reasoning_content(fake, proxy, source, streamed):
    fake.add(answer(source, streamed))
    client = openai_sdk(proxy)
    if streamed:
        chunks = list(client.chat.completions.create(model="m", messages=MSG, stream=True))
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        text = "".join(d.content or "" for d in deltas)
        reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    else:
        message = client.chat.completions.create(model="m", messages=MSG).choices[0].message
        text, reasoning = message.content, getattr(message, "reasoning_content", None) or ""
    assert text == ANSWER
    # <think> text under strip: a chat client has no way to ask for reasoning, so it is left out
    assert reasoning == ("" if source == "think" else REASONING)


# ------------------------------------------------------------------ Messages: thinking blocks

@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("source", SOURCES)
def test_messages_gives_signed_thinking_blocks(fake, proxy, source, streamed):
    fake.add(answer(source, streamed))
    client = anthropic_sdk(proxy)
    asked = {"model": "m", "max_tokens": 1000, "messages": MSG, "thinking": {"type": "enabled", "budget_tokens": 512}}
    if streamed:
        with client.messages.stream(**asked) as s:
            events = list(s)
            message = s.get_final_message()
        block = [getattr(getattr(e, "delta", None), "type", e.type) for e in events
                 if e.type.startswith("content_block") and e.index == 0]
        # thinking deltas, then the signature last, just before the block's stop
        signed = block.index("signature_delta")
        assert block[0] == "content_block_start" and set(block[1:signed]) == {"thinking_delta"}
        assert block[signed + 1:] == ["content_block_stop"]
    else:
        message = client.messages.create(**asked)
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking, text = message.content
    assert thinking.thinking == REASONING and text.text == ANSWER
    assert thinking.signature  # opaque, and the same for the same text whole or streamed
    assert counted(message.usage.output_tokens_details.thinking_tokens, source)
    assert message.usage.output_tokens == USAGE["completion_tokens"]
    # The next turn sends the thinking block back, as Claude Code does: taken, and not passed to a chat upstream.
    fake.add(reply("reasoning_content"))
    history = MSG + [{"role": "assistant", "content": [b.model_dump() for b in message.content]},
                     {"role": "user", "content": "And again?"}]
    client.messages.create(model="m", max_tokens=100, messages=history)
    sent = fake.received[-1].json()
    assert REASONING not in json.dumps(sent) and sent["messages"][1] == {"role": "assistant", "content": ANSWER}


@pytest.mark.parametrize("streamed", [False, True])
def test_messages_usage_always_says_its_thinking_tokens(fake, proxy, streamed):
    """usage.output_tokens_details is always there, as Anthropic's API has it: the upstream's reasoning_tokens
    (0 counted is 0), null where nothing counts them; in message_start (null: nothing counted yet) and
    message_delta too."""
    client = anthropic_sdk(proxy)
    for details, expected in (({"completion_tokens_details": {"reasoning_tokens": 0}}, {"thinking_tokens": 0}),
                              ({}, None)):
        body = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": {**USAGE, **details},
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}]}
        if not streamed:
            fake.add(Reply(body))
            usages = [client.messages.create(model="m", max_tokens=100, messages=MSG).usage]
        else:
            base = {k: body[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
            fake.add(Stream([{**base, "choices": [{"index": 0, "delta": {"content": ANSWER}, "finish_reason": None}]},
                             {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                             {**base, "choices": [], "usage": body["usage"]}, "[DONE]"]))
            with client.messages.stream(model="m", max_tokens=100, messages=MSG) as s:
                events = list(s)
            usages = [e.message.usage for e in events if e.type == "message_start"]
            usages += [e.usage for e in events if e.type == "message_delta"]
            assert usages[0].output_tokens_details is None and "output_tokens_details" in usages[0].model_fields_set
            usages = usages[1:]
        assert len(usages) == 1 and "output_tokens_details" in usages[0].model_fields_set, usages
        got = usages[0].output_tokens_details
        assert (got and got.model_dump()) == expected, (details, got)


def test_messages_leaves_thinking_out_unless_asked(fake, proxy):
    for source in SOURCES:
        fake.add(reply(source))
        message = anthropic_sdk(proxy).messages.create(model="m", max_tokens=100, messages=MSG)
        assert [(b.type, b.text) for b in message.content] == [("text", ANSWER)], source


# ------------------------------------------------------------------ Responses: reasoning items

@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("source", SOURCES)
def test_responses_gives_the_reasoning_as_its_summary(fake, proxy, source, streamed):
    fake.add(answer(source, streamed))
    client = openai_sdk(proxy)
    asked = {"model": "m", "input": "Say hello", "reasoning": {"effort": "low", "summary": "auto"}}
    if streamed:
        with client.responses.stream(**asked) as s:
            types_seen = [e.type for e in s]
            response = s.get_final_response()
        summary = [t for t in types_seen if "reasoning" in t]
        assert len(summary) >= 5  # the summary in two deltas at least
        assert summary == ["response.reasoning_summary_part.added"] + ["response.reasoning_summary_text.delta"] * (
            len(summary) - 3) + ["response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]
    else:
        response = client.responses.create(**asked)
    item = response.output[0]
    assert item.type == "reasoning" and [(s.type, s.text) for s in item.summary] == [("summary_text", REASONING)]
    assert response.output_text == ANSWER and response.reasoning.summary == "auto"
    assert counted(response.usage.output_tokens_details.reasoning_tokens, source)


@pytest.mark.parametrize("streamed", [False, True])
def test_responses_gives_reasoning_text_without_a_summary(fake, proxy, streamed):
    """No reasoning.summary: the upstream's reasoning is the item's reasoning_text content, as the open
    Responses specification gives it; <think> text is stripped (THINK_MODE=strip, and the client did not ask)."""
    client = openai_sdk(proxy)
    for source in SOURCES:
        fake.add(answer(source, streamed))
        if streamed:
            with client.responses.stream(model="m", input="Say hello") as s:
                types_seen = [e.type for e in s]
                response = s.get_final_response()
            assert ("response.reasoning_text.delta" in types_seen) is (source != "think")
        else:
            response = client.responses.create(model="m", input="Say hello")
        items = [(i.type, [c.text for c in i.content or ()], i.summary if i.type == "reasoning" else None)
                 for i in response.output]
        assert items[:-1] == ([] if source == "think" else [("reasoning", [REASONING], [])]), source
        assert response.output_text == ANSWER


# ------------------------------------------------------------------ Google: thought parts

@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("source", SOURCES)
def test_google_gives_thought_parts(fake, proxy, source, streamed):
    fake.add(answer(source, streamed))
    client = google_sdk(proxy)
    if streamed:
        chunks = list(client.models.generate_content_stream(model="m", contents="Say hello", config=THOUGHTS))
    else:
        chunks = [client.models.generate_content(model="m", contents="Say hello", config=THOUGHTS)]
    parts = [p for c in chunks for p in (c.candidates[0].content.parts or ())]
    assert "".join(p.text for p in parts if p.thought) == REASONING
    assert "".join(p.text for p in parts if not p.thought) == ANSWER
    meta = chunks[-1].usage_metadata
    assert counted(meta.thoughts_token_count, source)
    assert meta.candidates_token_count == USAGE["completion_tokens"] - meta.thoughts_token_count


def test_google_leaves_thoughts_out_unless_asked(fake, proxy):
    client = google_sdk(proxy)  # kept: collected, it closes its HTTP client
    for source in SOURCES:
        fake.add(reply(source))
        r = client.models.generate_content(model="m", contents="Say hello")
        assert [(p.thought, p.text) for p in r.candidates[0].content.parts] == [(None, ANSWER)], source


# ------------------------------------------------------------------ THINK_MODE, alike on every door

def door_answers(p, fake) -> dict[str, tuple[str, str]]:
    """(reasoning, text) each door's client gets for `<think>` text, asking for reasoning where its API can."""
    got = {}
    fake.add(reply("think"))
    message = openai_sdk(p).chat.completions.create(model="m", messages=MSG).choices[0].message
    got["chat"] = (getattr(message, "reasoning_content", None) or "", message.content)
    fake.add(reply("think"))
    m = anthropic_sdk(p).messages.create(model="m", max_tokens=100, messages=MSG, thinking={"type": "adaptive"})
    got["messages"] = ("".join(b.thinking for b in m.content if b.type == "thinking"),
                       "".join(b.text for b in m.content if b.type == "text"))
    fake.add(reply("think"))
    r = openai_sdk(p).responses.create(model="m", input="x", reasoning={"summary": "auto"})
    got["responses"] = ("".join(s.text for i in r.output if i.type == "reasoning" for s in i.summary), r.output_text)
    fake.add(reply("think"))
    google = google_sdk(p)  # kept: collected, it closes its HTTP client
    g = google.models.generate_content(model="m", contents="x", config=THOUGHTS)
    parts = g.candidates[0].content.parts
    got["google"] = ("".join(x.text for x in parts if x.thought), "".join(x.text for x in parts if not x.thought))
    fake.add(reply("think"))
    o = requests.post(p.url + "/api/chat", json={"model": "m", "messages": MSG, "stream": False, "think": True},
                      timeout=30).json()["message"]
    got["ollama"] = (o.get("thinking") or "", o["content"])
    return got


@pytest.mark.parametrize("mode", ["strip", "reasoning", "keep"])
def test_think_mode_decides_alike_on_every_door(fake, proxy, mode):
    if mode == "strip":
        got = door_answers(proxy, fake)
    else:
        with running_proxy(TARGET_BASE_URL=fake.base_url, THINK_MODE=mode) as p:
            got = door_answers(p, fake)
    kept = (f"<think>{REASONING}</think>{ANSWER}" if mode == "keep" else ANSWER)
    for door, (reasoning, text) in got.items():
        assert text == kept, door
        # strip: only to a client that asked (chat cannot ask); reasoning: to all; keep: left in the text
        given = mode == "reasoning" or (mode == "strip" and door != "chat")
        assert reasoning == (REASONING if given else ""), door


# ------------------------------------------------------------------ ARGO's answers

@pytest.fixture(scope="module")
def argo_served():
    """(FakeArgo, proxy on the ARGO backend): one proxy for the streamed and whole cases, as only the client's
    request differs."""
    from tests.fakes.fake_argo import FakeArgo
    from tests.integration.test_argo import argo_env
    with FakeArgo() as argo, running_proxy(**argo_env(argo, REAL_STREAM="false")) as p:
        yield argo, p


@pytest.mark.parametrize("streamed", [False, True])
def test_argo_claude_thinking_blocks_reach_the_doors(argo_served, streamed):
    """ARGO's chat API answers a Claude model with its content blocks: a `thinking` block there is reasoning on
    every door (it was left out with the text and tool readers). Streamed clients get it through a pseudo stream
    (ARGO's streamchat sends text only)."""
    argo, p = argo_served
    argo.reset()
    argo.reply = {"content": [{"type": "thinking", "thinking": REASONING, "signature": "ErUBCkYIBx"},
                              {"type": "text", "text": ANSWER}]}
    model = "argo:claude-sonnet-4"
    asked = {"model": model, "max_tokens": 100, "messages": MSG, "thinking": {"type": "adaptive"}}
    client = anthropic_sdk(p)
    if streamed:
        with client.messages.stream(**asked) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**asked)
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in message.content] == [
        ("thinking", REASONING), ("text", ANSWER)]
    assert message.content[0].signature != "ErUBCkYIBx"  # the proxy's own: ARGO's was for ARGO
    assert message.usage.output_tokens_details.thinking_tokens > 0
    google = google_sdk(p)
    if streamed:
        chunks = list(google.models.generate_content_stream(model=model, contents="Say hello", config=THOUGHTS))
    else:
        chunks = [google.models.generate_content(model=model, contents="Say hello", config=THOUGHTS)]
    parts = [x for c in chunks for x in (c.candidates[0].content.parts or ())]
    assert "".join(x.text for x in parts if x.thought) == REASONING
    assert "".join(x.text for x in parts if not x.thought) == ANSWER
