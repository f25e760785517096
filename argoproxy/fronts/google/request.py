"""A generateContent (or countTokens) request -> the internal chat-completions request: its contents as chat
messages, each functionResponse matched back to the call it answers (CallBook), its generationConfig as chat
parameters (thinkingConfig as reasoning_effort: docs/client-apis.md's table). Thought parts in the history are
dropped (a chat upstream cannot take them back).
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from argoproxy.fronts.front import DoorArgs
from argoproxy.fronts.google.fields import (bad, has_key, integer, list_field, number, object_field, string_field,
                                            typed, value_of, whole_number)
from argoproxy.fronts.google.tools import format_to_chat, tool_config_to_chat, tools_to_chat
from argoproxy.pipeline.adapt import thinking_effort


THINKING_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}


@dataclass
class CallBook:
    """The function calls of the history, so that each functionResponse finds the call it answers. Indexed by
    id and by name (a scan per answer made 48,000 answered calls cost 36 s of a worker's CPU)."""
    turn: int = 0
    pending: dict[str, list[str]] = field(default_factory=dict)  # id -> the names called under it (one, usually)
    by_name: dict[str, deque[str]] = field(default_factory=dict)  # name -> ids in order (some answered already)
    count: int = 0  # calls of the last model turn

    def called(self, name: str, given: str | None) -> str:
        call_id = given or f"call_{self.turn}_{self.count}"
        self.count += 1
        self.pending.setdefault(call_id, []).append(name)
        self.by_name.setdefault(name, deque()).append(call_id)
        return call_id

    def answered(self, name: str, given: str | None, where: str) -> str:
        if given is not None and given in self.pending:
            self._take(given, self.pending[given][0])
            return given
        # by name, in order: no id given, or an id this proxy never saw (the client made its own)
        ids = self.by_name.get(name)
        while ids:
            call_id = ids.popleft()
            if name in self.pending.get(call_id, ()):
                self._take(call_id, name)
                return call_id
        raise bad(f"no functionCall named {name!r} in the previous model turn is left to answer.", where)

    def _take(self, call_id: str, name: str) -> None:
        names = self.pending[call_id]
        names.remove(name)
        if not names:
            del self.pending[call_id]

    def next_turn(self) -> None:
        """Calls left unanswered stay so; the next model turn starts its own."""
        self.pending.clear()
        self.by_name.clear()
        self.count = 0


def request_to_chat(body: dict[str, Any], args: DoorArgs, *, count_only: bool = False,
                    dropped: dict[str, None] | None = None) -> dict[str, Any]:
    """A generateContent (or countTokens) request as a chat-completions request body."""
    wrapped = object_field(body, "generateContentRequest", "") if count_only else None
    if wrapped is not None:
        if value_of(body, "contents"):  # Google refuses the pair (an empty list reads as none): which to count?
            raise bad("give either contents or generateContentRequest, not both.", "generateContentRequest")
        body = wrapped  # countTokens may wrap a whole request
    contents = list_field(body, "contents", "")
    if not contents and not count_only:
        raise bad("Field required: a non-empty list of contents.", "contents")
    messages: list[dict[str, Any]] = []
    system = system_text(value_of(body, "systemInstruction"), "systemInstruction")
    if system:
        messages.append({"role": "system", "content": system})
    book = CallBook()
    for i, content in enumerate(contents or ()):
        book.turn = i
        messages.extend(content_to_chat(content, f"contents[{i}]", book))
    chat: dict[str, Any] = {"model": args.model, "messages": messages}
    tools = list_field(body, "tools", "")
    if tools:
        functions = tools_to_chat(tools, dropped)
        if functions:
            chat["tools"] = functions
            choice = tool_config_to_chat(object_field(body, "toolConfig", ""), functions)
            if choice is not None:
                chat["tool_choice"] = choice
    if string_field(body, "cachedContent", "") is not None:
        raise bad("cached contents are not kept by this proxy; send the contents themselves.", "cachedContent")
    list_field(body, "safetySettings", "")  # accepted and left out: a chat upstream has no such setting
    generation_to_chat(object_field(body, "generationConfig", "") or {}, chat)
    if args.stream and not count_only:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def system_text(system: Any, where: str) -> str:
    """systemInstruction: a Content whose parts are text (a bare string is taken too, as the SDKs send one)."""
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, dict):
        raise bad("must be a Content object with text parts.", where)
    texts = []
    for j, part in enumerate(list_field(system, "parts", f"{where}.") or ()):
        at = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise bad("must be a Part object.", at)
        text = string_field(part, "text", f"{at}.")
        if text is None:
            raise bad("Field required: system instructions take text parts.", f"{at}.text")
        texts.append(text)
    return "\n\n".join(t for t in texts if t)


def content_to_chat(content: Any, where: str, book: CallBook) -> list[dict[str, Any]]:
    """One Content as chat messages: a model turn becomes one assistant message (text and tool calls); a user
    turn's functionResponses become tool messages (first, as chat wants them right after the calls), then a user
    message with whatever else it held."""
    if not isinstance(content, dict):
        raise bad("must be a Content object.", where)
    role = string_field(content, "role", f"{where}.") or "user"
    if role not in ("user", "model", "function", "tool"):
        raise bad("must be user or model.", f"{where}.role")
    parts = list_field(content, "parts", f"{where}.")
    if not parts:
        raise bad("Field required: a non-empty list of parts.", f"{where}.parts")
    if role == "model":
        return [model_turn(parts, where, book)]
    tools: list[dict[str, Any]] = []
    chat_parts: list[dict[str, Any]] = []
    for at, part in part_objects(parts, where):
        response = object_field(part, "functionResponse", f"{at}.")
        if response is not None:
            tools.append(function_response(response, f"{at}.functionResponse", book))
        elif part.get("thought") is True:
            continue
        else:
            chat_parts.append(part_to_chat(part, at))
    book.next_turn()
    out = tools
    if chat_parts:
        if all(p["type"] == "text" for p in chat_parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in chat_parts)})
        else:
            out.append({"role": "user", "content": chat_parts})
    return out


def part_objects(parts: list[Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, part) for each part of a Content, each checked to be an object."""
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise bad("must be a Part object.", at)
        yield at, part


def model_turn(parts: list[Any], where: str, book: CallBook) -> dict[str, Any]:
    book.next_turn()
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for at, part in part_objects(parts, where):
        call = object_field(part, "functionCall", f"{at}.")
        if call is not None:
            name = string_field(call, "name", f"{at}.functionCall.")
            if not name:
                raise bad("Field required: the function's name.", f"{at}.functionCall.name")
            arguments = object_field(call, "args", f"{at}.functionCall.") or {}
            call_id = book.called(name, string_field(call, "id", f"{at}.functionCall."))
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}})
        elif part.get("thought") is True:
            continue
        elif has_key(part, "text"):
            texts.append(string_field(part, "text", f"{at}.") or "")
        else:
            raise bad("model turns take text and functionCall parts through a chat-completions backend.", at)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def function_response(response: dict[str, Any], where: str, book: CallBook) -> dict[str, Any]:
    name = string_field(response, "name", f"{where}.")
    if not name:
        raise bad("Field required: the function's name.", f"{where}.name")
    result = value_of(response, "response")
    if result is not None and not isinstance(result, dict):
        raise bad("must be an object.", f"{where}.response")
    call_id = book.answered(name, string_field(response, "id", f"{where}."), where)
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result or {}, ensure_ascii=False)}


def part_to_chat(part: dict[str, Any], where: str) -> dict[str, Any]:
    """A user part as a chat content part: text, an image (inline or by URL) or a PDF."""
    if has_key(part, "text"):
        return {"type": "text", "text": string_field(part, "text", f"{where}.") or ""}
    inline = object_field(part, "inlineData", f"{where}.")
    if inline is not None:
        mime = string_field(inline, "mimeType", f"{where}.inlineData.") or ""
        data = string_field(inline, "data", f"{where}.inlineData.")
        if not data:
            raise bad("Field required: base64 data.", f"{where}.inlineData.data")
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
        if mime == "application/pdf":
            return {"type": "file", "file": {"file_data": f"data:{mime};base64,{data}", "filename": "document.pdf"}}
        if mime.startswith("text/"):
            return {"type": "text", "text": base64_text(data, f"{where}.inlineData.data")}
        raise bad("only images, PDFs and text can go through a chat-completions backend.",
                   f"{where}.inlineData.mimeType")
    file = object_field(part, "fileData", f"{where}.")
    if file is not None:
        uri = string_field(file, "fileUri", f"{where}.fileData.") or ""
        mime = string_field(file, "mimeType", f"{where}.fileData.") or ""
        if uri.startswith(("http://", "https://")) and (mime.startswith("image/") or not mime):
            return {"type": "image_url", "image_url": {"url": uri}}
        raise bad("only image URLs (http or https) can go through a chat-completions backend; uploaded files are "
                   "not kept by this proxy.", f"{where}.fileData")
    if has_key(part, "functionCall"):
        raise bad("functionCall parts belong in model turns.", f"{where}.functionCall")
    kinds = ", ".join(k for k in part if k not in ("thought", "thoughtSignature", "thought_signature")) or "nothing"
    raise bad(f"a part holding {kinds} cannot go through a chat-completions backend.", where)


def base64_text(data: str, where: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise bad("must be base64 of UTF-8 text.", where) from None


def generation_to_chat(config: dict[str, Any], chat: dict[str, Any]) -> None:
    """generationConfig -> chat parameters (fields a chat upstream has no use for are left out)."""
    at = "generationConfig."
    for key, name in (("temperature", "temperature"), ("topP", "top_p"), ("presencePenalty", "presence_penalty"),
                      ("frequencyPenalty", "frequency_penalty")):
        value = number(config, key, at)
        if value is not None:
            chat[name] = value
    for key, name in (("topK", "top_k"), ("seed", "seed")):
        value = whole_number(config, key, at)
        if value is not None:
            chat[name] = value
    max_tokens = integer(config, "maxOutputTokens", at, minimum=1)
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    stops = list_field(config, "stopSequences", at)
    if stops:
        if not all(isinstance(s, str) for s in stops):
            raise bad("must be a list of strings.", f"{at}stopSequences")
        chat["stop"] = stops
    count = integer(config, "candidateCount", at, minimum=1)
    if count is not None and count != 1:
        raise bad("only 1 candidate can be generated through this proxy.", f"{at}candidateCount")
    modalities = list_field(config, "responseModalities", at) or []
    if any(not isinstance(m, str) or m.upper() != "TEXT" for m in modalities):
        raise bad("only TEXT can be generated through a chat-completions backend.", f"{at}responseModalities")
    response_format = format_to_chat(config)
    if response_format is not None:
        chat["response_format"] = response_format
    effort = thinking_to_effort(object_field(config, "thinkingConfig", at) or {}, f"{at}thinkingConfig.")
    if effort is not None:
        chat["reasoning_effort"] = effort


def thinking_to_effort(thinking: dict[str, Any], at: str) -> str | None:
    """thinkingConfig -> reasoning_effort: thinkingLevel where given, else thinkingBudget (0: off, -1: dynamic, on
    at the model's default, else a budget in tokens); None when it asks neither."""
    typed(thinking, "includeThoughts", "a boolean", at)
    budget = whole_number(thinking, "thinkingBudget", at)
    if budget is not None and budget < -1:
        raise bad("must be -1 (dynamic), 0 (off) or a number of tokens.", f"{at}thinkingBudget")
    level = string_field(thinking, "thinkingLevel", at)
    if level is not None:
        if level.lower() not in THINKING_LEVELS:
            raise bad("must be MINIMAL, LOW, MEDIUM or HIGH.", f"{at}thinkingLevel")
        return THINKING_LEVELS[level.lower()]
    if budget is None:
        return None
    return thinking_effort("disabled" if budget == 0 else "adaptive" if budget < 0 else "enabled", budget)


def thoughts_requested(body: Mapping[str, Any]) -> bool:
    """generationConfig.thinkingConfig.includeThoughts (checked already by generation_to_chat)."""
    config = value_of(body, "generationConfig")
    thinking = value_of(config, "thinkingConfig") if isinstance(config, dict) else None
    return isinstance(thinking, dict) and value_of(thinking, "includeThoughts") is True
