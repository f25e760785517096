"""The Anthropic Messages API front door (POST /v1/messages, /v1/messages/count_tokens): request -> chat
completions, and a chat.completion (or its chunks) -> a `message` object (or the Messages stream events).

Fields a chat upstream cannot use (cache_control, citations, server tools, context_management, anthropic-beta...)
are accepted and dropped, the shapes the API's document gives them checked first (messages_shapes.py). Thinking
blocks in the history are accepted and dropped: chat servers differ on taking reasoning back
(OpenAI's API refuses a message field it does not know, DeepSeek's reasoner a reasoning_content in its input).
Reasoning in answers becomes `thinking` blocks only when the
client asked for thinking, and is left out otherwise. A proxy cannot make Anthropic's signature, so each block
carries one of its own (`signature`): opaque to clients, as Anthropic's is, and the same for the same text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any, Iterable, Iterator, Mapping

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import (DoorArgs, DoorRoute, Exchange, Front, StreamState, bad_request, bearer, new_id,
                                    whole_answer)
from argoproxy.fronts.fields import boolean, checked, field, obj, string
from argoproxy.fronts.messages_shapes import (COUNT_REQUEST, DOCUMENT_BLOCK, DOCUMENT_SOURCES, REQUEST, SEARCH_RESULT,
                                             SEARCH_RESULT_REQUIRED, TOOL_CHOICE, TOOL_REFERENCE_NAME,
                                             cache_control, client_tool, dropped_block, server_tool, text_fields)
from argoproxy.fronts.model_entries import context_length
from argoproxy.pipeline.adapt import Shape
from argoproxy.pipeline.reservation import Spelled
from argoproxy.pipeline.answer_shape import bounded_loads

# HTTP status -> Anthropic error type (https://docs.claude.com/en/api/errors).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               502: "api_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
SIGNED_BY = b"cot-proxy/1:"  # what a thinking block's signature says, decoded: who made it, over what text
# The blocks' fields a chat upstream has nothing for, as Anthropic's API writes them when they do not apply: a
# text block cites nothing, a tool call is the model's own (not a server tool's code).
UNCITED = None
DIRECT = {"type": "direct"}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _bad(message: str, param: str) -> ProxyError:
    # Anthropic's errors have no `param`: the location goes into the message, as Anthropic words it.
    return bad_request(f"{param}: {message}", param)


# ---------------------------------------------------------------------------------------------- request

# The fields Anthropic's document types without null (it allows null for cache_control, container and
# inference_geo alone): a null one is refused as the API refuses it, not read as the field left out.
NOT_NULL = ("max_tokens", "messages", "metadata", "model", "output_config", "service_tier", "stop_sequences",
            "stream", "system", "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p")
NOT_NULL_IN_COUNT = ("messages", "model", "output_config", "system", "thinking", "tool_choice", "tools")


def refuse_nulls(body: dict[str, Any], count_only: bool) -> None:
    for key in NOT_NULL_IN_COUNT if count_only else NOT_NULL:
        if key in body and body[key] is None:
            raise _bad("must not be null (leave the field out instead).", key)


def request_to_chat(body: dict[str, Any], *, count_only: bool = False,
                    dropped: dict[str, None] | None = None) -> dict[str, Any]:
    """A Messages create (or count_tokens) request as a chat-completions request body (dropped: where the
    types of the tools left out are noted, in order)."""
    dropped = {} if dropped is None else dropped
    refuse_nulls(body, count_only)
    checked(body, COUNT_REQUEST if count_only else REQUEST, "", _bad)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("Field required: a model name.", "model")
    max_tokens = body.get("max_tokens")
    if not count_only and (type(max_tokens) is not int or max_tokens < 1):
        raise _bad("Field required: a positive integer." if max_tokens is None else "must be a positive integer.",
                   "max_tokens")
    cache_control(body, "", _bad)
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _bad("Field required: a non-empty list of messages.", "messages")
    messages: list[dict[str, Any]] = []
    system = system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(raw_messages):
        messages.extend(message_to_chat(message, f"messages.{i}"))
    chat: dict[str, Any] = {"model": model, "messages": messages}
    if not count_only:
        chat["max_tokens"] = max_tokens
    if body.get("tools") is not None:
        functions = tools_to_chat(body["tools"], dropped)
        if functions:
            chat["tools"] = functions
    choice = obj(body, "tool_choice", "tool_choice", _bad)
    if choice is not None:
        chat_choice, parallel = tool_choice_to_chat(choice)
        if isinstance(chat_choice, dict) and dropped and choice["name"] in _names(body["tools"], dropped):
            chat_choice = "auto"  # it names a server tool, left out with its kind
        if chat_choice is not None and chat.get("tools"):  # no tools (all dropped): nothing to choose from
            chat["tool_choice"] = chat_choice
        if parallel is not None and chat.get("tools"):
            chat["parallel_tool_calls"] = parallel
    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("must be a list of strings.", "stop_sequences")
        chat["stop"] = stops
    field(body, "top_k", "an integer", "top_k", _bad)  # temperature and top_p: the chat request's checks
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            chat[key] = body[key]
    user_id = string(obj(body, "metadata", "metadata", _bad) or {}, "user_id", "metadata.user_id", _bad)
    if user_id:
        chat["user"] = user_id
    response_format = output_format(body)
    if response_format is not None:
        chat["response_format"] = response_format
    thinking = obj(body, "thinking", "thinking", _bad)
    if thinking is not None:
        string(thinking, "type", "thinking.type", _bad, required=True)
    if boolean(body, "stream", "stream", _bad) and not count_only:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def output_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """output_config.format (a JSON schema the answer must follow) as the chat response_format."""
    config = obj(body, "output_config", "output_config", _bad) or {}
    fmt = obj(config, "format", "output_config.format", _bad)
    if fmt is None or string(fmt, "type", "output_config.format.type", _bad, required=True) != "json_schema":
        return None
    schema = obj(fmt, "schema", "output_config.format.schema", _bad, required=True)
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def thinking_requested(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def system_text(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, list):
        raise _bad("must be a string or a list of text blocks.", "system")
    texts = []
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad("system blocks must be text blocks.", f"system.{j}")
        text_fields(block, f"system.{j}", _bad)
        texts.append(string(block, "text", f"system.{j}.text", _bad, required=True))
    return "\n\n".join(t for t in texts if t)


def message_to_chat(message: Any, param: str) -> list[dict[str, Any]]:
    """One Messages turn as chat messages: a user turn with tool results becomes tool messages (first, as chat
    wants them right after the assistant's calls) and then a user message with whatever else it held."""
    if not isinstance(message, dict):
        raise _bad("each message must be an object.", param)
    role = message.get("role")
    if role not in ("user", "assistant", "system"):
        raise _bad("role must be user or assistant.", f"{param}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad("content must be a string or a list of blocks.", f"{param}.content")
    if role == "assistant":
        return [assistant_to_chat(content, param)]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"{param}.content.{j}"
        if isinstance(block, dict) and block.get("type") == "tool_result":
            cache_control(block, where, _bad)
            result, images = tool_result_to_chat(block, where)
            tools.append(result)
            parts.extend(images)
        elif isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking"):
            dropped_block(block, where, _bad)
        else:
            parts.extend(block_to_parts(block, where))
    out = tools
    if parts:
        text_only = all(p["type"] == "text" for p in parts)
        if role == "system" or (text_only and len(parts) == 1):
            out.append({"role": role, "content": "".join(p["text"] for p in parts) if text_only else parts})
        else:
            out.append({"role": role, "content": parts})
    return out


def assistant_to_chat(content: list[Any], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"{param}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_use":
            cache_control(block, where, _bad)
        if kind == "text":
            text_fields(block, where, _bad)
            texts.append(string(block, "text", f"{where}.text", _bad, required=True) or "")
        elif kind == "tool_use":
            string(block, "id", f"{where}.id", _bad, required=True)
            string(block, "name", f"{where}.name", _bad, required=True)
            arguments = obj(block, "input", f"{where}.input", _bad) or {}
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}})
        elif kind in ("thinking", "redacted_thinking"):
            dropped_block(block, where, _bad)
        else:
            raise _bad(f"blocks of type {kind!r} are not supported in assistant turns through a chat-completions "
                       "backend.", f"{where}.type")
    # "" rather than null beside tool calls: llama.cpp's server refuses null (argoproxy/pipeline/upstream_messages.py)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def block_to_parts(block: Any, where: str) -> list[dict[str, Any]]:
    """A user content block as chat content parts (a document of text and images is several)."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind in ("image", "document", "search_result"):
        cache_control(block, where, _bad)
    if kind == "text":
        text_fields(block, where, _bad)
        if not isinstance(block.get("text"), str):
            raise _bad("text blocks need a text string.", f"{where}.text")
        return [{"type": "text", "text": block["text"]}]
    if kind == "image":
        return [image_part(block, where)]
    if kind == "document":
        return document_parts(block, where)
    if kind == "search_result":
        return [search_result_part(block, where)]
    raise _bad(f"blocks of type {kind!r} are not supported through a chat-completions backend.", f"{where}.type")


def image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": source_url(block.get("source"), where, image=True)}}


def source_url(source: Any, where: str, image: bool) -> str:
    """An image source as the URL chat takes: the URL itself, or base64 data as a data: URL."""
    if not isinstance(source, dict):
        raise _bad("source is required.", f"{where}.source")
    url = source.get("url")
    if source.get("type") == "url" and isinstance(url, str):
        return url
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media = string(source, "media_type", f"{where}.source.media_type", _bad)
        if image and media not in IMAGE_TYPES:
            raise _bad(f"media_type must be one of {', '.join(IMAGE_TYPES)}.", f"{where}.source.media_type")
        return f"data:{media};base64,{source['data']}"
    raise _bad("source must be {type: base64, media_type, data} or {type: url, url}.", f"{where}.source")


def document_parts(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """A document block: text sources as text, a content source as its text and then its images, PDFs (base64)
    as a chat `file` part."""
    given = block.get("source")
    source: dict[str, Any] = given if isinstance(given, dict) else {}
    checked(block, DOCUMENT_BLOCK, where, _bad)  # citations, context: left out (a chat upstream cites nothing)
    title = string(block, "title", f"{where}.title", _bad)
    kind = source.get("type")
    if isinstance(kind, str) and kind in DOCUMENT_SOURCES:
        DOCUMENT_SOURCES[kind](source, f"{where}.source", _bad)
    images: list[dict[str, Any]] = []
    if kind == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif kind == "content":
        text, images = document_content(source.get("content"), f"{where}.source.content")
    elif kind == "base64" and isinstance(source.get("data"), str):
        media = string(source, "media_type", f"{where}.source.media_type", _bad) or "application/pdf"
        return [{"type": "file", "file": {"file_data": f"data:{media};base64,{source['data']}",
                                          "filename": title or "document.pdf"}}]
    else:
        raise _bad("document sources must be text, content or base64 (a URL document cannot go through a "
                   "chat-completions backend).", f"{where}.source")
    text = f"{title}\n\n{text}" if title else text
    return ([{"type": "text", "text": text}] if text or not images else []) + images


def document_content(content: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    """A `content` document source: a string, or text and image blocks (the texts joined, the images as parts)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _bad("must be a string or a list of text and image blocks.", where)
    texts, images = [], []
    for k, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "image":
            cache_control(block, f"{where}.{k}", _bad)
            images.append(image_part(block, f"{where}.{k}"))
        else:
            texts.append(text_block_text(block, f"{where}.{k}", "must be a text or image block."))
    return "".join(texts), images


def text_block_text(block: Any, where: str, wrong: str = "must be a text block.") -> str:
    """A text block's text, its other fields checked."""
    if not isinstance(block, dict) or block.get("type") != "text":
        raise _bad(wrong, where)
    text_fields(block, where, _bad)
    return string(block, "text", f"{where}.text", _bad, required=True) or ""


def search_result_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A search result the client found (retrieval): its title, source and text, as text a chat model reads."""
    checked(block, SEARCH_RESULT, where, _bad, SEARCH_RESULT_REQUIRED)
    content = block["content"]
    if not isinstance(content, list):
        raise _bad("must be a list of text blocks.", f"{where}.content")
    text = "\n".join(text_block_text(inner, f"{where}.content.{k}") for k, inner in enumerate(content))
    return {"type": "text", "text": f"{block['title']}\n{block['source']}\n\n{text}"}


def tool_reference_text(block: dict[str, Any], where: str) -> str:
    """A tool_reference in a tool result (a client-side tool search found that tool): its name, as text. A chat
    upstream is sent every tool anyway (deferred loading is left out), so there is nothing to load."""
    cache_control(block, where, _bad)
    name = string(block, "tool_name", f"{where}.tool_name", _bad, required=True)
    if not TOOL_REFERENCE_NAME.fullmatch(name or ""):
        raise _bad("must be 1 to 256 letters, digits, _ or -.", f"{where}.tool_name")
    return name or ""


def tool_result_to_chat(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool_result block: the tool message, and the images it held (chat tool messages take only text)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad("tool_result blocks need a tool_use_id.", f"{where}.tool_use_id")
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        texts = []
        for k, inner in enumerate(content):
            if isinstance(inner, dict) and inner.get("type") == "tool_reference":
                texts.append(tool_reference_text(inner, f"{where}.content.{k}"))
                continue
            for part in block_to_parts(inner, f"{where}.content.{k}"):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
        text = "\n".join(texts)
    else:
        raise _bad("content must be a string or a list of blocks.", f"{where}.content")
    if boolean(block, "is_error", f"{where}.is_error", _bad):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def tools_to_chat(tools: Any, dropped: dict[str, None] | None = None) -> list[dict[str, Any]]:
    """Client tools as chat functions. Server tools and Anthropic-defined tools (a versioned `type`:
    web_search_20250305, bash_20250124...) have no chat form: they are left out and their types noted in
    `dropped` (the door logs them). `dropped` is a dict used as an ordered set: a list's `in` made 40,000
    distinct types take 29 s."""
    if not isinstance(tools, list):
        raise _bad("must be a list.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad("each tool must be an object.", f"tools.{i}")
        kind, name = tool.get("type"), tool.get("name")
        if kind is not None and not isinstance(kind, str):
            raise _bad("must be a string.", f"tools.{i}.type")
        if name is not None and not isinstance(name, str):
            raise _bad("must be a string.", f"tools.{i}.name")
        if kind not in (None, "custom"):
            server_tool(tool, f"tools.{i}", _bad)
            if dropped is not None:
                dropped[kind] = None
            continue
        if not name:
            raise _bad("Field required: a tool name.", f"tools.{i}.name")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _bad("Field required: an input_schema object.", f"tools.{i}.input_schema")
        client_tool(tool, f"tools.{i}", _bad)
        function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
        description = string(tool, "description", f"tools.{i}.description", _bad)
        if description is not None:
            function["description"] = description
        out.append({"type": "function", "function": function})
    return out


def _names(tools: list[Any], types: dict[str, None]) -> set[str]:
    """The names of the tools of these types."""
    return {t["name"] for t in tools if isinstance(t, dict) and t.get("type") in types and isinstance(t.get("name"), str)}


def tool_choice_to_chat(choice: Any) -> tuple[Any, bool | None]:
    """tool_choice -> (chat tool_choice, parallel_tool_calls)."""
    if not isinstance(choice, dict):
        raise _bad("must be an object with a type.", "tool_choice")
    checked(choice, TOOL_CHOICE, "tool_choice", _bad)
    disable = boolean(choice, "disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use", _bad)
    parallel = None if disable is None else not disable
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        name = string(choice, "name", "tool_choice.name", _bad, required=True)
        return {"type": "function", "function": {"name": name}}, parallel
    raise _bad("type must be auto, any, tool (with a name) or none.", "tool_choice.type")


# ---------------------------------------------------------------------------------------------- answer

def usage_to_messages(usage: Any, estimate: int | None = None) -> dict[str, Any]:
    """Chat usage as Messages usage, every field the API's Usage has: input_tokens excludes what was read from
    the cache; output_tokens includes the reasoning, whose part output_tokens_details.thinking_tokens says (when
    there was any); nothing written to a cache, no server tools, the standard tier (a chat upstream has none
    other)."""
    if not isinstance(usage, dict):
        usage, prompt, cached, output = {}, estimate or 0, 0, 0
    else:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        prompt, output = max((usage.get("prompt_tokens") or 0) - cached, 0), usage.get("completion_tokens") or 0
    out = {"input_tokens": prompt, "output_tokens": output, "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": cached,
           "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
           "server_tool_use": None, "service_tier": "standard", "inference_geo": None}
    thinking = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if type(thinking) is int and thinking > 0:
        out["output_tokens_details"] = {"thinking_tokens": min(thinking, output)}
    return out


def delta_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The cumulative usage a stream's message_delta carries (the API's MessageDeltaUsage fields, and the
    reasoning's part of the output when there was any)."""
    return {k: usage[k] for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                  "cache_read_input_tokens", "server_tool_use", "output_tokens_details")
            if k in usage}


def stop_details(stop_reason: str) -> dict[str, Any] | None:
    """Why a refusal stopped (the upstream names no category); null for every other stop."""
    return {"type": "refusal", "category": None, "explanation": None} if stop_reason == "refusal" else None


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "citations": UNCITED}


def stop_of(choice: Mapping[str, Any], ex: Exchange, refused: bool = False) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence): chat cannot say which stop sequence matched, but vLLM's `stop_reason` can.
    An answer that ended on a refusal (chat's `refusal` field) stopped for it."""
    finish = choice.get("finish_reason")
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched in ex.stop_sequences:
        return "stop_sequence", matched
    reason = STOP_REASONS.get(finish or "", "end_turn")
    return ("refusal" if refused and reason == "end_turn" else reason), None


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Messages carries (not an object: kept under `input`)."""
    try:
        value = bounded_loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        return {"input": arguments}
    return value if isinstance(value, dict) else {"input": value}


def tool_use_block(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id") or new_id("toolu_"), "name": function.get("name") or "",
            "input": tool_input(function.get("arguments")), "caller": DIRECT}


def signature(digest: Any) -> str:
    """A thinking block's signature from the SHA-256 of its text (hashlib's object, fed as the text streamed):
    base64 of who signed and the digest. Clients pass it back untouched, as they do Anthropic's."""
    return base64.b64encode(SIGNED_BY + digest.digest()).decode()


def thinking_block(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": signature(hashlib.sha256(text.encode()))}


def chat_to_message(completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """A whole chat.completion as a `message` object."""
    answer = whole_answer(completion, ex)
    content = [thinking_block(answer.reasoning)] if answer.reasoning else []
    text = answer.text + (answer.refusal or "")
    if text or not answer.calls:
        content.append(text_block(text))
    content.extend(tool_use_block(call) for call in answer.calls)
    stop_reason, stop_sequence = stop_of(answer.choice, ex, refused=bool(answer.refusal))
    return message_object(new_id("msg_"), ex.model, content, stop_reason, stop_sequence,
                          usage_to_messages(ex.usage, ex.input_tokens))


def message_object(msg_id: str, model: str, content: list[dict[str, Any]], stop_reason: str | None,
                   stop_sequence: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    """A `message` with every field the API's Message has (no container: a chat upstream runs no code tools)."""
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "stop_details": None if stop_reason is None else stop_details(stop_reason), "container": None,
            "usage": usage}


# ---------------------------------------------------------------------------------------------- stream

class MessageStream(StreamState):
    """Chat chunks -> Messages events: message_start, ping, one block at a time (start, deltas, stop, with
    dense indexes), message_delta with the stop reason and cumulative usage, message_stop.

    No event repeats what was streamed, so text and tool arguments are kept only for ex.output (journals), up
    to ex.keep characters; past that they only pass through."""

    def __init__(self, ex: Exchange) -> None:
        super().__init__(ex)
        self.msg_id = new_id("msg_")
        self.blocks: list[dict[str, Any]] = []  # the content so far (for ex.output)
        self.open: str | None = None  # kind of the block being streamed
        self.calls: dict[int, int] = {}  # chat tool-call index -> block index
        self.args: dict[int, list[str]] = {}  # block index -> JSON fragments
        self.pieces: dict[int, list[str]] = {}  # block index -> text or thinking, joined when the block closes
        self.digest: Any = None  # the open thinking block's SHA-256, fed as it streams (its signature)

    def start(self) -> None:
        usage = usage_to_messages(None, self.ex.input_tokens)
        self.events.append({"type": "message_start",
                            "message": message_object(self.msg_id, self.ex.model, [], None, None, usage)})
        self.events.append({"type": "ping"})

    def _open(self, kind: str, block: dict[str, Any]) -> int:
        if self.waiting and kind != "tool_use":  # calls waiting for the open one go before what comes next
            self._release()
        self.close()
        self.new_item(block.get("id"), block.get("name"))
        index = len(self.blocks)
        self.blocks.append(dict(block))
        self.events.append({"type": "content_block_start", "index": index, "content_block": block})
        self.open = kind
        return index

    def close(self) -> None:
        if self.open is None:
            return
        index = len(self.blocks) - 1
        if self.open == "tool_use":
            self.blocks[index]["input"] = tool_input("".join(self.args.get(index, ())))
        else:  # `text += piece` on the block copied it per chunk: 100,000 chunks took 13 s
            self.blocks[index][self.open] = "".join(self.pieces.pop(index, ()))
        if self.open == "thinking":  # its signature comes last, just before the block's stop (as Anthropic's)
            signed = self.blocks[index]["signature"] = signature(self.digest)
            self.events.append({"type": "content_block_delta", "index": index,
                                "delta": {"type": "signature_delta", "signature": signed}})
        self.events.append({"type": "content_block_stop", "index": index})
        self.open = None

    def reasoning(self, text: str) -> None:
        if self.open != "thinking":
            self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self.digest = hashlib.sha256()
        self.digest.update(text.encode())
        index = len(self.blocks) - 1
        if self.keeping(len(text)):
            self.pieces.setdefault(index, []).append(text)
        self.events.append({"type": "content_block_delta", "index": index,
                            "delta": {"type": "thinking_delta", "thinking": text}})

    def text(self, text: str) -> None:
        if self.open != "text":
            self._open("text", text_block(""))
        index = len(self.blocks) - 1
        if self.keeping(len(text)):
            self.pieces.setdefault(index, []).append(text)
        if text:
            self.events.append({"type": "content_block_delta", "index": index,
                                "delta": {"type": "text_delta", "text": text}})

    def tool_call(self, key: int, fragment: dict[str, Any]) -> None:
        function = fragment.get("function") or {}
        index = self.calls.get(key)
        if index is None:
            if self.open == "tool_use" or key in self.waiting:
                # Another call is streaming, and an upstream may still add to it (interleaved parallel calls),
                # while a Messages stream has one block at a time: this one waits and goes whole at the end.
                self.wait(key, fragment, function)
                return
            index = self.calls[key] = self._open_call(fragment.get("id"), function.get("name") or "")
        args = function.get("arguments")
        if not args:
            return
        kept = self.keeping(len(args))
        if kept:
            self.args.setdefault(index, []).append(args)
        if index == len(self.blocks) - 1 and self.open == "tool_use":
            self.events.append({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": args}})
        elif kept:  # a late fragment of a closed call (interleaved upstream calls): only the final message has it
            self.blocks[index]["input"] = tool_input("".join(self.args[index]))

    def finish(self) -> None:
        if not self.blocks:
            self.text("")  # an empty answer is still one (empty) text block
        self._release()
        self.close()
        stop_reason, stop_sequence = stop_of(self.choice, self.ex, self.refused)
        usage = usage_to_messages(self.ex.usage, self.ex.input_tokens)
        self.events.append({"type": "message_delta", "delta": {
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "stop_details": stop_details(stop_reason),
            "container": None}, "usage": delta_usage(usage)})
        self.events.append({"type": "message_stop"})
        self.ex.output = message_object(self.msg_id, self.ex.model, self.blocks, stop_reason, stop_sequence, usage)

    def fail(self, err: ProxyError) -> None:
        # the API's ErrorResponse (its request id is in the stream's `request-id` header)
        self.events.append({"type": "error", "error": {"type": error_type(err.status), "message": err.message},
                            "request_id": None})

    def _open_call(self, call_id: str | None, name: str) -> int:
        return self._open("tool_use", {"type": "tool_use", "id": call_id or new_id("toolu_"), "name": name,
                                       "input": {}, "caller": DIRECT})

    def _release(self) -> None:
        """The calls that waited, each a whole block in the order they began."""
        for key, call_id, name, args in self.waited():
            index = self.calls[key] = self._open_call(call_id, name)
            if args:
                if self.keeping(len(args)):
                    self.args[index] = [args]
                self.events.append({"type": "content_block_delta", "index": index,
                                    "delta": {"type": "input_json_delta", "partial_json": args}})


def stream_events(chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
    """Chat chunks -> the Messages event sequence."""
    return MessageStream(ex).run(chunks)


# A target refused before it has a route that is plainly meant for this door (`/v1/messages;x=1`,
# `/v1/./messages`): its error in Anthropic's shape, which Anthropic's SDK and Claude Code read.
LOOKS_MESSAGES = re.compile(r"(?i)^/v1/(?:[^?#]*/)?messages(?:[;%/?#]|$)")


class MessagesFront(Front):
    name = "messages"
    renamed = {"stop": "stop_sequences", "user": "metadata.user_id", "response_format": "output_config.format"}
    routes = (DoorRoute("v1/messages", "messages", bare=True),
              DoorRoute("v1/messages/count_tokens", "count_tokens", bare=True))
    forwarded_prefixes = (("v1", "messages"), ("messages",))  # Anthropic's message batches, forwarded
    key_headers = ("X-Api-Key",)
    counts_prompt_first = True  # message_start carries usage.input_tokens (Claude Code breaks without it)
    native_shape = Shape(("output_config", "effort"), "max_tokens", False)
    spelled = Spelled(limits=(("max_tokens",),), supply=("max_tokens",))  # max_tokens is required
    spelled_paths = (("/v1/messages", spelled),)  # a message batch's requests

    def claims_client(self, headers: Mapping[str, str], query: str) -> bool:
        return "Anthropic-Version" in headers  # Anthropic's SDK and Claude Code send it on every request

    def looks_like_mine(self, target: str) -> bool:
        return LOOKS_MESSAGES.search(target) is not None

    def model_list(self, data: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        return model_list(data)

    def model_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return model_entry(entry)

    def id_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}  # Anthropic's SDKs read the request id from `request-id`

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        dropped: dict[str, None] = {}
        chat = request_to_chat(body, count_only=count_only, dropped=dropped)
        stops = tuple(s for s in body.get("stop_sequences") or () if isinstance(s, str))
        asked = thinking_requested(body)
        return chat, Exchange(model=chat["model"], stream=chat.get("stream") is True, request=body, thinking=asked,
                              asks_reasoning=asked, stop_sequences=stops, dropped=tuple(dropped))

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        ex.output = chat_to_message(completion, ex)
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        return stream_events(chunks, ex)

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error_type(status), "message": err.get("message") or ""},
                "request_id": request_id}

    def client_key(self, headers: Mapping[str, str]) -> str | None:
        return (headers.get("X-Api-Key") or "").strip() or bearer(headers.get("Authorization"))

    def upstream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Anthropic-only headers stay here; the client's x-api-key becomes the Bearer token a chat upstream
        expects (when the proxy has no key of its own, the client's key is the upstream's credential)."""
        out = {k: v for k, v in headers.items() if not k.lower().startswith("anthropic-") and k.lower() != "x-api-key"}
        key = self.client_key(headers)
        if key and "Authorization" not in out:
            out["Authorization"] = f"Bearer {key}"
        return out


def count_tokens_answer(count: int) -> dict[str, Any]:
    return {"input_tokens": count}


# ------------------------------------------------------------------ the model list, as Anthropic's API gives it

def model_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI model list entry as an Anthropic ModelInfo (Claude Code's gateway model discovery reads `id` and
    `display_name`)."""
    name = str(entry.get("id") or "")
    created = entry.get("created")
    when = created if isinstance(created, int) and not isinstance(created, bool) and 0 <= created < 2**33 else 0
    # capabilities and the output limit are not in an OpenAI list: null, as the API says of what it does not know
    return {"type": "model", "id": name, "display_name": name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)), "capabilities": None,
            "max_input_tokens": context_length(entry), "max_tokens": None}


def model_list(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A whole model list in Anthropic's page shape (one page: the proxy's list is not paged)."""
    models = [model_entry(m) for m in data if isinstance(m, Mapping) and m.get("id")]
    return {"data": models, "has_more": False, "first_id": models[0]["id"] if models else None,
            "last_id": models[-1]["id"] if models else None}
