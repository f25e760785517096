"""llama.cpp's own server (the C++ llama-server from the xllamacpp wheel) with SmolLM2-135M-Instruct as the
upstream, through the real app under Gunicorn, through each door with its own SDK: OpenAI chat (sync, streamed
with usage, curl), Responses, Anthropic Messages, Gemini and Ollama; a pseudo-model of LLM_PARAMS; and a grammar
that forces <think> output through THINK_MODE strip (the default) and reasoning. Kept cheap for CI: one server, one proxy,
prompts of a few dozen tokens, answers of at most 8. Greedy decoding (temperature 0), yet an answer is compared
with the direct one only where the server's prompt cache cannot change it (llama.cpp's greedy answer to a
prompt it has cached can differ from its first)."""

from __future__ import annotations

import json
import subprocess

import openai
import pytest
import requests

from tests.proxy_process import running_proxy
from tests.real.answers import header_values, shape, sse_events, stream_content

pytestmark = pytest.mark.timeout(300)

MODEL = "smollm2"
ASK = [{"role": "user", "content": "Name three colours."}]
GREEDY = {"temperature": 0, "max_tokens": 8}
PSEUDO = "model=smollm2-fast,upstream_model_name=smollm2,temperature=0"
# A GBNF grammar (llama-server takes one in the request) that makes the model answer as reasoning models do.
THINK_GRAMMAR = r'''
root ::= "<think>" thought "</think>" answer
thought ::= [a-z] [a-z ]{2,12}
answer ::= [A-Z] [a-z ]{2,12} "."
'''
# cache_prompt off: each answer is read from the whole prompt, so the direct and the proxied ones are the same
THINK = {"temperature": 0, "max_tokens": 24, "grammar": THINK_GRAMMAR, "cache_prompt": False}


@pytest.fixture(scope="module")
def proxy(llama):
    # No SELF_HOSTED: llama-server says what it is (/props), and the proxy prices it at nothing by that alone.
    with running_proxy(TARGET_BASE_URL=llama.base_url, LLM_PARAMS=PSEUDO) as p:
        yield p


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-unused", max_retries=0, timeout=120)


def post(base_url: str, body: dict, **headers: str) -> requests.Response:
    return requests.post(base_url + "/chat/completions", json=body, headers=headers, timeout=120,
                         stream=body.get("stream", False))


def test_chat_answer_has_the_servers_shape(llama, proxy):
    direct = sdk(llama.base_url).chat.completions.create(model=MODEL, messages=ASK, **GREEDY)
    through = sdk(proxy.base_url).chat.completions.create(model=MODEL, messages=ASK, **GREEDY)
    assert through.choices[0].message.content.strip() and through.usage.completion_tokens == 8
    a, b = direct.model_dump(exclude_unset=True), through.model_dump(exclude_unset=True)
    assert shape(b["choices"]) == shape(a["choices"]) and shape(b["usage"]) == shape(a["usage"])


def test_stream_relays_usage_and_one_value_per_header(proxy):
    body = {"model": MODEL, "messages": ASK, "stream": True, "stream_options": {"include_usage": True}, **GREEDY}
    r = post(proxy.base_url, body)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    for name in ("Content-Type", "Cache-Control", "X-Accel-Buffering", "X-Request-ID"):
        assert len(header_values(r, name)) == 1, (name, r.raw.headers)
    events = sse_events(r)
    assert stream_content(events) and events[-1] == "[DONE]"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 8


def test_curl_stream_same_as_the_sdks(proxy):
    body = json.dumps({"model": MODEL, "messages": ASK, "stream": True, **GREEDY})
    out = subprocess.run(["curl", "-sS", "-N", "--fail-with-body", proxy.base_url + "/chat/completions",
                          "-H", "Content-Type: application/json", "-d", body],
                         capture_output=True, timeout=120, check=True).stdout
    data = [line[5:].strip() for line in out.splitlines() if line.startswith(b"data:")]
    assert data[-1] == b"[DONE]" and stream_content([json.loads(e) for e in data[:-1]])


def test_model_retrieved_although_llama_has_no_route_for_it(llama, proxy):
    assert requests.get(llama.base_url + f"/models/{MODEL}", timeout=30).status_code == 404  # the premise
    assert sdk(proxy.base_url).models.retrieve(MODEL).id == MODEL


def test_responses_door_streams_to_incomplete_with_usage(proxy):
    events = list(sdk(proxy.base_url).responses.create(model=MODEL, input="Name three colours.",
                                                       max_output_tokens=8, temperature=0, stream=True))
    response = next(e.response for e in reversed(events) if e.type in ("response.completed", "response.incomplete"))
    assert response.output_text.strip() and response.usage.output_tokens > 0 and response.usage.input_tokens > 0


def test_messages_door_with_anthropics_sdk(proxy):
    import anthropic
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-unused", max_retries=0, timeout=120)
    with client.messages.stream(model=MODEL, max_tokens=8, extra_body={"temperature": 0}, messages=ASK) as stream:
        final = stream.get_final_message()
    assert final.content[0].text.strip() and final.usage.output_tokens > 0


def test_gemini_door_with_googles_sdk(proxy):
    from google import genai
    client = genai.Client(api_key="sk-unused", http_options={"base_url": proxy.url, "timeout": 120_000})
    answer = client.models.generate_content(model=MODEL, contents="Name three colours.",
                                            config={"max_output_tokens": 8, "temperature": 0})
    assert answer.text.strip() and answer.usage_metadata.candidates_token_count > 0


def test_ollama_door_with_ollamas_client(proxy):
    import ollama
    answer = ollama.Client(host=proxy.url, timeout=120).chat(model=MODEL, messages=ASK,
                                                             options={"num_predict": 8, "temperature": 0})
    assert answer.message.content.strip() and answer.eval_count > 0


def test_pseudo_model_listed_and_answering(proxy):
    assert {"smollm2-fast", MODEL} <= {m.id for m in sdk(proxy.base_url).models.list()}
    answer = sdk(proxy.base_url).chat.completions.create(model="smollm2-fast", messages=ASK, max_tokens=8)
    assert answer.choices[0].message.content.strip()


def test_think_block_stripped_or_given_as_reasoning(llama, proxy):
    """THINK_MODE strip (the default) sends the answer without the block; reasoning sends the block's text as
    reasoning_content, whole and streamed."""
    body = {"model": MODEL, "messages": ASK, **THINK}
    text = post(llama.base_url, body).json()["choices"][0]["message"]["content"]
    assert text.startswith("<think>") and "</think>" in text  # the premise: the grammar forced it
    thought, answer = text[len("<think>"):text.index("</think>")], text[text.index("</think>") + len("</think>"):]
    assert post(proxy.base_url, body).json()["choices"][0]["message"]["content"] == answer
    with running_proxy(TARGET_BASE_URL=llama.base_url, THINK_MODE="reasoning") as reasoning:
        message = post(reasoning.base_url, body).json()["choices"][0]["message"]
        events = sse_events(post(reasoning.base_url, {**body, "stream": True}))
    assert (message["reasoning_content"], message["content"]) == (thought, answer)
    assert (stream_content(events, "reasoning_content"), stream_content(events)) == (thought, answer)
