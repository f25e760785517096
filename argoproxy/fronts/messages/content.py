"""One Messages turn -> chat messages: text, images, documents, search results and tool results as chat's
content parts and tool messages; thinking blocks in the history checked and dropped."""

from __future__ import annotations

import json
from typing import Any

from argoproxy.fronts.fields import boolean, checked, obj, string
from argoproxy.fronts.messages.errors import bad
from argoproxy.fronts.messages.shapes import (DOCUMENT_BLOCK, DOCUMENT_SOURCES, SEARCH_RESULT, SEARCH_RESULT_REQUIRED,
                                              TOOL_REFERENCE_NAME, cache_control, dropped_block, text_fields)


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def message_to_chat(message: Any, param: str) -> list[dict[str, Any]]:
    """One Messages turn as chat messages: a user turn with tool results becomes tool messages (first, as chat
    wants them right after the assistant's calls) and then a user message with whatever else it held."""
    if not isinstance(message, dict):
        raise bad("each message must be an object.", param)
    role = message.get("role")
    if role not in ("user", "assistant", "system"):
        raise bad("role must be user or assistant.", f"{param}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise bad("content must be a string or a list of blocks.", f"{param}.content")
    if role == "assistant":
        return [assistant_to_chat(content, param)]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"{param}.content.{j}"
        if isinstance(block, dict) and block.get("type") == "tool_result":
            cache_control(block, where, bad)
            result, images = tool_result_to_chat(block, where)
            tools.append(result)
            parts.extend(images)
        elif isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking"):
            dropped_block(block, where, bad)
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
            cache_control(block, where, bad)
        if kind == "text":
            text_fields(block, where, bad)
            texts.append(string(block, "text", f"{where}.text", bad, required=True) or "")
        elif kind == "tool_use":
            string(block, "id", f"{where}.id", bad, required=True)
            string(block, "name", f"{where}.name", bad, required=True)
            arguments = obj(block, "input", f"{where}.input", bad) or {}
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}})
        elif kind in ("thinking", "redacted_thinking"):
            dropped_block(block, where, bad)
        else:
            raise bad(f"blocks of type {kind!r} are not supported in assistant turns through a chat-completions "
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
        cache_control(block, where, bad)
    if kind == "text":
        text_fields(block, where, bad)
        if not isinstance(block.get("text"), str):
            raise bad("text blocks need a text string.", f"{where}.text")
        return [{"type": "text", "text": block["text"]}]
    if kind == "image":
        return [image_part(block, where)]
    if kind == "document":
        return document_parts(block, where)
    if kind == "search_result":
        return [search_result_part(block, where)]
    raise bad(f"blocks of type {kind!r} are not supported through a chat-completions backend.", f"{where}.type")


def image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": source_url(block.get("source"), where, image=True)}}


def source_url(source: Any, where: str, image: bool) -> str:
    """An image source as the URL chat takes: the URL itself, or base64 data as a data: URL."""
    if not isinstance(source, dict):
        raise bad("source is required.", f"{where}.source")
    url = source.get("url")
    if source.get("type") == "url" and isinstance(url, str):
        return url
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media = string(source, "media_type", f"{where}.source.media_type", bad)
        if image and media not in IMAGE_TYPES:
            raise bad(f"media_type must be one of {', '.join(IMAGE_TYPES)}.", f"{where}.source.media_type")
        return f"data:{media};base64,{source['data']}"
    raise bad("source must be {type: base64, media_type, data} or {type: url, url}.", f"{where}.source")


def document_parts(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """A document block: text sources as text, a content source as its text and then its images, PDFs (base64)
    as a chat `file` part."""
    given = block.get("source")
    source: dict[str, Any] = given if isinstance(given, dict) else {}
    checked(block, DOCUMENT_BLOCK, where, bad)  # citations, context: left out (a chat upstream cites nothing)
    title = string(block, "title", f"{where}.title", bad)
    kind = source.get("type")
    if isinstance(kind, str) and kind in DOCUMENT_SOURCES:
        DOCUMENT_SOURCES[kind](source, f"{where}.source", bad)
    images: list[dict[str, Any]] = []
    if kind == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif kind == "content":
        text, images = document_content(source.get("content"), f"{where}.source.content")
    elif kind == "base64" and isinstance(source.get("data"), str):
        media = string(source, "media_type", f"{where}.source.media_type", bad) or "application/pdf"
        return [{"type": "file", "file": {"file_data": f"data:{media};base64,{source['data']}",
                                          "filename": title or "document.pdf"}}]
    else:
        raise bad("document sources must be text, content or base64 (a URL document cannot go through a "
                   "chat-completions backend).", f"{where}.source")
    text = f"{title}\n\n{text}" if title else text
    return ([{"type": "text", "text": text}] if text or not images else []) + images


def document_content(content: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    """A `content` document source: a string, or text and image blocks (the texts joined, the images as parts)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise bad("must be a string or a list of text and image blocks.", where)
    texts, images = [], []
    for k, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "image":
            cache_control(block, f"{where}.{k}", bad)
            images.append(image_part(block, f"{where}.{k}"))
        else:
            texts.append(text_block_text(block, f"{where}.{k}", "must be a text or image block."))
    return "".join(texts), images


def text_block_text(block: Any, where: str, wrong: str = "must be a text block.") -> str:
    """A text block's text, its other fields checked."""
    if not isinstance(block, dict) or block.get("type") != "text":
        raise bad(wrong, where)
    text_fields(block, where, bad)
    return string(block, "text", f"{where}.text", bad, required=True) or ""


def search_result_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A search result the client found (retrieval): its title, source and text, as text a chat model reads."""
    checked(block, SEARCH_RESULT, where, bad, SEARCH_RESULT_REQUIRED)
    content = block["content"]
    if not isinstance(content, list):
        raise bad("must be a list of text blocks.", f"{where}.content")
    text = "\n".join(text_block_text(inner, f"{where}.content.{k}") for k, inner in enumerate(content))
    return {"type": "text", "text": f"{block['title']}\n{block['source']}\n\n{text}"}


def tool_reference_text(block: dict[str, Any], where: str) -> str:
    """A tool_reference in a tool result (a client-side tool search found that tool): its name, as text. A chat
    upstream is sent every tool anyway (deferred loading is left out), so there is nothing to load."""
    cache_control(block, where, bad)
    name = string(block, "tool_name", f"{where}.tool_name", bad, required=True)
    if not TOOL_REFERENCE_NAME.fullmatch(name or ""):
        raise bad("must be 1 to 256 letters, digits, _ or -.", f"{where}.tool_name")
    return name or ""


def tool_result_to_chat(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool_result block: the tool message, and the images it held (chat tool messages take only text)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad("tool_result blocks need a tool_use_id.", f"{where}.tool_use_id")
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
        raise bad("content must be a string or a list of blocks.", f"{where}.content")
    if boolean(block, "is_error", f"{where}.is_error", bad):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images
