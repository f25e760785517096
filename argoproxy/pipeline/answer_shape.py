"""The shape of an upstream chat answer, checked before the proxy reads it.

Translators (stream aggregation, the Responses and Messages front doors, packaging a whole answer as a stream)
read `choices[i].message`, `delta`, `tool_calls[j].function`, `index` and `usage` as the OpenAI format defines
them. A server that sends something else (a broken or hostile upstream) gets a 502 `upstream_bad_response`
here, or an error event once a stream has begun, instead of an exception deep in a translator (a 500 of the
proxy's own, or a stream cut without a word). Only what is read is checked, and only where the proxy parses
the answer anyway: a relayed answer is never parsed for this.
"""

from __future__ import annotations

from typing import Any

from argoproxy.edge.request_body import containers
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import loads
from argoproxy.upstream import sse

_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def check_completion(obj: dict[str, Any]) -> dict[str, Any]:
    """A whole chat.completion or text_completion; returned as it is when its shape is readable."""
    _check(obj, "message")
    return obj


def check_chunk(obj: dict[str, Any]) -> dict[str, Any]:
    """One chat.completion.chunk or text_completion chunk."""
    chunk_text(obj)
    return obj


def chunk_text(obj: dict[str, Any]) -> str | None:
    """check_chunk for a reader that takes the usual chunk's text at once: that text (plain_text), or None once
    the chunk's general shape is checked."""
    text = plain_text(obj)
    if text is None:
        _check(obj, "delta")
    return text


def plain_text(obj: dict[str, Any]) -> str | None:
    """The text of a chunk that carries nothing else a translator reads: one choice, index 0, no finish reason,
    a delta of `content` and at most its `role`, no usage (most of a stream). None for any other chunk, which
    the general reading takes. Such a chunk passes the shape check as it is."""
    choices = obj.get("choices")
    if type(choices) is not list or len(choices) != 1 or obj.get("usage") is not None:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason") is not None:
        return None
    index = choice.get("index", 0)  # as first_choice reads it: absent is 0, null is not
    if type(index) is not int or index != 0:
        return None
    delta = choice.get("delta")
    if type(delta) is not dict:
        return None
    content = delta.get("content")
    if type(content) is not str or not content or len(delta) > 2 or (len(delta) == 2 and "role" not in delta):
        return None
    return content


def event_chunk(item: bytes) -> dict[str, Any] | None:
    """The chunk an upstream SSE event holds, for a reader that builds on it (aggregation, the front doors):
    None for an event without one (a comment, a heartbeat such as `data: "ping"`), and upstream_bad_response
    for data that cannot be read as JSON (broken, cut, not UTF-8, nested too deeply). Relayed as it came, such
    an event reaches the client, which can tell; read, its text would be left out without a word, and the
    answer would end as if whole."""
    if len(item) > CHECKED_FROM:
        check_containers(item)
    obj = sse.sse_object(item)
    if obj is None:
        data = sse.block_data(item)
        if data is not None and data.strip() and not _json(data):
            raise bad_answer("an event's data could not be read as JSON")
    return obj


# An answer's JSON is read into Python objects, about 25 times its size when it is made of small arrays and
# objects: a 60 MB answer of them took 1.5 GB of a worker. Requests are bounded so (edge/request_body.py);
# an upstream's answer and stream events are too, from the size where it could matter.
MAX_CONTAINERS = 200_000
CHECKED_FROM = 256 * 1024  # bytes: smaller texts cannot hold enough containers to matter


def check_containers(raw: bytes) -> None:
    """upstream_bad_response for an answer or event holding more than MAX_CONTAINERS arrays and objects."""
    if containers(raw, MAX_CONTAINERS) > MAX_CONTAINERS:
        raise bad_answer(f"it holds more than {MAX_CONTAINERS:,} arrays and objects")


def bounded_loads(text: str) -> Any:
    """A JSON text an upstream wrote (a tool call's arguments), parsed within MAX_CONTAINERS."""
    if len(text) > CHECKED_FROM:
        check_containers(text.encode(errors="replace"))
    return loads(text)


def _json(data: bytes) -> bool:
    try:
        loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def bad_answer(what: str) -> ProxyError:
    return ProxyError(502, f"The upstream answer cannot be understood: {what}.", code="upstream_bad_response")


def _check(obj: dict[str, Any], part: str) -> None:
    choices = obj.get("choices")
    if choices is not None:
        if not isinstance(choices, list):
            raise bad_answer("`choices` is not a list")
        for choice in choices:
            _check_choice(choice, part)
    usage = obj.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            raise bad_answer("`usage` is not an object")
        for name in _COUNTS:
            value = usage.get(name)
            # a plain int in range at once (nearly every count: this runs for every whole answer), else _count
            if not (type(value) is int and -MAX_COUNT <= value <= MAX_COUNT or _count(value)):
                raise bad_answer(f"`usage.{name}` is not a number")


def _check_choice(choice: Any, part: str) -> None:
    if not isinstance(choice, dict):
        raise bad_answer("a choice is not an object")
    if type(choice.get("index", 0)) is not int and not _index(choice):  # a plain int at once, as above
        raise bad_answer("a choice's `index` is not a number")
    if not isinstance(choice.get("finish_reason"), (str, type(None))):
        raise bad_answer("a choice's `finish_reason` is not a string")
    message = choice.get(part)
    if message is None:
        return
    if not isinstance(message, dict):
        raise bad_answer(f"a choice's `{part}` is not an object")
    content = message.get("content")
    if not isinstance(content, (str, type(None))) and not (part == "message" and isinstance(content, list)):
        raise bad_answer(f"a choice's `{part}.content` is not a string")
    for name in _TEXTS:
        if not isinstance(message.get(name), (str, type(None))):
            raise bad_answer(f"a choice's `{part}.{name}` is not a string")
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise bad_answer("`tool_calls` is not a list")
        for call in calls:
            if not isinstance(call, dict) or not _index(call) \
                    or not isinstance(call.get("id"), (str, type(None))):
                raise bad_answer("a tool call is not an object with a `function` object")
            _check_function(call.get("function"), "a tool call's `function`")
    if message.get("function_call") is not None:
        _check_function(message["function_call"], "`function_call`")


def _check_function(function: Any, what: str) -> None:
    """A called function's name and arguments (the arguments are JSON text: an upstream that sends an object
    there is not followed by any client)."""
    if function is None:
        return
    if not isinstance(function, dict):
        raise bad_answer(f"{what} is not an object")
    for name in ("name", "arguments"):
        if not isinstance(function.get(name), (str, type(None))):
            raise bad_answer(f"{what}.{name} is not a string")


# Text members of a message or delta that translators and stream aggregation join as strings.
_TEXTS = ("refusal", "reasoning_content", "reasoning")


def _index(holder: dict[str, Any]) -> bool:
    """Absent (readers take 0, or the position), or a whole number; null is neither (readers would skip the
    choice, or fail to order it among the others)."""
    index = holder.get("index", 0)
    return isinstance(index, int) and not isinstance(index, bool)


MAX_COUNT = 2 ** 53  # tokens no answer has; past it a count is no longer a float (metrics failed on 10^400)


def _count(value: Any) -> bool:
    """Absent, or a whole number no larger than MAX_COUNT (bool is not one)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_COUNT)
