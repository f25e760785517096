"""Ollama's requests as the one internal request: `/api/chat` and `/api/generate` as a chat completion,
`/api/embed` and `/api/embeddings` as embeddings. Pure: dict in, dict out.

Ollama streams unless `stream: false`. `options` map to chat parameters (temperature, top_p, top_k, seed, stop,
presence/frequency penalties; num_predict -> max_tokens, a negative one is no limit); the rest of them (num_ctx,
repeat_penalty, mirostat...) set up a local runner and have no chat equivalent: left out. `format` ("json" or a
JSON schema) is the response_format; `think` is whether reasoning comes back (`message.thinking`), a level
("low", "medium", "high", "max") also asks for that reasoning effort. Images are base64 without a MIME type: the
type is read from the data's first bytes. Ollama's tool calls carry their arguments as an object, and a tool
result names its tool (`tool_name`) more often than its call (`tool_call_id`): results are matched to the
previous assistant turn's calls by id, else by name, else in order.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from argoproxy.errors import ProxyError
from argoproxy.fronts.fields import array, field, string
from argoproxy.fronts.front import bad_request
from argoproxy.jsonfast import dumps

ROLES = ("system", "user", "assistant", "tool")
# options -> chat parameter (num_predict is read on its own: negative is no limit)
OPTIONS = {"temperature": ("temperature", "a number"), "top_p": ("top_p", "a number"), "top_k": ("top_k", "an integer"),
           "seed": ("seed", "an integer"), "presence_penalty": ("presence_penalty", "a number"),
           "frequency_penalty": ("frequency_penalty", "a number")}
THINK_LEVELS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}  # chat has no `max`
# The first bytes of an image, base64-encoded, and its type (Ollama sends no type with its images).
IMAGE_MAGIC = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"),
               ("Qk", "image/bmp"))


def bad(message: str, param: str) -> ProxyError:
    return bad_request(f"{param}: {message}", param)


def streams(body: Mapping[str, Any]) -> bool:
    """Ollama streams unless told not to."""
    value = body.get("stream")
    if value is not None and not isinstance(value, bool):
        raise bad("must be a boolean.", "stream")
    return value is not False


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/chat as a chat-completions body."""
    chat = common(body)
    messages = array(body, "messages", "messages", bad) or []
    chat["messages"] = turns(messages)
    tools = array(body, "tools", "tools", bad)
    if tools:
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
                raise bad("must be {type: function, function: {name, description, parameters}}.", f"tools[{i}]")
        chat["tools"] = [{"type": "function", "function": tool["function"]} for tool in tools]
    return chat


def generate_request(body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/generate as a chat-completions body: `system` and the prompt (with its images) as two turns.
    `template`, `context` (deprecated), `raw` and `keep_alive` concern a local runner: the prompt goes as written.
    `suffix` (fill in the middle) is refused: a chat upstream would answer it as if there were no suffix."""
    if body.get("suffix"):
        raise bad("fill-in-the-middle is not served through this proxy's chat upstream; leave `suffix` out.", "suffix")
    chat = common(body)
    messages: list[dict[str, Any]] = []
    system = string(body, "system", "system", bad)
    if system:
        messages.append({"role": "system", "content": system})
    prompt = string(body, "prompt", "prompt", bad) or ""
    images = array(body, "images", "images", bad)
    messages.append({"role": "user", "content": with_images(prompt, images, "images") if images else prompt})
    chat["messages"] = messages
    return chat


def common(body: dict[str, Any]) -> dict[str, Any]:
    """What /api/chat and /api/generate share: the model, the stream, options, format and think."""
    model = string(body, "model", "model", bad, required=True)
    chat: dict[str, Any] = {"model": model}
    if streams(body):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # eval_count and prompt_eval_count in the last line
    else:
        chat["stream"] = False
    options = field(body, "options", "an object", "options", bad)
    if options:
        read_options(options, chat)
    fmt = body.get("format")
    if fmt == "json":
        chat["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    elif fmt not in (None, ""):
        raise bad('must be "json" or a JSON schema object.', "format")
    think = body.get("think")
    if isinstance(think, str):
        if think.lower() not in THINK_LEVELS:
            raise bad(f"must be a boolean or one of {', '.join(THINK_LEVELS)}.", "think")
        chat["reasoning_effort"] = THINK_LEVELS[think.lower()]
    elif think is not None and not isinstance(think, bool):
        raise bad(f"must be a boolean or one of {', '.join(THINK_LEVELS)}.", "think")
    return chat


def thinks(body: Mapping[str, Any]) -> bool:
    """Does reasoning come back (`message.thinking`, `thinking`)? Unless `think: false`, as a thinking model
    on Ollama thinks unless told not to."""
    return body.get("think") is not False


def read_options(options: dict[str, Any], chat: dict[str, Any]) -> None:
    for name, (param, kind) in OPTIONS.items():
        value = field(options, name, kind, f"options.{name}", bad)
        if value is not None:
            chat[param] = value
    predict = field(options, "num_predict", "an integer", "options.num_predict", bad)
    if predict is not None and predict >= 0:  # -1: until done, -2: fill the context (no limit either way)
        chat["max_tokens"] = predict
    stop = options.get("stop")
    if isinstance(stop, str):
        chat["stop"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            chat["stop"] = stop
    elif stop is not None:
        raise bad("must be a string or an array of strings.", "options.stop")


def turns(messages: list[Any]) -> list[dict[str, Any]]:
    """Ollama's messages as chat messages: images as image parts, tool calls with JSON-string arguments and ids,
    tool results matched to their calls."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of the last assistant turn's calls not yet answered
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad("must be an object.", where)
        role = string(message, "role", f"{where}.role", bad, required=True)
        if role not in ROLES:
            raise bad(f"must be one of {', '.join(ROLES)}.", f"{where}.role")
        content = string(message, "content", f"{where}.content", bad) or ""
        images = array(message, "images", f"{where}.images", bad)
        if role == "assistant":
            turn: dict[str, Any] = {"role": "assistant", "content": content}
            calls = array(message, "tool_calls", f"{where}.tool_calls", bad)
            if calls:
                turn["tool_calls"] = [tool_call(c, f"{where}.tool_calls[{n}]", f"call_{i}_{n}")
                                      for n, c in enumerate(calls)]
                pending = [(c["id"], c["function"]["name"]) for c in turn["tool_calls"]]
            out.append(turn)
        elif role == "tool":
            out.append(tool_result(message, content, pending, where))
        else:
            out.append({"role": role, "content": with_images(content, images, f"{where}.images") if images
                        else content})
    return out


def tool_call(call: Any, where: str, default_id: str) -> dict[str, Any]:
    """An Ollama tool call ({id?, function: {name, arguments: object}}) as a chat one (arguments: a string)."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise bad("must be {function: {name, arguments}}.", where)
    function = call["function"]
    name = string(function, "name", f"{where}.function.name", bad, required=True)
    arguments = function.get("arguments")
    if arguments is None:
        arguments = {}
    text = arguments if isinstance(arguments, str) else dumps(arguments).decode()
    call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else default_id
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def tool_result(message: dict[str, Any], content: str, pending: list[tuple[str, str]], where: str) -> dict[str, Any]:
    """A tool's result, as the answer to the call it names (by id, else by its tool's name, else the first call
    not answered yet); with no call to answer, said as the user's text (a chat upstream refuses a tool message
    that answers no call)."""
    call_id = string(message, "tool_call_id", f"{where}.tool_call_id", bad)
    name = string(message, "tool_name", f"{where}.tool_name", bad) or string(message, "name", f"{where}.name", bad)
    match = next((p for p in pending if call_id and p[0] == call_id), None) \
        or next((p for p in pending if name and p[1] == name), None) or (pending[0] if pending else None)
    if match is None:
        return {"role": "user", "content": f"Result of the tool {name or 'call'}:\n{content}"}
    pending.remove(match)
    return {"role": "tool", "tool_call_id": match[0], "content": content}


def with_images(text: str, images: list[Any], where: str) -> list[dict[str, Any]]:
    """A text and base64 images as chat content parts (images as data: URLs)."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for n, image in enumerate(images):
        if not isinstance(image, str) or not image:
            raise bad("must be a base64 string.", f"{where}[{n}]")
        parts.append({"type": "image_url", "image_url": {"url": f"data:{image_type(image, f'{where}[{n}]')};base64,"
                                                                 f"{image}"}})
    return parts


def image_type(data: str, where: str) -> str:
    """The MIME type of a base64 image, from its first bytes (a data: URL given as it is keeps its own)."""
    if data.startswith("data:"):
        raise bad("must be base64 data, without a data: prefix.", where)
    for magic, kind in IMAGE_MAGIC:
        if data.startswith(magic):
            return kind
    try:
        base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad("must be a base64 string.", where) from None
    return "image/png"  # an unknown kind: servers read the data itself


def embed_request(body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/embed: `input` (a string or strings) as an embeddings request; `dimensions` kept, `truncate`
    left to the upstream (OpenAI-compatible servers truncate or refuse on their own)."""
    model = string(body, "model", "model", bad, required=True)
    value = body.get("input")
    if isinstance(value, str):
        inputs = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        inputs = value
    else:
        raise bad("must be a string or a non-empty array of strings.", "input")
    out: dict[str, Any] = {"model": model, "input": inputs}
    dimensions = field(body, "dimensions", "an integer", "dimensions", bad)
    if dimensions is not None:
        out["dimensions"] = dimensions
    return out


def embeddings_request(body: dict[str, Any]) -> dict[str, Any]:
    """POST /api/embeddings (legacy): one `prompt` as an embeddings request."""
    model = string(body, "model", "model", bad, required=True)
    prompt = string(body, "prompt", "prompt", bad, required=True)
    return {"model": model, "input": [prompt]}
