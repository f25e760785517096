"""The vendored API documents (tests/specs/) and the validator the conformance tests hold the doors to."""

from __future__ import annotations

import json

import pytest

from tests.specs import HERE, NAMES, spec


@pytest.mark.parametrize("name", NAMES)
def test_each_document_loads_whole_with_its_licence_or_source_named(name):
    s = spec(name)
    assert s.doc["openapi"].startswith("3.") and s.doc["paths"] and s.doc["components"]["schemas"]
    assert f"`{name}.json`" in (HERE / "README.md").read_text()
    assert '"nullable"' not in (HERE / f"{name}.json").read_text()  # 3.0's spelling, made 2020-12's by build.py
    # every $ref resolves inside the trimmed document
    text = json.dumps(s.doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        section, kind, schema = ref.split("/")[:3]
        assert schema in s.doc[section][kind], ref


def test_a_message_lacking_the_documents_required_fields_is_caught_field_by_field():
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
               "stop_sequence": None, "content": [{"type": "text", "text": "Hi"}],
               "usage": {"input_tokens": 1, "output_tokens": 1}}
    found = spec("anthropic").problems("Message", message)
    assert "content/0: 'citations' is a required property" in found  # the text block's own shape, by its type
    assert "(top): 'stop_details' is a required property" in found
    message["content"][0]["citations"] = None
    message["content"][0]["text"] = 5
    assert "content/0/text: 5 is not of type 'string'" in spec("anthropic").problems("Message", message)


def test_nullable_fields_take_null_and_overlapping_unions_take_a_value_of_either_branch():
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None}]}
    assert spec("openai").problems("CreateChatCompletionStreamResponse", chunk) == []
    request = {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]}
    assert spec("openai").problems("CreateResponse", request) == []  # both EasyInputMessage and InputMessage
    request["input"][0]["role"] = "robot"
    assert spec("openai").problems("CreateResponse", request)
