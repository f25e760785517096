"""An Interactions create request (`POST /v1beta/interactions`) -> the internal chat-completions request.

`input` is a string, one content, a list of contents (one user turn) or a list of steps (`user_input`,
`model_output`, `thought`, `function_call`, `function_result`): steps become chat messages in order, thoughts are
left out (a chat upstream cannot take reasoning back). `system_instruction` opens the messages; function tools and
`generation_config` (temperature, top_p, seed, stop_sequences, max_output_tokens, thinking_level, tool_choice)
and `response_format` (a text format and its JSON schema, or the older bare schema) become chat's. Tools a chat
backend cannot run (Google Search, code execution, URL context, MCP servers...) are left out and named (logged).
What needs the store (`previous_interaction_id`, `store`, `background`) is kept.py's: the request reaching here is
stateless."""

from __future__ import annotations

import json
from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.fronts.fields import array, boolean, field, obj, string

# Content types a step or an input may hold; those a chat upstream can read are text and images.
CONTENT_TYPES = frozenset(("text", "image", "audio", "document", "video", "file"))
STEP_TYPES = frozenset(("user_input", "model_output", "thought", "function_call", "function_result"))
THINKING_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none", "validated": "auto"}
FORMAT_TYPES = ("text", "image", "audio", "video")  # a typed response_format's `type` (a JSON schema has none of them)
MIME_TYPES = ("application/json", "text/plain")  # a text format's
# Fields of a create request a chat upstream has no part in (the store's are kept.py's; the rest answer 400).
UNSERVED = {"agent": "agents are not served by this proxy", "agent_config": "agents are not served by this proxy",
            "environment": "environments are not served by this proxy",
            "webhook_config": "webhooks are not served by this proxy"}


def bad(message: str, param: str | None = None, code: str = "invalid_argument") -> ProxyError:
    """The door's 400: the field named before the message, as Google's errors do."""
    return ProxyError(400, f"`{param}`: {message}" if param else message, param=param, code=code)


def field_error(message: str, param: str) -> ProxyError:
    return bad(message, param)


def request_to_chat(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The chat request of a (stateless) create request, and the tool types left out."""
    for name, why in UNSERVED.items():
        if body.get(name) is not None:
            raise ProxyError(404 if name.startswith("agent") else 400, f"`{name}`: {why}.", param=name,
                             code="not_found" if name.startswith("agent") else "invalid_argument")
    model = string(body, "model", "model", field_error, required=True)
    assert model is not None
    messages: list[dict[str, Any]] = []
    system = string(body, "system_instruction", "system_instruction", field_error)
    if system:
        messages.append({"role": "system", "content": system})
    if body.get("input") is None:
        raise bad("Field required: a string, a content, or a list of contents or steps.", "input")
    messages.extend(steps_to_chat(input_steps(body.get("input"))))
    chat: dict[str, Any] = {"model": model, "messages": messages}
    dropped: list[str] = []
    tools = array(body, "tools", "tools", field_error)
    if tools:
        functions = [tool_to_chat(tool, f"tools[{n}]", dropped) for n, tool in enumerate(tools)]
        if any(functions):
            chat["tools"] = [f for f in functions if f]
    config = obj(body, "generation_config", "generation_config", field_error)
    if config:
        generation_to_chat(config, chat)
    response_format = format_to_chat(body.get("response_format"), body.get("response_mime_type"))
    if response_format is not None:
        chat["response_format"] = response_format
    modalities = array(body, "response_modalities", "response_modalities", field_error) or []
    if any(not isinstance(m, str) or m.lower() != "text" for m in modalities):
        raise bad("only text can be generated through a chat-completions backend.", "response_modalities")
    if boolean(body, "stream", "stream", field_error):  # a background run's too (kept.py streams it)
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the upstream's usage, reasoning in it, is what is charged
    return chat, tuple(dropped)


# ---------------------------------------------------------------- input
def input_steps(value: Any) -> list[dict[str, Any]]:
    """`input` as steps: a string or contents are one `user_input` step; a list of steps as it came (checked)."""
    if isinstance(value, str):
        return [{"type": "user_input", "content": [{"type": "text", "text": value}]}]
    if isinstance(value, dict):
        return [{"type": "user_input", "content": [checked_content(value, "input")]}]
    if not isinstance(value, list) or not value:
        raise bad("must be a string, a content, or a non-empty list of contents or steps.", "input")
    if all(isinstance(item, dict) and item.get("type") in CONTENT_TYPES for item in value):
        return [{"type": "user_input", "content": [checked_content(c, f"input[{n}]") for n, c in enumerate(value)]}]
    for n, step in enumerate(value):
        if not isinstance(step, dict) or step.get("type") not in STEP_TYPES:
            raise bad(f"must be a step ({', '.join(sorted(STEP_TYPES))}) or a content.", f"input[{n}].type")
    return value


def checked_content(content: Any, where: str) -> dict[str, Any]:
    if not isinstance(content, dict) or content.get("type") not in CONTENT_TYPES:
        raise bad(f"must be a content ({', '.join(sorted(CONTENT_TYPES))}).", f"{where}.type")
    return content


def steps_to_chat(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps as chat messages: a model's output and its function calls in one assistant message, each result a
    tool message."""
    messages: list[dict[str, Any]] = []
    for n, step in enumerate(steps):
        kind, where = step["type"], f"input[{n}]"
        if kind == "user_input":
            parts = contents_to_chat(step.get("content"), where)
            text_only = len(parts) == 1 and parts[0]["type"] == "text"  # a string, as every chat server takes it
            messages.append({"role": "user", "content": parts[0]["text"] if text_only else parts})
        elif kind == "model_output":
            text = "".join(part["text"] for part in contents_to_chat(step.get("content"), where)
                           if part.get("type") == "text")
            assistant(messages)["content"] = (assistant(messages).get("content") or "") + text
        elif kind == "function_call":
            assistant(messages).setdefault("tool_calls", []).append(call_to_chat(step, where))
        elif kind == "function_result":
            messages.append(result_to_chat(step, where))
        # thought steps: a chat upstream takes no reasoning back
    return messages


def assistant(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message the model's steps go into: the last message if it is one, else a new one."""
    if not messages or messages[-1]["role"] != "assistant":
        messages.append({"role": "assistant", "content": None})
    return messages[-1]


def contents_to_chat(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return [{"type": "text", "text": ""}]
    if not isinstance(content, list):
        raise bad("must be a list of contents.", f"{where}.content")
    return [content_to_chat(checked_content(c, f"{where}.content[{n}]"), f"{where}.content[{n}]")
            for n, c in enumerate(content)]


def content_to_chat(content: dict[str, Any], where: str) -> dict[str, Any]:
    """A text or an image (inline base64 or by URL) as a chat content part; other media cannot go through."""
    if content["type"] == "text":
        return {"type": "text", "text": string(content, "text", f"{where}.text", field_error, required=True)}
    if content["type"] == "image":
        data = string(content, "data", f"{where}.data", field_error)
        uri = string(content, "uri", f"{where}.uri", field_error)
        mime = string(content, "mime_type", f"{where}.mime_type", field_error) or "image/png"
        if data:
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
        if uri and uri.startswith(("http://", "https://")):
            return {"type": "image_url", "image_url": {"url": uri}}
        raise bad("an image needs base64 `data` or an http(s) `uri`.", where)
    raise bad(f"{content['type']} content cannot go through a chat-completions backend: text and images can.",
              f"{where}.type")


def call_to_chat(step: dict[str, Any], where: str) -> dict[str, Any]:
    name = string(step, "name", f"{where}.name", field_error, required=True)
    call_id = string(step, "id", f"{where}.id", field_error, required=True)
    arguments = obj(step, "arguments", f"{where}.arguments", field_error) or {}
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def result_to_chat(step: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = string(step, "call_id", f"{where}.call_id", field_error, required=True)
    result = step.get("result")
    if isinstance(result, str):
        text = result
    elif isinstance(result, list):
        text = "".join(part.get("text") or "" for part in result if isinstance(part, dict))
    elif isinstance(result, dict):
        text = json.dumps(result, ensure_ascii=False)
    else:
        raise bad("Field required: a string, an object or a list of contents.", f"{where}.result")
    return {"role": "tool", "tool_call_id": call_id, "content": text}


# ---------------------------------------------------------------- tools and settings
def tool_to_chat(tool: Any, where: str, dropped: list[str]) -> dict[str, Any] | None:
    """A function tool as chat's; another kind (a tool Google runs itself) left out and named in `dropped`."""
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise bad("must be a tool with a `type`.", f"{where}.type")
    if tool["type"] != "function":
        dropped.append(tool["type"])
        return None
    name = string(tool, "name", f"{where}.name", field_error, required=True)
    function: dict[str, Any] = {"name": name}
    description = string(tool, "description", f"{where}.description", field_error)
    if description:
        function["description"] = description
    parameters = obj(tool, "parameters", f"{where}.parameters", field_error)
    function["parameters"] = parameters if parameters is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def generation_to_chat(config: dict[str, Any], chat: dict[str, Any]) -> None:
    at = "generation_config."
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = field(config, key, "a number", at + key, field_error)
        if value is not None:
            chat[key] = value
    seed = field(config, "seed", "an integer", at + "seed", field_error)
    if seed is not None:
        chat["seed"] = seed
    most = field(config, "max_output_tokens", "an integer", at + "max_output_tokens", field_error)
    if most is not None:
        if most < 1:
            raise bad("must be at least 1.", at + "max_output_tokens")
        chat["max_tokens"] = most
    stops = array(config, "stop_sequences", at + "stop_sequences", field_error)
    if stops:
        if not all(isinstance(s, str) for s in stops):
            raise bad("must be a list of strings.", at + "stop_sequences")
        chat["stop"] = stops
    level = string(config, "thinking_level", at + "thinking_level", field_error)
    if level is not None:
        if level.lower() not in THINKING_LEVELS:
            raise bad("must be minimal, low, medium or high.", at + "thinking_level")
        chat["reasoning_effort"] = THINKING_LEVELS[level.lower()]
    choice = config.get("tool_choice")
    if choice is not None and chat.get("tools"):
        chat["tool_choice"] = tool_choice_to_chat(choice, at + "tool_choice")


def tool_choice_to_chat(choice: Any, where: str) -> Any:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise bad(f"must be one of {', '.join(TOOL_CHOICES)}.", where)
        return TOOL_CHOICES[choice]
    allowed = obj(choice, "allowed_tools", f"{where}.allowed_tools", field_error) if isinstance(choice, dict) else None
    if allowed is None:
        raise bad("must be auto, any, none, validated or {allowed_tools: {mode, tools}}.", where)
    mode = string(allowed, "mode", f"{where}.allowed_tools.mode", field_error) or "auto"
    names = array(allowed, "tools", f"{where}.allowed_tools.tools", field_error) or []
    if mode in ("any", "validated") and len(names) == 1 and isinstance(names[0], str):
        return {"type": "function", "function": {"name": names[0]}}
    return TOOL_CHOICES.get(mode, "auto")


def format_to_chat(value: Any, mime: Any) -> dict[str, Any] | None:
    """`response_format` as chat's: a typed format (`{"type": "text", "mime_type", "schema"}`, as google-genai 3.6
    sends it) or a list of them, of which a chat upstream makes text alone; or the older bare JSON schema. The
    deprecated `response_mime_type` is the text's MIME type where the format names none."""
    if isinstance(value, list):
        for n, item in enumerate(value):
            if not isinstance(item, dict) or item.get("type") not in FORMAT_TYPES:
                raise bad(f"must be a response format ({', '.join(FORMAT_TYPES)}).", f"response_format[{n}].type")
        texts = [text_format(item, f"response_format[{n}]") for n, item in enumerate(value)]
        if len(texts) > 1:
            raise bad("one text format at most.", "response_format")
        value = texts[0] if texts else None
    elif isinstance(value, dict) and value.get("type") in FORMAT_TYPES:
        value = text_format(value, "response_format")
    elif value is not None:  # the older form: the schema itself
        if not isinstance(value, dict):
            raise bad("must be a response format or a list of them.", "response_format")
        value = {"type": "text", "schema": value}
    return text_to_chat(value, mime)


def text_format(item: dict[str, Any], where: str) -> dict[str, Any]:
    """A typed format, checked: text is what a chat upstream makes."""
    if item["type"] != "text":
        raise bad("only text can be generated through a chat-completions backend.", f"{where}.type")
    schema = item.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise bad("must be a JSON schema (an object).", f"{where}.schema")
    return item


def text_to_chat(text: dict[str, Any] | None, mime: Any) -> dict[str, Any] | None:
    """A text format (or none) and `response_mime_type` as chat's response_format: a JSON schema, JSON mode, or
    none (plain text)."""
    text = text or {}
    schema = text.get("schema")
    kind = text.get("mime_type") or mime or ("application/json" if schema is not None else "text/plain")
    where = "response_format.mime_type" if text.get("mime_type") else "response_mime_type"
    if kind not in MIME_TYPES:
        raise bad("must be application/json or text/plain.", where)
    if kind == "text/plain":
        if schema is not None:
            raise bad("a schema asks for JSON: application/json.", where)
        return None
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def thinks(body: dict[str, Any]) -> bool:
    """Does the answer show its thoughts? Unless generation_config.thinking_summaries is none."""
    config = body.get("generation_config")
    return not (isinstance(config, dict) and config.get("thinking_summaries") == "none")
