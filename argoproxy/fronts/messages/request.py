"""A Messages create (or count_tokens) request -> the internal chat-completions request: the model and
max_tokens, the system prompt and the turns (content.py), the tools (tools.py), stop sequences, sampling, the user,
the output format and the reasoning effort."""

from __future__ import annotations

from typing import Any, Mapping

from argoproxy.fronts.fields import boolean, checked, field, obj, string
from argoproxy.fronts.messages.content import message_to_chat
from argoproxy.fronts.messages.errors import bad
from argoproxy.fronts.messages.shapes import COUNT_REQUEST, REQUEST, cache_control, text_fields
from argoproxy.fronts.messages.tools import tool_choice_to_chat, tool_names, tools_to_chat
from argoproxy.pipeline.adapt import REASONING_OFF, thinking_effort


# The fields Anthropic's document types without null (it allows null for cache_control, container and
# inference_geo alone): a null one is refused as the API refuses it, not read as the field left out.
NOT_NULL = ("max_tokens", "messages", "metadata", "model", "output_config", "service_tier", "stop_sequences",
            "stream", "system", "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p")
NOT_NULL_IN_COUNT = ("messages", "model", "output_config", "system", "thinking", "tool_choice", "tools")


def refuse_nulls(body: dict[str, Any], count_only: bool) -> None:
    for key in NOT_NULL_IN_COUNT if count_only else NOT_NULL:
        if key in body and body[key] is None:
            raise bad("must not be null (leave the field out instead).", key)


def request_to_chat(body: dict[str, Any], *, count_only: bool = False,
                    dropped: dict[str, None] | None = None) -> dict[str, Any]:
    """A Messages create (or count_tokens) request as a chat-completions request body (dropped: where the
    types of the tools left out are noted, in order)."""
    dropped = {} if dropped is None else dropped
    refuse_nulls(body, count_only)
    checked(body, COUNT_REQUEST if count_only else REQUEST, "", bad)
    model = model_named(body)
    max_tokens = None if count_only else max_tokens_of(body)
    cache_control(body, "", bad)
    chat: dict[str, Any] = {"model": model, "messages": chat_messages(body)}
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    tools_to_request(body, chat, dropped)
    options_to_chat(body, chat)
    if count_only:
        chat.pop("reasoning_effort", None)  # a count asks for no answer
    if boolean(body, "stream", "stream", bad) and not count_only:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def model_named(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("Field required: a model name.", "model")
    return model


def max_tokens_of(body: Mapping[str, Any]) -> int:
    max_tokens = body.get("max_tokens")
    if type(max_tokens) is not int or max_tokens < 1:
        raise bad("Field required: a positive integer." if max_tokens is None else "must be a positive integer.",
                   "max_tokens")
    return max_tokens


def chat_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The system prompt and the turns as chat messages."""
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise bad("Field required: a non-empty list of messages.", "messages")
    messages: list[dict[str, Any]] = []
    system = system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(raw_messages):
        messages.extend(message_to_chat(message, f"messages.{i}"))
    return messages


def tools_to_request(body: Mapping[str, Any], chat: dict[str, Any], dropped: dict[str, None]) -> None:
    """The client tools as chat functions, and tool_choice as chat's (when any tool is left to choose)."""
    if body.get("tools") is not None:
        functions = tools_to_chat(body["tools"], dropped)
        if functions:
            chat["tools"] = functions
    choice = obj(body, "tool_choice", "tool_choice", bad)
    if choice is None:
        return
    chat_choice, parallel = tool_choice_to_chat(choice)
    if isinstance(chat_choice, dict) and dropped and choice["name"] in tool_names(body["tools"], dropped):
        chat_choice = "auto"  # it names a server tool, left out with its kind
    if not chat.get("tools"):  # no tools (all dropped): nothing to choose from
        return
    if chat_choice is not None:
        chat["tool_choice"] = chat_choice
    if parallel is not None:
        chat["parallel_tool_calls"] = parallel


def options_to_chat(body: Mapping[str, Any], chat: dict[str, Any]) -> None:
    """Stop sequences, sampling, the user, the output format, the reasoning effort thinking asks for."""
    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise bad("must be a list of strings.", "stop_sequences")
        chat["stop"] = stops
    field(body, "top_k", "an integer", "top_k", bad)  # temperature and top_p: the chat request's checks
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            chat[key] = body[key]
    user_id = string(obj(body, "metadata", "metadata", bad) or {}, "user_id", "metadata.user_id", bad)
    if user_id:
        chat["user"] = user_id
    response_format = output_format(body)
    if response_format is not None:
        chat["response_format"] = response_format
    effort = reasoning_effort(body)
    if effort is not None:
        chat["reasoning_effort"] = effort


def reasoning_effort(body: Mapping[str, Any]) -> str | None:
    """`thinking` as the chat request's reasoning_effort (adapt.thinking_effort; docs/client-apis.md's table):
    with thinking on, output_config.effort (Claude Code sends it with adaptive thinking) says how much."""
    thinking = obj(body, "thinking", "thinking", bad)
    if thinking is None:
        return None
    kind = string(thinking, "type", "thinking.type", bad, required=True)
    effort = thinking_effort(kind, thinking.get("budget_tokens"))
    asked = (body.get("output_config") or {}).get("effort")
    if effort not in (None, REASONING_OFF) and isinstance(asked, str):
        return asked
    return effort


def output_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """output_config.format (a JSON schema the answer must follow) as the chat response_format."""
    config = obj(body, "output_config", "output_config", bad) or {}
    fmt = obj(config, "format", "output_config.format", bad)
    if fmt is None or string(fmt, "type", "output_config.format.type", bad, required=True) != "json_schema":
        return None
    schema = obj(fmt, "schema", "output_config.format.schema", bad, required=True)
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def thinking_requested(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def system_text(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, list):
        raise bad("must be a string or a list of text blocks.", "system")
    texts = []
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad("system blocks must be text blocks.", f"system.{j}")
        text_fields(block, f"system.{j}", bad)
        texts.append(string(block, "text", f"system.{j}.text", bad, required=True))
    return "\n\n".join(t for t in texts if t)
