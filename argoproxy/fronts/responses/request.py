"""A Responses create request -> the internal chat-completions request: the model, the instructions, the input
(input_items.py), the tools and tool_choice (tools.py), the settings, the output format and the reasoning effort;
what needs stored responses refused (argoproxy/state/ serves the stateful requests)."""

from __future__ import annotations

from typing import Any

from argoproxy.fronts.fields import boolean, obj, string
from argoproxy.fronts.front import bad_request
from argoproxy.fronts.responses.input_items import input_messages
from argoproxy.fronts.responses.tools import ChatTools, field_error


# Request fields a stateless chat-backed door cannot honour.
STATEFUL = ("previous_response_id", "conversation")
SUMMARIES = ("auto", "concise", "detailed")  # reasoning.summary's values
# `include`'s values, as the API lists them. Honoured: the chat upstream's logprobs, the reasoning sealed by the
# proxy, input image URLs (kept as sent). The hosted tools' (file search, web search, code interpreter, computer
# use) have nothing to add: a chat upstream runs none of them, so no such item is ever answered.
INCLUDABLE = ("file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
              "message.input_image.image_url", "computer_call_output.output.image_url",
              "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs")


def request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses create request as a chat-completions request body."""
    return translate(body)[0]


def translate(body: dict[str, Any]) -> tuple[dict[str, Any], ChatTools]:
    """A Responses create request as a chat-completions request body, and its tools' bookkeeping (the names
    its calls come back under, the tools dropped)."""
    model = model_named(body)
    refuse_stateful(body)
    messages = instructions_messages(body)
    tools = ChatTools()
    if body.get("tools") is not None:
        tools.add_all(body["tools"], "tools")
    messages.extend(input_messages(body.get("input"), tools))
    chat: dict[str, Any] = {"model": model, "messages": messages}
    tools_to_request(body, chat, tools)
    settings_to_chat(body, chat)
    stream_to_chat(body, chat)
    return chat, tools


def model_named(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("You must provide a model parameter.", "model", "missing_required_parameter")
    return model


def refuse_stateful(body: dict[str, Any]) -> None:
    """What needs stored responses is refused here: argoproxy/state/ serves the stateful requests."""
    for name in STATEFUL:
        if body.get(name) is not None:
            raise bad_request(f"`{name}` needs stored responses, and this proxy stores none (it is stateless: "
                              "send the whole conversation in `input`).", name, "unsupported_parameter")
    if "background" in body and boolean(body, "background", "background", field_error):
        raise bad_request("`background` responses need a store; this proxy is stateless.", "background",
                          "unsupported_parameter")


def instructions_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`instructions` as the system message that opens the chat messages (none when empty)."""
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        return [{"role": "system", "content": instructions}]
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("`instructions` must be a string.", "instructions")
    return []


def tools_to_request(body: dict[str, Any], chat: dict[str, Any], tools: ChatTools) -> None:
    """The tools as chat functions, tool_choice as chat's, parallel_tool_calls when there is a tool to call."""
    if tools.functions:
        chat["tools"] = tools.functions
    if body.get("tool_choice") is not None:
        choice_to_chat(body["tool_choice"], chat, tools)
    if chat.get("tools") and body.get("parallel_tool_calls") is not None:  # without tools: nothing to call
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]


def choice_to_chat(given: Any, chat: dict[str, Any], tools: ChatTools) -> None:
    choice = tools.choice(given)
    allowed = tools.allowed(given)
    if allowed is not None:  # only those are offered: chat servers know no allowed_tools
        chat["tools"] = [f for f in chat.get("tools", ()) if f["function"]["name"] in allowed]
        if not chat["tools"]:
            del chat["tools"]
            choice = None
    if choice is not None:
        chat["tool_choice"] = choice


# Request fields -> the chat request's, copied when not null.
SETTINGS = (("temperature", "temperature"), ("top_p", "top_p"), ("max_output_tokens", "max_tokens"),
            ("user", "user"), ("safety_identifier", "user"), ("top_logprobs", "top_logprobs"))


def settings_to_chat(body: dict[str, Any], chat: dict[str, Any]) -> None:
    """Sampling, the token limit, the user, logprobs, the output format and the reasoning effort."""
    for src, dst in SETTINGS:
        if body.get(src) is not None:
            chat[dst] = body[src]
    if "top_logprobs" in chat or "message.output_text.logprobs" in included(body):
        chat["logprobs"] = True  # chat servers refuse top_logprobs without it
    if "text" in body:
        fmt = obj(obj(body, "text", "text", field_error) or {}, "format", "text.format", field_error)
        response_format = format_to_chat(fmt) if fmt is not None else None
        if response_format is not None:
            chat["response_format"] = response_format
    if "reasoning" in body:
        reasoning_to_chat(body, chat)


def reasoning_to_chat(body: dict[str, Any], chat: dict[str, Any]) -> None:
    effort = string(obj(body, "reasoning", "reasoning", field_error) or {}, "effort", "reasoning.effort",
                    field_error)
    if effort is not None:
        chat["reasoning_effort"] = effort
    summary_asked(body)  # checked here, read by the answer


def stream_to_chat(body: dict[str, Any], chat: dict[str, Any]) -> None:
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    elif body.get("stream") not in (None, False):
        raise bad_request("`stream` must be true or false.", "stream")


def included(body: dict[str, Any]) -> tuple[str, ...]:
    """`include`: values the API lists (anything else is its 400 invalid_value, param include)."""
    value = body.get("include")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request("`include` must be a list of strings.", "include", "invalid_type")
    for v in value:
        if v not in INCLUDABLE:
            raise bad_request(f"Invalid value for `include`: {v!r}. Supported values are: {', '.join(INCLUDABLE)}.",
                              "include", "invalid_value")
    return tuple(value)


def summary_asked(body: dict[str, Any]) -> str | None:
    """reasoning.summary (or its deprecated name, generate_summary): auto, concise or detailed, or None."""
    if "reasoning" not in body:  # most requests: asked for each answer object
        return None
    reasoning = obj(body, "reasoning", "reasoning", field_error) or {}
    for name in ("summary", "generate_summary"):
        value = string(reasoning, name, f"reasoning.{name}", field_error)
        if value is not None:
            if value not in SUMMARIES:
                raise bad_request(f"`reasoning.{name}` must be one of {', '.join(SUMMARIES)}.", f"reasoning.{name}")
            return value
    return None


def format_to_chat(fmt: dict[str, Any]) -> dict[str, Any] | None:
    """text.format -> response_format (json_schema's fields sit directly in format here, nested in chat)."""
    kind = string(fmt, "type", "text.format.type", field_error)
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        string(fmt, "name", "text.format.name", field_error)
        obj(fmt, "schema", "text.format.schema", field_error)
        boolean(fmt, "strict", "text.format.strict", field_error)
        string(fmt, "description", "text.format.description", field_error)
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        schema.setdefault("name", "output")
        return {"type": "json_schema", "json_schema": schema}
    raise bad_request("`text.format.type` must be text, json_object or json_schema.", "text.format.type")
