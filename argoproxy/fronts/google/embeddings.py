"""embedContent and batchEmbedContents -> one embeddings request (their texts in order), and its answer back.
"""

from __future__ import annotations

from typing import Any

from argoproxy.fronts.front import Exchange, embedding_vectors
from argoproxy.fronts.google.answer import GoogleExchange
from argoproxy.fronts.google.fields import bad, integer, list_field, object_field, string_field
from argoproxy.fronts.google.request import part_objects


EMBED_METHODS = ("embed_content", "batch_embed_contents")  # answered from an embeddings request


def embed_request(body: dict[str, Any], model: str, batch: bool) -> dict[str, Any]:
    """embedContent (one Content) or batchEmbedContents (`requests`, each for the path's model) as one embeddings
    request: each Content's text parts joined. taskType and title are accepted and left out (an OpenAI embeddings
    server has no such setting); outputDimensionality becomes `dimensions` (one for the whole batch)."""
    if batch:
        requests = list_field(body, "requests", "")
        if not requests:
            raise bad("Field required: a non-empty list of requests.", "requests")
        places = [(f"requests[{i}]", r) for i, r in enumerate(requests)]
    else:
        places = [("", body)]
    texts: list[str] = []
    sizes: set[int] = set()
    for where, one in places:
        if not isinstance(one, dict):
            raise bad("must be an EmbedContentRequest object.", where)
        prefix = f"{where}." if where else ""
        named = string_field(one, "model", prefix)
        if named is not None and named.removeprefix("models/") != model:
            raise bad(f"must be the model of the path (models/{model}).", f"{prefix}model")
        string_field(one, "taskType", prefix)
        string_field(one, "title", prefix)
        size = integer(one, "outputDimensionality", prefix, minimum=1)
        if size is not None:
            sizes.add(size)
        texts.append(content_text(object_field(one, "content", prefix), f"{prefix}content"))
    if len(sizes) > 1:
        raise bad("must be the same for every request of a batch.", "requests[].outputDimensionality")
    out: dict[str, Any] = {"model": model, "input": texts}
    if sizes:
        out["dimensions"] = sizes.pop()
    return out


def content_text(content: dict[str, Any] | None, where: str) -> str:
    """The text of a Content to embed (its text parts, joined)."""
    if content is None:
        raise bad("Field required: a Content.", where)
    parts = list_field(content, "parts", f"{where}.")
    if not parts:
        raise bad("Field required: a non-empty list of parts.", f"{where}.parts")
    texts = []
    for at, part in part_objects(parts, where):
        text = string_field(part, "text", f"{at}.")
        if text is None:
            raise bad("only text parts can be embedded through an OpenAI embeddings backend.", at)
        texts.append(text)
    return "".join(texts)


def embeddings_answer(result: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """An embeddings list as embedContent's answer (`embedding`) or batchEmbedContents' (`embeddings`, in order)."""
    vectors = [{"values": v} for v in embedding_vectors(result, ex)]
    if isinstance(ex, GoogleExchange) and ex.method == "batch_embed_contents":
        return {"embeddings": vectors}
    return {"embedding": vectors[0] if vectors else {"values": []}}
