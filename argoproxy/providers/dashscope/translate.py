"""DashScope native protocol <-> OpenAI objects (pure translation, no HTTP).

Owns: the native endpoint paths, request encoding (OpenAI chat / embeddings request ->
DashScope ``{"model", "input", "parameters"}``), response decoding (DashScope result ->
``chat.completion`` / embeddings list), the SSE stream decoder (DashScope events ->
``chat.completion.chunk`` dicts) and the mapping of DashScope's flat errors
``{"code", "message", "request_id"}`` to the product's OpenAI error envelope (ProxyError).

DashScope stream facts this module relies on: frames are ``id:N`` / ``event:result`` /
``:HTTP_STATUS/200`` / ``data:{...}`` with no space after the colon and no ``[DONE]``;
``finish_reason`` is the *string* ``"null"`` until the last event; ``usage`` is cumulative on
every event; with ``incremental_output=false`` every event repeats the whole text so far.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import loads

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1/"
TEXT_GENERATION_PATH = "services/aigc/text-generation/generation"
EMBEDDINGS_PATH = "services/embeddings/text-embedding/text-embedding"

# OpenAI model names a client written for OpenAI sends, and the Qwen model DashScope serves in their place
# (seed 004's example: "gpt-4" -> "qwen-max"). Any other name is sent as it is; LLM_PARAMS renames override.
OPENAI_MODEL_NAMES = {"gpt-4": "qwen-max", "gpt-4-turbo": "qwen-max", "gpt-4o": "qwen-max",
                      "gpt-4o-mini": "qwen-plus", "gpt-3.5-turbo": "qwen-turbo"}


def native_model(model: str) -> str:
    return OPENAI_MODEL_NAMES.get(model, model)


# OpenAI request fields that never go into "parameters": they are moved (model, messages),
# expressed differently (stream -> header + incremental_output) or unsupported here (n).
_CHAT_NOT_PARAMETERS = {"model", "messages", "stream", "stream_options", "n"}
_EMBEDDING_NOT_PARAMETERS = {"model", "input", "dimensions", "encoding_format", "user"}

# DashScope error code -> HTTP status, used when the upstream status is not already an
# error status (e.g. an error object inside a 200 body or a stream frame without status).
ERROR_STATUS = {
    "InvalidApiKey": 401,
    "InvalidParameter": 400,
    "BadRequest": 400,
    "InvalidURL": 404,
    "DataInspectionFailed": 400,
    "data_inspection_failed": 400,
    "Arrearage": 403,
    "AccessDenied": 403,
    "Model.AccessDenied": 403,
    "ModelNotFound": 404,
    "ModelNotExist": 404,
    "NotFound": 404,
    "Throttling": 429,
    "RequestTimeOut": 504,
    "InternalError": 500,
    "InternalServerError": 500,
    "SystemError": 500,
    "ServiceUnavailable": 503,
}


def request_headers(api_key: str, stream: bool) -> dict[str, str]:
    """Headers for a native DashScope call (SSE is switched on by header, not by body)."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    if stream:
        headers["X-DashScope-SSE"] = "enable"
        headers["Accept"] = "text/event-stream"
    return headers


# --------------------------------------------------------------------------- requests


def encode_chat(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """OpenAI chat request -> DashScope text-generation request body (an OpenAI model name -> its Qwen model)."""
    parameters: dict[str, Any] = {"result_format": "message", "incremental_output": stream}
    for key, value in body.items():
        if key not in _CHAT_NOT_PARAMETERS:
            parameters[key] = value
    # OpenAI's newer name for the output budget; DashScope only knows max_tokens.
    if "max_completion_tokens" in parameters:
        budget = parameters.pop("max_completion_tokens")
        parameters.setdefault("max_tokens", budget)
    # DashScope's switch for Qwen's reasoning is enable_thinking: an effort turns it on, "none" off. DashScope
    # refuses it on for a call that does not stream (there the model's default stays).
    if "reasoning_effort" in parameters:
        effort = parameters.pop("reasoning_effort")
        on = effort != "none"
        if isinstance(effort, str) and (stream or not on):
            parameters.setdefault("enable_thinking", on)
    # DashScope rejects top_p == 1 (range is (0, 1)); one-api clamps it the same way.
    if isinstance(parameters.get("top_p"), (int, float)) and parameters["top_p"] >= 1:
        parameters["top_p"] = 0.9999
    model = body.get("model")
    return {"model": native_model(model) if isinstance(model, str) else model,
            "input": {"messages": body.get("messages") or []}, "parameters": parameters}


def encode_embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI embeddings request -> DashScope text-embedding request body."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        # Token-id inputs (list[int] / list[list[int]]) have no DashScope equivalent.
        raise ProxyError(400, "input must be a string or a non-empty list of strings for this model", param="input")
    parameters = {k: v for k, v in body.items() if k not in _EMBEDDING_NOT_PARAMETERS}
    if body.get("dimensions") is not None:
        parameters["dimension"] = body["dimensions"]
    return {"model": body.get("model"), "input": {"texts": texts}, "parameters": parameters}


# --------------------------------------------------------------------------- responses


def _finish_reason(value: Any) -> str | None:
    return None if value in (None, "", "null") else value


def _text_of(content: Any) -> Any:
    # Multimodal models answer content as [{"text": ...}, ...]; OpenAI clients want a string.
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = usage.get("input_tokens", usage.get("prompt_tokens", 0)) or 0
    completion = usage.get("output_tokens", usage.get("completion_tokens", 0)) or 0
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        result["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        result["prompt_tokens_details"] = {"cached_tokens": cached}
    return result


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": call.get("type") or "function",
            "function": {
                "name": (call.get("function") or {}).get("name"),
                "arguments": (call.get("function") or {}).get("arguments") or "",
            },
        }
        for call in calls or []
    ]


def _message(raw: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": raw.get("role") or "assistant", "content": _text_of(raw.get("content"))}
    if raw.get("reasoning_content"):
        message["reasoning_content"] = raw["reasoning_content"]
    if raw.get("tool_calls"):
        message["tool_calls"] = _tool_calls(raw["tool_calls"])
        if not message["content"]:
            message["content"] = None  # DashScope sends "" beside tool calls; OpenAI sends null
    return message


def _choices(output: dict[str, Any]) -> list[dict[str, Any]]:
    if "choices" in output:  # result_format=message
        return [
            {
                "index": i,
                "message": _message(choice.get("message") or {}),
                "logprobs": choice.get("logprobs"),
                "finish_reason": _finish_reason(choice.get("finish_reason")),
            }
            for i, choice in enumerate(output["choices"] or [])
        ]
    # result_format=text: {"text": ..., "finish_reason": ...}
    return [
        {
            "index": 0,
            "message": {"role": "assistant", "content": output.get("text") or ""},
            "logprobs": None,
            "finish_reason": _finish_reason(output.get("finish_reason")),
        }
    ]


def completion_id(request_id: str | None) -> str:
    """OpenAI-style id that keeps DashScope's request_id visible (support needs it)."""
    return f"chatcmpl-{request_id or uuid.uuid4().hex}"


def decode_chat(obj: dict[str, Any], model: str) -> dict[str, Any]:
    """DashScope text-generation result -> OpenAI ``chat.completion`` (raises ProxyError on an error body)."""
    if "output" not in obj and obj.get("code"):
        raise error_from(200, obj)
    result: dict[str, Any] = {
        "id": completion_id(obj.get("request_id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": _choices(obj.get("output") or {}),
        "request_id": obj.get("request_id"),
    }
    usage = _usage(obj.get("usage"))
    if usage is not None:
        result["usage"] = usage
    return result


def _float32_base64(vector: list[float]) -> str:
    # Same encoding OpenAI uses for encoding_format=base64: little-endian float32.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def decode_embeddings(obj: dict[str, Any], model: str, encoding_format: str | None = None) -> dict[str, Any]:
    """DashScope text-embedding result -> OpenAI embeddings list.

    ``encoding_format="base64"`` matters: the openai SDK asks for base64 by default and decodes it.
    """
    if "output" not in obj and obj.get("code"):
        raise error_from(200, obj)
    items = sorted((obj.get("output") or {}).get("embeddings") or [], key=lambda e: e.get("text_index", 0))
    data = []
    for position, item in enumerate(items):
        vector = item.get("embedding") or []
        data.append(
            {
                "object": "embedding",
                "index": item.get("text_index", position),
                "embedding": _float32_base64(vector) if encoding_format == "base64" else vector,
            }
        )
    tokens = ((obj.get("usage") or {}).get("total_tokens")) or 0
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# --------------------------------------------------------------------------- errors


def _status_for_code(code: str) -> int | None:
    if code in ERROR_STATUS:
        return ERROR_STATUS[code]
    # Dotted sub-codes (Throttling.RateQuota, InternalError.Algo, ...) share their family's status.
    family = code.split(".", 1)[0]
    return ERROR_STATUS.get(family)


def error_from(status: int, obj: dict[str, Any]) -> ProxyError:
    """DashScope flat error (or an OpenAI envelope, from compatible mode) -> ProxyError.

    The upstream status is kept when it is already 4xx/5xx; otherwise the code decides (502 if unknown).
    """
    envelope = obj.get("error") if isinstance(obj.get("error"), dict) else None
    source = envelope or obj
    code = source.get("code")
    code = None if code is None else str(code)
    message = str(source.get("message") or code or "DashScope request failed")
    request_id = obj.get("request_id")
    if request_id:
        message = f"{message} (request_id: {request_id})"
    if 400 <= status <= 599:
        final = status
    else:
        final = (_status_for_code(code) if code else None) or 502
    return ProxyError(final, message, code=code, param=source.get("param") if envelope else None)


# --------------------------------------------------------------------------- streams


def iter_sse_events(lines: Iterable[bytes | str]) -> Iterator[tuple[str, int, str]]:
    """Group raw SSE lines into ``(event, http_status, data)``; lenient about spaces and ``\\r``."""
    data: list[str] = []
    event, status = "", 200
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield event or "result", status, "\n".join(data)
            event, status, data = "", 200, []
            continue
        if line.startswith(":"):
            # DashScope's status travels in an SSE comment: ":HTTP_STATUS/200".
            comment = line[1:].strip()
            if comment.startswith("HTTP_STATUS/"):
                code = comment.split("/", 1)[1].strip()
                status = int(code) if code.isdigit() else status
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:  # a stream cut before its final blank line still delivers the last event
        yield event or "result", status, "\n".join(data)


class _ChoiceState:
    """How much has been emitted so far for one choice (to diff cumulative events): lengths only, the text
    itself is never kept (it grew by += per event: a whole stream held, and copied per event)."""

    def __init__(self) -> None:
        self.started = False
        self.content = 0
        self.reasoning = 0
        self.tool_args: dict[int, int] = {}
        self.tool_started: set[int] = set()
        self.finished = False


def _suffix(sent: int, current: str, incremental: bool) -> str:
    if incremental:
        return current
    # Cumulative: each event repeats the whole text so far. Text that rewrote its past cannot
    # be un-sent, so in every case only what lies beyond the length already sent is new.
    return current[sent:]


class ChatStreamDecoder:
    """DashScope SSE lines -> OpenAI ``chat.completion.chunk`` dicts.

    ``incremental`` must match the ``incremental_output`` that was sent (encode_chat sends
    ``True`` for streams): it cannot be inferred reliably from the events themselves.
    ``include_usage`` adds OpenAI's final ``"choices": []`` usage chunk (and ``"usage": null``
    on the other chunks), as OpenAI does for ``stream_options.include_usage``.
    Raises ProxyError on an ``event:error`` frame or an error status.
    """

    def __init__(self, model: str, *, incremental: bool = True, include_usage: bool = False) -> None:
        self.model = model
        self.incremental = incremental
        self.include_usage = include_usage
        self.created = int(time.time())
        self.id: str | None = None
        self.usage: dict[str, Any] | None = None
        self._choices: dict[int, _ChoiceState] = {}

    def decode(self, lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
        """Yield chunks as events arrive; the usage chunk (if asked) after the last event."""
        for event, status, data in iter_sse_events(lines):
            obj = _parse_event_data(data, status)
            if event == "error" or status >= 400 or ("output" not in obj and obj.get("code")):
                raise error_from(status, obj)
            yield from self._chunks_for(obj)
        if not any(state.finished for state in self._choices.values()):
            # the body ended (well framed) before the event with the finish reason: an answer cut short, which
            # read as whole would end on every door as if complete
            raise ProxyError(502, "The upstream server closed the stream before the answer was complete.",
                             code="upstream_stream_incomplete")
        if self.include_usage:
            yield {**self._base(), "choices": [], "usage": self.usage}

    __call__ = decode

    def _base(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.id or completion_id(None),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        if self.include_usage:
            base["usage"] = None
        return base

    def _chunks_for(self, obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if self.id is None:
            self.id = completion_id(obj.get("request_id"))
        self.usage = _usage(obj.get("usage")) or self.usage  # cumulative: the last one is the total
        output = obj.get("output") or {}
        if "choices" in output:
            raws = [(i, c.get("message") or {}, c.get("finish_reason")) for i, c in enumerate(output["choices"] or [])]
        else:
            raws = [(0, {"content": output.get("text") or ""}, output.get("finish_reason"))]
        for index, message, finish in raws:
            chunk = self._choice_chunk(index, message, _finish_reason(finish))
            if chunk is not None:
                yield chunk

    def _choice_chunk(self, index: int, message: dict[str, Any], finish: str | None) -> dict[str, Any] | None:
        state = self._choices.setdefault(index, _ChoiceState())
        if state.finished:
            return None
        delta: dict[str, Any] = {}
        if not state.started:
            delta["role"] = "assistant"
        reasoning = _suffix(state.reasoning, message.get("reasoning_content") or "", self.incremental)
        if reasoning:
            delta["reasoning_content"] = reasoning
            state.reasoning += len(reasoning)
        content = _suffix(state.content, _text_of(message.get("content")) or "", self.incremental)
        if content or not state.started:
            delta["content"] = content  # OpenAI's first delta is {"role": "assistant", "content": ""}
            state.content += len(content)
        tool_calls = self._tool_deltas(state, message.get("tool_calls") or [])
        if tool_calls:
            delta["tool_calls"] = tool_calls
        state.started = True
        state.finished = finish is not None
        if len(delta) == 0 and finish is None:
            return None  # an event that added nothing (e.g. cumulative repeat)
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._base(), "choices": [choice]}

    def _tool_deltas(self, state: _ChoiceState, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        deltas = []
        for position, call in enumerate(calls):
            index = call.get("index", position)
            function = call.get("function") or {}
            previous = state.tool_args.get(index, 0)
            arguments = _suffix(previous, function.get("arguments") or "", self.incremental)
            state.tool_args[index] = previous + len(arguments)
            fragment: dict[str, Any] = {"index": index}
            if index not in state.tool_started:
                # id/type/name only on the first fragment: the openai SDK concatenates
                # repeated string fields, so DashScope's repeats would corrupt them.
                state.tool_started.add(index)
                fragment["id"] = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
                fragment["type"] = call.get("type") or "function"
                fragment["function"] = {"name": function.get("name"), "arguments": arguments}
            elif arguments:
                fragment["function"] = {"arguments": arguments}
            else:
                continue
            deltas.append(fragment)
        return deltas


def _parse_event_data(data: str, status: int) -> dict[str, Any]:
    try:
        obj = loads(data)
    except ValueError:
        raise ProxyError(502, f"DashScope sent an unreadable stream event: {data[:200]}") from None
    if not isinstance(obj, dict):
        raise ProxyError(502, "DashScope sent a stream event that is not a JSON object")
    return obj


def decode_chat_stream(
    lines: Iterable[bytes | str], model: str, *, incremental: bool = True, include_usage: bool = False
) -> Iterator[dict[str, Any]]:
    """Functional form of ChatStreamDecoder."""
    return ChatStreamDecoder(model, incremental=incremental, include_usage=include_usage).decode(lines)
