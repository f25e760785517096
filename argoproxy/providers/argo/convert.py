"""OpenAI <-> ARGO translation of whole requests and responses: chat, legacy completions, embeddings.

Requests: only the fields ARGO takes are forwarded (the original forwarded everything, including
`stream_options`, `n` and the proxy's own `timeout` field), then `normalize.normalize_chat` applies the
per-family rules. Responses: ARGO's `{"response": ...}` becomes an OpenAI object with an OpenAI-style
id, the model name the client asked for (not ARGO's internal id), and usage counted offline
(`tokens`, cl100k for every model). Embedding requests are split into ARGO's 16-prompt batches and
the answers joined back with sequential indexes.

ARGO failures that arrive as 200 responses are turned into ProxyErrors here: a body without
`response` (502) and the "AUTHENTICATION NOTICE FROM ARGO" text an unregistered username gets (403).
"""

from __future__ import annotations

import base64
import json
import math
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from argoproxy.meter import count_text, count_texts, count_tool_calls, token_encoding, usage_block
from argoproxy.providers.argo.models import EMBEDDING_DIMENSIONS
from argoproxy.providers.argo.normalize import normalize_chat
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import loads

# Fields of an OpenAI request that ARGO's chat routes understand; everything else is dropped.
# `tools`/`tool_choice` go through as given: a tools transform must already have put them in the
# provider's native shape (reference section 5.3).
CHAT_FIELDS = (
    "messages", "system", "prompt", "temperature", "top_p", "max_tokens", "max_completion_tokens",
    "stop", "tools", "tool_choice",
)
COMPLETION_FIELDS = ("prompt", "system", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop")

MAX_EMBED_BATCH = 16  # ARGO's limit of prompts per embed request
AUTH_NOTICE = "AUTHENTICATION NOTICE FROM ARGO"
AUTH_ERROR_MESSAGE = (
    "ARGO authentication error: the username sent to ARGO is not registered with ARGO. "
    "Set `user` in the proxy configuration to your registered ANL username (with username "
    "passthrough on, send it as the API key; a person's or key's own: `--argo-user`)."
)


# ---------------------------------------------------------------------------------------- ids


def new_chat_id() -> str:
    """A fresh chat completion id, 'chatcmpl-<32 hex>'."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def new_completion_id() -> str:
    """A fresh legacy completion id, 'cmpl-<32 hex>'."""
    return f"cmpl-{uuid.uuid4().hex}"


def new_tool_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


# ------------------------------------------------------------------------------------ requests


def chat_request_to_argo(
    body: Mapping[str, Any], *, model_id: str, user: str, stream: bool = False
) -> dict[str, Any]:
    """The ARGO chat JSON for an OpenAI chat request (messages style; `system`/`prompt` also accepted).

    `stream` selects /streamchat/: the body then says `"stream": true`, as argo-proxy's did.
    """
    _require_single_choice(body)
    messages = body.get("messages")
    if messages is not None and not (isinstance(messages, list) and all(isinstance(m, Mapping) for m in messages)):
        raise ProxyError(400, "'messages' must be a list of message objects.", param="messages")
    if not messages and body.get("prompt") in (None, "", []):
        raise ProxyError(400, "'messages' must be a non-empty list.", param="messages")
    data = _pick(body, CHAT_FIELDS)
    if stream:
        data["stream"] = True
    return normalize_chat(data, model_id=model_id, user=user, upstream_stream=stream)


def completion_request_to_argo(
    body: Mapping[str, Any], *, model_id: str, user: str, stream: bool = False
) -> dict[str, Any]:
    """The ARGO chat JSON (prompt style) for an OpenAI legacy completions request.

    A list of prompts is merged into one prompt (ARGO answers once); token-id prompts are decoded
    with cl100k. echo/logprobs/suffix/best_of are not supported by ARGO and are dropped.
    """
    _require_single_choice(body)
    if "prompt" not in body or body["prompt"] is None:
        raise ProxyError(400, "'prompt' is required.", param="prompt")
    data = _pick(body, COMPLETION_FIELDS)
    data["prompt"] = text_inputs(body["prompt"], param="prompt", allow_empty=True)
    if stream:
        data["stream"] = True
    return normalize_chat(data, model_id=model_id, user=user, upstream_stream=stream)


def _pick(body: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {key: body[key] for key in fields if body.get(key) is not None}


def _require_single_choice(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise ProxyError(400, "ARGO returns exactly one choice; 'n' must be 1.", param="n")


def text_inputs(value: Any, *, param: str, allow_empty: bool = False) -> list[str]:
    """OpenAI's `input`/`prompt` forms as a list of strings.

    Accepts a string, a list of strings, one list of token ids, or a list of token-id lists. Token ids
    are decoded with cl100k, the vocabulary of ARGO's OpenAI embedding models.
    """
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or (not value and not allow_empty):
        raise ProxyError(400, f"'{param}' must be a string or a non-empty list.", param=param)
    if all(isinstance(item, str) for item in value):
        return list(value)
    if all(_is_token_id(item) for item in value):
        return [_decode_tokens(value, param)]
    if all(isinstance(item, list) and item and all(_is_token_id(t) for t in item) for item in value):
        return [_decode_tokens(item, param) for item in value]
    raise ProxyError(
        400,
        f"'{param}' must be a string, a list of strings, a list of token ids or a list of token-id lists.",
        param=param,
    )


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_tokens(ids: list[int], param: str) -> str:
    try:
        return token_encoding().decode(ids)
    except (KeyError, ValueError, OverflowError) as exc:
        raise ProxyError(400, f"'{param}' holds token ids that are not in the cl100k vocabulary.", param=param) from exc


# ----------------------------------------------------------------------------- ARGO responses


def check_auth_notice(text: str) -> None:
    """Raise ProxyError(403) when ARGO's answer is its notice for an unregistered username."""
    if AUTH_NOTICE.lower() in text.lower():
        raise ProxyError(403, AUTH_ERROR_MESSAGE, code="argo_auth_error")


def parse_argo_json(raw: bytes | str) -> Any:
    """Parse a raw ARGO response body; the auth notice gives 403 and non-JSON gives 502."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    check_auth_notice(text)
    try:
        return loads(text)
    except ValueError:
        raise ProxyError(
            502, f"ARGO returned a body that is not JSON: {text[:200]!r}", code="upstream_invalid_json"
        ) from None


def error_from_argo(status: int, raw: bytes | str) -> ProxyError:
    """A ProxyError for a non-2xx ARGO answer, keeping ARGO's status and its message (`detail` or text)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    check_auth_notice(text)
    detail: Any = text
    try:
        parsed = loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        detail = parsed.get("detail") or parsed.get("error") or parsed.get("message") or parsed
    if not isinstance(detail, str):
        detail = json.dumps(detail)
    message = f"ARGO error {status}: {detail.strip()[:1000] or 'empty body'}"
    return ProxyError(status if status >= 400 else 502, message, code="upstream_error")


def response_payload(argo_body: Any) -> Any:
    """The `response` value of a parsed ARGO chat body; ProxyError(502) when there is none."""
    if not isinstance(argo_body, Mapping):
        raise ProxyError(
            502,
            f"ARGO returned an unexpected body: expected a JSON object with 'response', got {type(argo_body).__name__}.",
            code="upstream_invalid_response",
        )
    response = argo_body.get("response")
    if response is None:
        raise ProxyError(
            502,
            "ARGO returned no response (the body has no 'response'). Try different request parameters.",
            code="upstream_no_response",
        )
    return response


def text_and_tool_calls(response: Any) -> tuple[str, list[dict[str, Any]] | None]:
    """The answer text and OpenAI-shaped tool calls of an ARGO `response` value.

    A string is plain text. An object `{"content", "tool_calls"}` is a tool answer whose calls come in
    the provider's shape (OpenAI, Anthropic `tool_use`, Gemini `args`); Anthropic content may also be a
    list of `text`/`tool_use` blocks.
    """
    if isinstance(response, str):
        return response, None
    if not isinstance(response, Mapping):
        raise ProxyError(502, "ARGO's 'response' is neither text nor an object.", code="upstream_invalid_response")
    text, block_calls = _content_blocks(response.get("content"))
    raw_calls = response.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ProxyError(502, "ARGO's 'tool_calls' is not a list.", code="upstream_invalid_response")
    calls = [_openai_tool_call(call) for call in [*block_calls, *raw_calls]]
    return text, calls or None


def reasoning_text(response: Any) -> str:
    """The reasoning in ARGO's `response` object: a `reasoning_content` or `reasoning` string, or the `thinking`
    blocks of a Claude answer's content (which the text and tool readers leave out); "" for a text answer, whose
    <think> text is the think transform's."""
    if isinstance(response, Mapping) and isinstance(response.get("response"), Mapping):
        response = response["response"]  # argo-proxy saw Claude answers wrapped once more
    if not isinstance(response, Mapping):
        return ""
    for key in ("reasoning_content", "reasoning"):
        if isinstance(response.get(key), str) and response[key]:
            return str(response[key])
    content = response.get("content")
    if not isinstance(content, list):
        return ""
    return "".join(block["thinking"] for block in content if isinstance(block, Mapping)
                   and block.get("type") == "thinking" and isinstance(block.get("thinking"), str))


def _content_blocks(content: Any) -> tuple[str, list[Any]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if isinstance(content, list):
        texts, calls = [], []
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "tool_use":
                calls.append(block)
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif isinstance(block, str):
                texts.append(block)
        return "".join(texts), calls
    return str(content), []


def _openai_tool_call(call: Any) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise ProxyError(502, "ARGO returned a tool call that is not an object.", code="upstream_invalid_response")
    if isinstance(call.get("function"), Mapping):  # OpenAI shape
        name, arguments = call["function"].get("name"), call["function"].get("arguments")
    elif "input" in call:  # Anthropic tool_use
        name, arguments = call.get("name"), call.get("input")
    else:  # Gemini: {"id": null, "name", "args"}
        name, arguments = call.get("name"), call.get("args")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    return {
        "id": call.get("id") or new_tool_call_id(),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


ToolDecoder = Callable[[Any], tuple[str | None, list[dict[str, Any]] | None]]


def chat_response_to_openai(
    argo_body: Any,
    *,
    model: str,
    prompt_tokens: int,
    completion_id: str | None = None,
    created: int | None = None,
    decode_tools: ToolDecoder | None = None,
) -> dict[str, Any]:
    """An OpenAI `chat.completion` for a parsed ARGO chat body; `model` is the name the client sent.

    `decode_tools(response) -> (text, tool_calls)` splits ARGO's `response` value; the default,
    `text_and_tool_calls`, reads native tool answers only. Pass e.g.
    `lambda r: tools.decode_tool_calls(r, family, prompt_tools)` for prompt-based `<tool_call>` tags.
    finish_reason is "tool_calls" when there are tool calls and "stop" otherwise (ARGO does not say
    when it hit max_tokens, so "length" is never reported).
    """
    payload = response_payload(argo_body)
    text, tool_calls = (decode_tools or text_and_tool_calls)(payload)
    text = text or ""
    check_auth_notice(text)
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
        message["content"] = text or None  # OpenAI sends null content beside tool calls
    reasoning = reasoning_text(payload)
    if reasoning:
        message["reasoning_content"] = reasoning
    completion_tokens = count_text(text) + count_tool_calls(tool_calls) + count_text(reasoning)
    return {
        "id": completion_id or new_chat_id(),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": usage_block(prompt_tokens, completion_tokens),
    }


def completion_response_to_openai(
    argo_body: Any,
    *,
    model: str,
    prompt_tokens: int,
    completion_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """An OpenAI `text_completion` for a parsed ARGO chat body; `model` is the name the client sent."""
    text, _ = text_and_tool_calls(response_payload(argo_body))
    check_auth_notice(text)
    return {
        "id": completion_id or new_completion_id(),
        "object": "text_completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": usage_block(prompt_tokens, count_text(text)),
    }


# --------------------------------------------------------------------------------- embeddings


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    """The texts to embed: OpenAI `input`, or ARGO's own `prompt` field when `input` is absent."""
    if body.get("input") is not None:
        return text_inputs(body["input"], param="input")
    if body.get("prompt") is not None:
        return text_inputs(body["prompt"], param="prompt")
    raise ProxyError(400, "'input' is required.", param="input")


def batches(items: Sequence[str], size: int = MAX_EMBED_BATCH) -> Iterator[list[str]]:
    """`items` in consecutive lists of at most `size`."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def embedding_request_to_argo(
    body: Mapping[str, Any], *, model_id: str, user: str, batch_size: int = MAX_EMBED_BATCH
) -> list[dict[str, Any]]:
    """The ARGO embed requests for an OpenAI embeddings request, in order, each with at most 16 prompts.

    `encoding_format` and `dimensions` are validated here and applied by `embeddings_to_openai`.
    """
    _embedding_options(body, model_id)
    return [
        {"user": user, "model": model_id, "prompt": batch}
        for batch in batches(embedding_inputs(body), batch_size)
    ]


def _embedding_options(body: Mapping[str, Any], model_id: str | None) -> tuple[str, int | None]:
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise ProxyError(400, "'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is None:
        return encoding_format, None
    if not _is_token_id(dimensions) or dimensions < 1:
        raise ProxyError(400, "'dimensions' must be a positive integer.", param="dimensions")
    if model_id == "ada002":
        raise ProxyError(400, "text-embedding-ada-002 does not support 'dimensions'.", param="dimensions")
    native = EMBEDDING_DIMENSIONS.get(model_id or "")
    if native and dimensions > native:
        raise ProxyError(400, f"'dimensions' must be at most {native} for this model.", param="dimensions")
    return encoding_format, dimensions


def embeddings_to_openai(
    argo_bodies: Sequence[Any],
    *,
    request: Mapping[str, Any],
    model: str,
    batch_size: int = MAX_EMBED_BATCH,
) -> dict[str, Any]:
    """The OpenAI embedding list for the ARGO answers to `embedding_request_to_argo(request)`, in order.

    Indexes run 0..n-1 across batches. `dimensions` shortens each vector and re-normalises it to unit
    length (OpenAI's method for text-embedding-3); `encoding_format: base64` packs little-endian float32.
    """
    inputs = embedding_inputs(request)
    encoding_format, dimensions = _embedding_options(request, None)
    expected = [len(batch) for batch in batches(inputs, batch_size)]
    if len(argo_bodies) != len(expected):
        raise ProxyError(502, f"Expected {len(expected)} ARGO embed answers, got {len(argo_bodies)}.", code="upstream_invalid_response")
    vectors: list[list[float]] = []
    for body, count in zip(argo_bodies, expected):
        vectors.extend(_argo_vectors(body, count))
    data = [
        {"object": "embedding", "index": index, "embedding": _encode_vector(vector, encoding_format, dimensions)}
        for index, vector in enumerate(vectors)
    ]
    prompt_tokens = count_texts(inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _argo_vectors(body: Any, count: int) -> list[list[float]]:
    if isinstance(body, Mapping) and "embedding" not in body and isinstance(body.get("response"), str):
        check_auth_notice(body["response"])
    vectors = body.get("embedding") if isinstance(body, Mapping) else None
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        raise ProxyError(502, "ARGO returned no 'embedding' list.", code="upstream_no_response")
    if len(vectors) != count:
        raise ProxyError(
            502, f"ARGO returned {len(vectors)} embeddings for {count} inputs.", code="upstream_invalid_response"
        )
    return vectors


def _encode_vector(vector: list[float], encoding_format: str, dimensions: int | None) -> list[float] | str:
    if dimensions is not None and dimensions < len(vector):
        vector = vector[:dimensions]
        norm = math.sqrt(sum(x * x for x in vector))
        if norm:
            vector = [x / norm for x in vector]
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
