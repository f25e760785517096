"""The shape of a request in the internal chat format (the chat door's body, or what an API door translated to),
checked before anything goes upstream: the sequence's own request format, as answer_shape.py is its answers'.

`validate` checks what OpenAI's API itself would reject, so that a bad request costs no upstream call and
the client gets a 400 naming the parameter (`param`, in OpenAI's `messages[0].content` style). Fields it
does not know are left alone: upstreams have their own extensions (top_k, repetition_penalty,
chat_template_kwargs...). Values may be null where OpenAI treats null as "not given". It runs on every
request, so it only looks at fields that are present and does no allocation on the good path.
"""

from __future__ import annotations

from typing import Any, Callable

from argoproxy.errors import ProxyError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Roles whose message may have null (or no) content: an assistant turn that only calls tools, for example.
NULL_CONTENT_ROLES = frozenset({"assistant"})

# name -> (low, high, integer?) ; None = unbounded
_NUMBERS: dict[str, tuple[float | None, float | None, bool]] = {
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, False),
    "n": (1, None, True),
    "max_tokens": (1, None, True),
    "max_completion_tokens": (1, None, True),
    "presence_penalty": (-2.0, 2.0, False),
    "frequency_penalty": (-2.0, 2.0, False),
    "top_logprobs": (0, 20, True),
    "best_of": (1, None, True),
}


# Optional top-level fields and the JSON types they must have when present and not null (OpenAI's API
# refuses other types; a backend that translates them, e.g. tools for ARGO, relies on them).
_TYPES: dict[str, tuple[type, ...]] = {
    "user": (str,), "seed": (int,), "response_format": (dict,), "logit_bias": (dict,), "tools": (list,),
    "tool_choice": (str, dict), "functions": (list,), "function_call": (str, dict), "metadata": (dict,),
    "suffix": (str,), "encoding_format": (str,), "dimensions": (int,), "reasoning_effort": (str,),
    "modalities": (list,),
}


def _bad(message: str, param: str, code: str = "invalid_value") -> ProxyError:
    return ProxyError(400, message, param=param, code=code)


def validate(kind: str, body: dict[str, Any]) -> None:
    """Raise a 400 naming the offending parameter; unknown extra fields are left alone."""
    model = body.get("model")
    # No model is allowed here: LLM_PARAMS `model=default` may apply, single-model servers (llama.cpp, vLLM)
    # accept it, and backends that need one say so after LLM_PARAMS (require_model).
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _bad("`model` must be a non-empty string.", "model")
    _input(kind, body)
    checks = _CHAT_CHECKS if kind == "chat" else _CHECKS
    try:
        # the members the body has, each looked up once (a request names a few of the thirty checked)
        for name, value in body.items():
            named = checks.get(name)
            if named is not None:
                for check in named:
                    check(name, value)
    except ProxyError:
        _first_problem(kind, body)  # several problems: the one reported is the first in the checks' order
        raise


def _first_problem(kind: str, body: dict[str, Any]) -> None:
    """Raise the first of a body's problems in the order the checks are listed."""
    for name, check in _CHAT_ORDER if kind == "chat" else _ORDER:
        if name in body:
            check(name, body[name])


Check = Callable[[str, Any], None]  # a member's value (None: not given) checked: a 400 naming it when it is wrong


def _switch(name: str, value: Any) -> None:
    if value is not None and type(value) is not bool:
        raise _bad(f"`{name}` must be true or false.", name)


def _typed(types: tuple[type, ...]) -> Check:
    def check(name: str, value: Any) -> None:
        if value is not None and (type(value) not in types or type(value) is bool):
            raise _bad(f"`{name}` must be {' or '.join(_TYPE_NAMES[t] for t in types)}, not {_json_type(value)}.",
                       name)
    return check


def _bounded(low: float | None, high: float | None, integer: bool) -> Check:
    return lambda name, value: _number(name, value, low, high, integer)


def _stream_options(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise _bad("`stream_options` must be an object.", "stream_options")


def _tool_list(name: str, value: Any) -> None:
    if type(value) is list:
        _tools(value)


def _response_format(name: str, value: Any) -> None:
    if type(value) is dict and type(value.get("type")) is not str:
        _format_type(value.get("type"))


def _order(switches: tuple[str, ...]) -> tuple[tuple[str, Check], ...]:
    """Every member checked and its check, in the order a body's problems are looked for."""
    return (*((name, _bounded(*bounds)) for name, bounds in _NUMBERS.items()),
            *((name, _switch) for name in switches),
            ("stop", lambda name, value: _stop(value)), ("stream_options", _stream_options),
            *((name, _typed(types)) for name, types in _TYPES.items()),
            ("tools", _tool_list), ("response_format", _response_format))


def _by_name(order: tuple[tuple[str, Check], ...]) -> dict[str, tuple[Check, ...]]:
    checks: dict[str, tuple[Check, ...]] = {}
    for name, check in order:
        checks[name] = checks.get(name, ()) + (check,)
    return checks


# The true-or-false fields (logprobs is one in chat; completions take a number).
_SWITCHES = ("stream", "echo", "parallel_tool_calls", "store")
_ORDER = _order(_SWITCHES)
_CHAT_ORDER = _order(_SWITCHES + ("logprobs",))
_CHECKS = _by_name(_ORDER)
_CHAT_CHECKS = _by_name(_CHAT_ORDER)


def _input(kind: str, body: dict[str, Any]) -> None:
    """What each kind of request is about: chat's messages, a completion's prompt, the input to embed."""
    if kind == "chat":
        _messages(body.get("messages"))
    elif kind == "completions":
        if "prompt" in body and body["prompt"] is not None:
            _prompt(body["prompt"], "prompt")
    elif kind == "embeddings":
        if body.get("input") is None:
            raise _bad("You must provide an input parameter.", "input", "missing_required_parameter")
        _prompt(body["input"], "input")


def _format_type(format_type: Any) -> None:
    """response_format.type when it is not a string: OpenAI's 400 (llama.cpp's server answers a 500 to it)."""
    if format_type is None:
        raise _bad("`response_format` has no `type` (text, json_object or json_schema).", "response_format.type",
                   "missing_required_parameter")
    raise _bad(f"`response_format.type` must be a string, not {_json_type(format_type)}.", "response_format.type")


def _number(name: str, value: Any, low: float | None, high: float | None, integer: bool) -> None:
    if value is None:
        return
    kind = type(value)
    if kind is bool or kind not in (int, float) or (integer and kind is float and not value.is_integer()):
        raise _bad(f"`{name}` must be {'an integer' if integer else 'a number'}, not {_json_type(value)}.", name)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise _bad(f"`{name}` must be at least {low:g}, got {value}.", name)
        raise _bad(f"`{name}` must be between {low:g} and {high:g}, got {value}.", name)


def _messages(messages: Any) -> None:
    if messages is None:
        raise _bad("You must provide a messages parameter.", "messages", "missing_required_parameter")
    if type(messages) is not list:
        raise _bad(f"`messages` must be a list of message objects, not {_json_type(messages)}.", "messages")
    if not messages:
        raise _bad("`messages` must contain at least one message.", "messages")
    for i, message in enumerate(messages):
        if type(message) is not dict:
            raise _bad(f"Each message must be an object; messages[{i}] is {_json_type(message)}.", f"messages[{i}]")
        role = message.get("role")
        if type(role) is not str or role not in ROLES:
            if role is None:
                raise _bad(f"messages[{i}] has no `role`.", f"messages[{i}].role", "missing_required_parameter")
            raise _bad(f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}; got {_short(role)}.",
                       f"messages[{i}].role")
        if len(message) > 2 or "content" not in message:  # more than its role and content
            _message_fields(message, i)
        content = message.get("content")
        if type(content) is str:
            continue
        if content is None:
            if role in NULL_CONTENT_ROLES:
                continue
            raise _bad(f"messages[{i}] ({role}) must have `content`.", f"messages[{i}].content",
                       "missing_required_parameter")
        if type(content) is not list:
            raise _bad(f"messages[{i}].content must be a string or a list of content parts, not {_json_type(content)}.",
                       f"messages[{i}].content")
        for j, part in enumerate(content):
            if type(part) is not dict or type(part.get("type")) is not str:
                raise _bad(f"messages[{i}].content[{j}] must be an object with a string `type` "
                           "(text, image_url, input_audio, file...).", f"messages[{i}].content[{j}]")
            _part(part, f"messages[{i}].content[{j}]")


def _message_fields(message: dict[str, Any], i: int) -> None:
    """The optional fields of one message: name, tool_call_id, tool_calls, function_call."""
    for name in ("name", "tool_call_id"):
        value = message.get(name)
        if value is not None and type(value) is not str:
            raise _bad(f"messages[{i}].{name} must be a string, not {_json_type(value)}.", f"messages[{i}].{name}")
    calls = message.get("tool_calls")
    if calls is not None:
        if type(calls) is not list:
            raise _bad(f"messages[{i}].tool_calls must be a list, not {_json_type(calls)}.", f"messages[{i}].tool_calls")
        for k, call in enumerate(calls):
            where = f"messages[{i}].tool_calls[{k}]"
            if type(call) is not dict:
                raise _bad(f"{where} must be an object, not {_json_type(call)}.", where)
            _function(call.get("function"), f"{where}.function", arguments=True)
            if call.get("id") is not None and type(call["id"]) is not str:
                raise _bad(f"{where}.id must be a string.", f"{where}.id")
    if message.get("function_call") is not None:
        _function(message["function_call"], f"messages[{i}].function_call", arguments=True)


def _function(value: Any, where: str, arguments: bool = False) -> None:
    """A {"name": str, "arguments": str} object (arguments only in calls); absent is allowed."""
    if value is None:
        return
    if type(value) is not dict:
        raise _bad(f"{where} must be an object, not {_json_type(value)}.", where)
    name = value.get("name")
    if name is not None and type(name) is not str:
        raise _bad(f"{where}.name must be a string.", f"{where}.name")
    if arguments and value.get("arguments") is not None and type(value["arguments"]) is not str:
        raise _bad(f"{where}.arguments must be a JSON string.", f"{where}.arguments")


def _part(part: dict[str, Any], where: str) -> None:
    """The fields of the content-part types the proxy itself reads (text, image_url)."""
    kind = part["type"]
    if kind == "text" and type(part.get("text")) is not str:
        raise _bad(f"{where}.text must be a string.", f"{where}.text")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if type(image) is dict else image
        if type(url) is not str:
            raise _bad(f"{where}.image_url must be an object with a string `url`.", f"{where}.image_url")


def _tools(tools: list[Any]) -> None:
    for k, tool in enumerate(tools):
        if type(tool) is not dict:
            raise _bad(f"tools[{k}] must be an object, not {_json_type(tool)}.", f"tools[{k}]")
        if tool.get("type") is not None and type(tool["type"]) is not str:
            raise _bad(f"tools[{k}].type must be a string.", f"tools[{k}].type")
        _function(tool.get("function"), f"tools[{k}].function")


def _prompt(value: Any, param: str) -> None:
    """A string, a list of strings, a list of token ids, or a list of token-id lists (OpenAI's four forms)."""
    if type(value) is str:
        return
    if type(value) is not list or not value:
        what = "an empty list" if value == [] else _json_type(value)
        raise _bad(f"`{param}` must be a string, a list of strings or a list of token ids; got {what}.", param)
    first = type(value[0])
    if first is str:
        ok = all(type(v) is str for v in value)
    elif first is int:
        ok = all(type(v) is int for v in value)
    elif first is list:
        ok = all(type(v) is list and v and all(type(t) is int for t in v) for v in value)
    else:
        ok = False
    if not ok:
        raise _bad(f"`{param}` must be a string, a list of strings or a list of token ids.", param)


def _stop(value: Any) -> None:
    if value is None or type(value) is str:
        return
    if type(value) is list and all(type(v) is str for v in value):
        return
    raise _bad("`stop` must be a string or a list of strings.", "stop")


_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
