"""embedContent and batchEmbedContents as one embeddings request (argoproxy/fronts/google/embeddings.py)."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from tests.unit.fronts.google.test_request import FRONT


def test_embed_content_and_a_batch_as_one_embeddings_request():
    from argoproxy.fronts.google.door import GoogleArgs
    one, batch = GoogleArgs(model="e", method="embed_content"), GoogleArgs(model="e", method="batch_embed_contents")
    content = {"parts": [{"text": "Par"}, {"text": "is"}]}
    chat, ex = FRONT.to_chat({"content": content, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8}, False, one)
    assert chat == {"model": "e", "input": ["Paris"], "dimensions": 8} and (ex.kind, ex.path) == ("embeddings",
                                                                                               "v1/embeddings")
    result = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
              "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    assert FRONT.from_chat(result, ex) == {"embedding": {"values": [1.0]}}  # the first input's (index 0)
    chat, ex = FRONT.to_chat({"requests": [{"model": "models/e", "content": content}, {"content": {"parts": [
        {"text": "Rome"}]}}]}, False, batch)
    assert chat == {"model": "e", "input": ["Paris", "Rome"]}
    assert FRONT.from_chat(result, ex) == {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}
    for body, args, where in (
            ({"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}, one, "parts[0]"),
            ({}, one, "content"),
            ({"requests": []}, batch, "requests"),
            ({"requests": [{"model": "models/x", "content": content}]}, batch, "requests[0].model"),
            ({"requests": [{"content": content, "outputDimensionality": 2},
                           {"content": content, "outputDimensionality": 3}]}, batch, "outputDimensionality")):
        with pytest.raises(ProxyError) as info:
            FRONT.to_chat(body, False, args)
        assert info.value.status == 400 and where in info.value.message, (where, info.value.message)
    with pytest.raises(ProxyError) as info:
        FRONT.from_chat({"data": "nope"}, ex)
    assert info.value.status == 502
