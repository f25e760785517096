"""What a request reserves of a token limit: the most its upstream may spend on it, read as that upstream reads
the request, field by field (docs/reservations.md has the tables): every output-length field a backend kind
honours (the largest where they conflict), times every answer asked for, its input as count_tokens counts it;
where no field bounds an answer, the model's own limit or context, else the default the proxy then sends."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts import FRONTS
from argoproxy.edge.model_readers import reader_for
from argoproxy.fronts.front import DoorArgs
from argoproxy.meter.worst import (ARGO, DASHSCOPE, DEFAULT_ANSWER_TOKENS, OPENAI, Asked, batch_worst,
                                            reservation, shape_of, supplied, worst_case)
from argoproxy.meter.tokens import count_text

TEXT = "the quick brown fox jumps over the lazy dog " * 40
IMAGE = "iVBORw0KGgo" * 100_000  # about a megabyte of base64
MSG = [{"role": "user", "content": TEXT}]
PROMPT = count_text(TEXT)
TEMPLATE = 40  # the chat template's few tokens around a prompt, at most


def chat(**fields) -> dict:
    return {"model": "m", "messages": MSG, **fields}


def output(shape: str, body, reading=OPENAI, bounds=None) -> int:
    return worst_case(shape, body, reading, bounds).output


class Known:
    """Bounds the proxy knows: a model's own limit (capabilities) or its context (the model list)."""

    def __init__(self, limit=None, context=None):
        self.limit, self.ctx = limit, context

    def supplied_limit(self, model):
        return self.limit

    def context(self, model):
        return self.ctx


def door(name: str, body: dict, **args) -> Asked:
    front = FRONTS[name]
    return Asked(lambda: ("chat", front.to_chat(body, False, DoorArgs(**args) if args else None)[0]))


# ---------------------------------------------------------------- chat: each field, each conflict
@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens", "n_predict"])
def test_each_output_limit_an_openai_compatible_server_honours(field):
    worst = worst_case("chat", chat(**{field: 700}))
    assert worst.output == 700 and PROMPT <= worst.input < PROMPT + TEMPLATE
    assert f"{field}=700" in worst.why


@pytest.mark.parametrize("other", ["max_completion_tokens", "n_predict"])
def test_where_limits_conflict_the_largest_counts(other):
    """vLLM reads max_completion_tokens and llama.cpp n_predict before max_tokens: max_tokens 1 reserved 1."""
    assert output("chat", chat(max_tokens=1, **{other: 1000})) == 1000
    assert output("chat", chat(max_tokens=1000, **{other: 1})) == 1000


@pytest.mark.parametrize("fields,answers", [({"n": 100}, 100), ({"n": 128}, 128), ({"best_of": 5}, 5),
                                            ({"n": 2, "best_of": 5}, 5), ({"n": 1}, 1)])
def test_every_answer_asked_for_is_reserved(fields, answers):
    worst = worst_case("chat", chat(max_tokens=10, **fields))
    assert worst.output == 10 * answers
    if answers > 1:
        assert f"{answers:,} answers" in worst.why


@pytest.mark.parametrize("value", [True, "1000", -5, 0, 1.5, None, [9]])
def test_what_no_server_reads_as_a_count_bounds_nothing(value):
    assert output("chat", chat(max_tokens=value)) == DEFAULT_ANSWER_TOKENS
    assert output("chat", chat(max_tokens=10, n=value)) == 10


def test_a_whole_float_is_read_as_its_count():
    assert output("chat", chat(max_tokens=300.0, n=2.0)) == 600


def test_a_huge_ask_stays_a_bounded_number():
    assert worst_case("chat", chat(max_tokens=10**30, n=10**30)).tokens == 2**40


# ---------------------------------------------------------------- no field: the model's own bound, or the default
def test_no_field_reserves_the_default_and_the_proxy_sends_it():
    worst = worst_case("chat", chat())
    assert worst.output == DEFAULT_ANSWER_TOKENS and worst.supply == (("max_tokens",), DEFAULT_ANSWER_TOKENS)
    body = chat()
    assert supplied(body, worst.supply) and body["max_tokens"] == DEFAULT_ANSWER_TOKENS


def test_no_field_reserves_the_limit_the_proxy_sends_for_the_model():
    worst = worst_case("chat", chat(), bounds=Known(limit=16384))
    assert worst.output == 16384 and worst.supply is None  # capability adaptation sends it


def test_no_field_reserves_the_models_context_less_its_input():
    worst = worst_case("chat", chat(n=3), bounds=Known(context=32768))
    assert worst.output == 3 * (32768 - worst.input) and worst.supply is None
    assert "context of 32,768" in worst.why


@pytest.mark.parametrize("n_predict", [-1, -2, -1.0])
def test_a_negative_n_predict_is_no_limit_and_takes_the_limit_sent(n_predict):
    """llama.cpp's server reads n_predict before max_tokens, and below 0 it generates until its context ends:
    max_tokens 1 beside n_predict -1 reserved 1 and sent the -1 on (60 at once spent 60x a budget)."""
    worst = worst_case("chat", chat(max_tokens=1, n_predict=n_predict))
    assert worst.output == DEFAULT_ANSWER_TOKENS and worst.supply == (("max_tokens",), DEFAULT_ANSWER_TOKENS)
    assert "(n_predict below 0 is no limit: the proxy sends n_predict)" in worst.why
    body = chat(max_tokens=1, n_predict=n_predict)
    assert supplied(body, worst.supply) == ("n_predict",)
    assert body["n_predict"] == DEFAULT_ANSWER_TOKENS and body["max_tokens"] == 1  # vLLM still reads its 1
    alone = chat(n_predict=n_predict)
    assert supplied(alone, worst_case("chat", alone).supply) == ("max_tokens", "n_predict")
    assert alone["max_tokens"] == alone["n_predict"] == DEFAULT_ANSWER_TOKENS


def test_beside_a_negative_n_predict_a_larger_field_or_the_models_bound_counts():
    larger = chat(max_tokens=9000, n_predict=-1, n=2)
    worst = worst_case("chat", larger)
    assert worst.output == 18000 and worst.supply == (("max_tokens",), 9000)
    assert supplied(larger, worst.supply) == ("n_predict",) and larger["n_predict"] == 9000
    worst = worst_case("chat", chat(n_predict=-1), bounds=Known(context=32768))
    assert worst.output == 32768 - worst.input and worst.supply == (("max_tokens",), worst.output)
    assert "no limit: the model's context of 32,768" in worst.why
    prompts = {"model": "m", "prompt": ["one", "two"], "max_tokens": 5, "n_predict": -1}
    assert output("completions", prompts) == 2 * DEFAULT_ANSWER_TOKENS
    assert output("chat", chat(max_tokens=10, n_predict=-1), DASHSCOPE) == 10  # DashScope sends no n_predict


# ---------------------------------------------------------------- completions and embeddings
def test_each_prompt_of_a_completions_request_is_answered_apart():
    body = {"model": "m", "prompt": ["one two"] * 100, "max_tokens": 10}
    worst = worst_case("completions", body)
    assert worst.output == 1000 and worst.input == 100 * count_text("one two") and "100 prompts" in worst.why
    assert output("completions", {**body, "n": 3}) == 3000


def test_token_id_prompts_count_by_their_length():
    assert worst_case("completions", {"prompt": [1, 2, 3, 4], "max_tokens": 5}) .input == 4
    worst = worst_case("completions", {"prompt": [[1, 2], [3, 4, 5]], "max_tokens": 5})
    assert worst.input == 5 and worst.output == 10


def test_argo_and_dashscope_read_their_own_fields():
    """ARGO merges a list of prompts into one and refuses n; DashScope sends neither n nor n_predict."""
    body = {"model": "m", "prompt": ["one two"] * 100, "max_tokens": 10, "n_predict": 5000}
    assert output("completions", body, ARGO) == 10
    assert output("chat", chat(max_tokens=10, n=100, n_predict=5000), DASHSCOPE) == 10
    assert output("chat", chat(max_tokens=10, max_completion_tokens=900), ARGO) == 900


@pytest.mark.parametrize("value,tokens", [(TEXT, PROMPT), ([TEXT, TEXT], 2 * PROMPT), ([5, 6, 7], 3),
                                          ([[5, 6], [7]], 3)])
def test_embeddings_reserve_their_inputs_and_no_answer(value, tokens):
    worst = worst_case("embeddings", {"model": "e", "input": value, "max_tokens": 99})
    assert (worst.input, worst.output) == (tokens, 0)


# ---------------------------------------------------------------- APIs relayed or forwarded as they are
def spelled(door: str, path: str | None = None):
    """How a door says its own body is read: relayed (`spelled`), or sent to a path (`spelled_paths`)."""
    front = FRONTS[door]
    return front.spelled if path is None else reader_for(front.spelled_paths, path)


def test_responses_relayed_reserve_max_output_tokens():
    body = {"model": "m", "input": TEXT, "max_output_tokens": 800, "max_tokens": 1}
    worst = worst_case(spelled("responses"), body)
    assert worst.output == 800 and worst.input == PROMPT
    assert worst_case(spelled("responses"), {"model": "m", "input": "hi"}).supply == (("max_output_tokens",),
                                                                                     DEFAULT_ANSWER_TOKENS)
    assert spelled("responses", "v1/responses") is spelled("responses")  # a batch's lines


def test_messages_relayed_reserve_max_tokens_and_their_images_not_as_text():
    """The image's base64 is not text: it counts as an image (the meter's rule; a header it cannot read, of a
    model of no known family: METER_IMAGE_TOKENS), never as the megabyte of characters it is written in."""
    body = {"model": "m", "max_tokens": 700, "messages": [{"role": "user", "content": [
        {"type": "text", "text": TEXT}, {"type": "image", "source": {"type": "base64", "data": IMAGE}}]}]}
    worst = worst_case(spelled("messages"), body)
    assert worst.output == 700 and worst.input == PROMPT + 4096 and worst.media == "1 image"


@pytest.mark.parametrize("path", ["api/chat", "api/generate"])
def test_ollama_forwarded_num_predict_and_what_a_negative_one_means(path):
    ollama = spelled("ollama", path)
    body = {"model": "m", "messages": MSG, "options": {"num_predict": 900}, "max_tokens": 1}
    assert worst_case(ollama, body).output == 900
    for unbounded in ({}, {"num_predict": -1}, {"num_predict": 0}, {"num_predict": -2}):
        worst = worst_case(ollama, {"model": "m", "prompt": TEXT, "options": unbounded})
        assert worst.output == DEFAULT_ANSWER_TOKENS and worst.input == PROMPT
        assert worst.supply == (("options", "num_predict"), DEFAULT_ANSWER_TOKENS)
    # Ollama's context does not bound it (it shifts the context and goes on): the model list's is not read
    assert worst_case(ollama, {"model": "m", "prompt": "hi"}, bounds=Known(context=100)).output == \
        DEFAULT_ANSWER_TOKENS


def test_ollama_forwarded_embeddings_reserve_their_inputs():
    assert worst_case(spelled("ollama", "api/embed"), {"model": "e", "input": [TEXT, TEXT]}).input == 2 * PROMPT
    assert worst_case(spelled("ollama", "api/embeddings"), {"model": "e", "prompt": TEXT}).output == 0


def test_a_forwarded_body_of_no_known_shape_is_counted_by_its_strings():
    worst = worst_case("forwarded", {"anything": [TEXT], "n": 2, "max_tokens": 50})
    assert worst.input == PROMPT and worst.output == 100
    assert worst_case("forwarded", {"anything": TEXT}).output == DEFAULT_ANSWER_TOKENS
    assert worst_case("forwarded", b"not json").output == DEFAULT_ANSWER_TOKENS


def test_a_batch_reserves_every_request_in_it():
    lines = [("/v1/chat/completions", chat(max_tokens=10, n=2))] * 30 + [("/v1/embeddings", {"input": TEXT})]
    worst = batch_worst((shape_of(url), body) for url, body in lines)
    assert worst.output == 600 and worst.input >= 31 * PROMPT
    assert worst_case("batch", [(spelled("messages"), {"max_tokens": 7, "messages": MSG})] * 3).output == 21


@pytest.mark.parametrize("path,shape", [("v1/chat/completions", "chat"), ("/v1/completions", "completions"),
                                        ("completion", "completions"), ("infill", "completions"),
                                        ("openai/deployments/gpt/chat/completions", "chat"),
                                        ("v1/embeddings", "embeddings"), ("v1/images/generations", "forwarded"),
                                        ("v1/files", "read"), ("/v1/uploads", "read"), ("v1/uploads/u1/parts", "read"),
                                        ("v1/batches/b1/cancel", "read"), ("api/blobs/sha256:ab", "read"),
                                        ("v1/filesystem", "forwarded"), ("v1/batches", "forwarded"),
                                        ("v1/responses/r1/cancel", "read"), ("v1/threads/t/runs/r/cancel", "read"),
                                        ("v1/chat/completions/cancel", "forwarded"), ("v1/Files", "forwarded"),
                                        ("V1/UPLOADS", "forwarded"), ("v1/messages/cancel", "forwarded"),
                                        ("v1/batches/b1/CANCEL", "forwarded"), ("v1//files", "forwarded"),
                                        ("openai/files", "read"), ("openai/batches/b/cancel", "read")])
def test_the_shape_a_path_says(path, shape):
    assert shape_of(path) == shape


def test_what_the_proxy_sends_goes_where_the_api_reads_it():
    body = {"options": {"temperature": 0.1}}
    assert supplied(body, (("options", "num_predict"), 4096)) and body["options"]["num_predict"] == 4096
    limited = {"max_tokens": 10}
    assert not supplied(limited, (("max_tokens",), 4096)) and limited["max_tokens"] == 10
    absent = {}
    assert supplied(absent, (("options", "num_predict"), 4096)) and absent == {"options": {"num_predict": 4096}}


def test_the_refusal_says_why():
    said = worst_case("chat", chat(max_tokens=10, n=100)).described()
    assert said.startswith("it may use up to") and "100 answers (n=100) of up to 10 tokens (max_tokens=10)" in said


# ---------------------------------------------------------------- an API door's request: as the door makes it
def test_a_chat_request_reserves_its_prompt_and_its_max_tokens():
    asked = reservation(chat(max_tokens=100))
    assert PROMPT + 100 <= asked < PROMPT + 100 + TEMPLATE


@pytest.mark.parametrize("config", [{"generationConfig": {"maxOutputTokens": 9000}},
                                    {"generation_config": {"max_output_tokens": 9000}},
                                    {"generationConfig": {"max_output_tokens": 9000.0}}])
def test_gemini_answer_limit_in_every_spelling_the_door_takes(config):
    body = {"contents": [{"role": "user", "parts": [{"text": TEXT}]}], **config}
    assert reservation(door("google", body, model="m")) >= PROMPT + 9000


def test_members_a_door_ignores_do_not_lower_its_reservation():
    """A stray max_tokens or chat-shaped key beside Gemini's contents (the door sends contents and its own
    limit upstream) reserved 1 token plus the stray's text."""
    body = {"contents": [{"role": "user", "parts": [{"text": TEXT}]}], "max_tokens": 1, "input": "",
            "generationConfig": {"maxOutputTokens": 9000}}
    assert reservation(door("google", body, model="m")) >= PROMPT + 9000
    ollama = {"model": "m", "messages": MSG, "max_tokens": 1, "options": {"num_predict": 9000}}
    assert reservation(door("ollama", ollama)) >= PROMPT + 9000


def test_an_image_is_not_counted_as_text():
    body = {"contents": [{"role": "user", "parts": [{"text": "what is this?"}, {"inlineData": {
        "mimeType": "image/png", "data": IMAGE}}]}], "generationConfig": {"maxOutputTokens": 100}}
    assert reservation(door("google", body, model="m")) < 4096 + 200  # one image (no family: 4,096), not its text


def test_ollama_door_without_a_limit_reserves_the_default_it_sends():
    for unlimited in (-1, 0):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": unlimited}}
        asked = door("ollama", body)
        assert DEFAULT_ANSWER_TOKENS <= reservation(asked) < DEFAULT_ANSWER_TOKENS + TEMPLATE
        assert asked.supply == (("max_tokens",), DEFAULT_ANSWER_TOKENS)


def test_a_body_the_door_refuses_raises_its_error():
    with pytest.raises(ProxyError) as refused:
        reservation(door("google", {"contents": "nope"}, model="m"))
    assert refused.value.status == 400


def test_a_request_is_read_once_and_only_when_asked():
    reads = []
    asked = Asked(lambda: reads.append(1) or ("chat", chat(max_tokens=5)))
    assert asked.supply is None and asked.read_worst is None and not reads
    assert asked.worst() is asked.worst() and reads == [1]


# ---------------------------------------------------------------- the models' contexts, from the model list
def test_contexts_are_read_from_the_list_once_then_again_after_a_while():
    from argoproxy.pipeline.model_context import CONTEXT_SECONDS, FAILED_SECONDS, ModelContexts
    now = [0.0]
    lists = [[{"id": "v", "max_model_len": 32768}, {"id": "l", "meta": {"n_ctx": 8192, "n_ctx_train": 131072}},
              {"id": "o", "context_length": 200000}, {"id": "none"}, "junk"]]
    asked = []

    def listing():
        asked.append(1)
        if not lists:
            raise OSError("the upstream is away")
        return lists.pop(0)
    contexts = ModelContexts(listing, clock=lambda: now[0])
    assert (contexts("v"), contexts("l"), contexts("o"), contexts("none"), contexts(None)) == (32768, 8192, 200000,
                                                                                              None, None)
    assert len(asked) == 1
    now[0] += CONTEXT_SECONDS
    assert contexts("v") == 32768 and len(asked) == 2  # the list could not be read: what it said last stands
    contexts("v")
    assert len(asked) == 2  # not asked again at once
    now[0] += FAILED_SECONDS
    contexts("v")
    assert len(asked) == 3
