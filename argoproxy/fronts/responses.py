"""The OpenAI Responses API front door (POST /v1/responses), stateless: request -> chat completions, and a
chat.completion (or its chunks) -> a `response` object (or the Responses stream events).

The translation is stateless: stored responses (`store`, `previous_response_id`, `conversation`,
`item_reference` items, `background`) are argoproxy/state/'s, which hands this door the whole history in `input`
and saves what it answers (Exchange.state and Exchange.keeper); with RESPONSES_STORE off a request that needs
them is a 400 naming the parameter. Reasoning text (reasoning_content or reasoning, or <think> text the think
transform moved there) becomes a `reasoning` item: its `summary` (summary_text) when the request set
`reasoning.summary`, its `content` (reasoning_text) otherwise. A chat upstream makes no summary of its own: the
summary is the reasoning itself. Reasoning items a client replays in `input` are dropped (a chat upstream cannot
take them back).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps, encode_read_text
from argoproxy.fronts.front import (COMPACT, DoorArgs, DoorRoute, Exchange, Front, Pieces, StreamState, bad_request,
                                    first_choice, new_id,
                                    whole_answer)
from argoproxy.fronts.fields import boolean, checked, obj, one_of, string
from argoproxy.pipeline.adapt import Shape
from argoproxy.fronts import long_strings, responses_compact as compact
from argoproxy.pipeline.reservation import Spelled
from argoproxy.fronts.responses_tools import (HOSTED_CALL_ITEMS, ChatTools, chat_name, custom_input, field_error,
                                              output_item_id, replayed_call)
from argoproxy.fronts.responses_shapes import is_item_reference, item_status

# Input items of the built-in tools a client runs itself, replayed as chat tool calls and tool messages.
CLIENT_CALL_ITEMS = ("custom_tool_call", "local_shell_call", "shell_call", "apply_patch_call", "computer_call")
CLIENT_OUTPUT_ITEMS = ("local_shell_call_output", "shell_call_output", "apply_patch_call_output")
SCREENSHOT = {"type": one_of("computer_screenshot")}  # a computer call's output
NO_TOOLS = ChatTools()  # a request without tools: every call is a plain function call

# Request fields a stateless chat-backed door cannot honour.
STATEFUL = ("previous_response_id", "conversation")
SUMMARIES = ("auto", "concise", "detailed")  # reasoning.summary's values
# `include`'s values, as the API lists them. Honoured: the chat upstream's logprobs, the reasoning sealed by the
# proxy, input image URLs (kept as sent). The hosted tools' (file search, web search, code interpreter, computer
# use) have nothing to add: a chat upstream runs none of them, so no such item is ever answered.
INCLUDABLE = ("file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
              "message.input_image.image_url", "computer_call_output.output.image_url",
              "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs")
# Request fields echoed in the response object as they came (null when absent).
ECHOED = ("instructions", "max_output_tokens", "max_tool_calls", "metadata", "prompt_cache_key", "safety_identifier")
# Sampling settings a response object reports, with what it says when the request left one out: the API's
# defaults (Open Responses requires each as a number; OpenAI's documents them so).
SAMPLING = (("temperature", 1.0), ("top_p", 1.0), ("presence_penalty", 0.0), ("frequency_penalty", 0.0),
            ("top_logprobs", 0))
# The fields a function tool is echoed with (Open Responses requires each, null when not given).
FUNCTION_TOOL = {"description": None, "parameters": None, "strict": None}
# The error codes a response object's `error` may carry (OpenAI's ResponseErrorCode); any other is a server_error
# (the event that ended the stream keeps the precise one).
ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt", "invalid_image",
                         "invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large",
                         "image_too_small", "image_parse_error", "unsupported_image_media_type",
                         "failed_to_download_image"})
# A text delta as encode_event writes it: its sequence number, its item's part (ResponseStream.text), its text's JSON.
TEXT_DELTA = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d'
              b'%b%b,"logprobs":[]}\n\n')
# Any other event: its type, its JSON.
EVENT = b"event: %b\ndata: %b\n\n"
# An event that carries the response object: its type, twice, its sequence number, the object's JSON.
WRAPPED = b'event: %b\ndata: {"type":"%b","sequence_number":%d,"response":%b}\n\n'
# Characters of a text a stream keeps as a piece of its own (smaller ones are joined, COMPACT at a time).
RUN_PIECE = 4096
# Characters of output (text, reasoning, tool calls) up to which no string a stream's events hold from it can
# pass long_strings.SLICE, even sealed (reasoning.encrypted_content: JSON-escaped, compressed, base64).
SHORT_OUTPUT = long_strings.SLICE // 32


# ---------------------------------------------------------------------------------------------- request

def request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses create request as a chat-completions request body."""
    return translate(body)[0]


def translate(body: dict[str, Any]) -> tuple[dict[str, Any], ChatTools]:
    """A Responses create request as a chat-completions request body, and its tools' bookkeeping (the names
    its calls come back under, the tools dropped)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("You must provide a model parameter.", "model", "missing_required_parameter")
    for name in STATEFUL:
        if body.get(name) is not None:
            raise bad_request(f"`{name}` needs stored responses, and this proxy stores none (it is stateless: "
                              "send the whole conversation in `input`).", name, "unsupported_parameter")
    if "background" in body and boolean(body, "background", "background", field_error):
        raise bad_request("`background` responses need a store; this proxy is stateless.", "background",
                          "unsupported_parameter")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise bad_request("`instructions` must be a string.", "instructions")
    tools = ChatTools()
    if body.get("tools") is not None:
        tools.add_all(body["tools"], "tools")
    messages.extend(input_messages(body.get("input"), tools))
    chat: dict[str, Any] = {"model": model, "messages": messages}
    if tools.functions:
        chat["tools"] = tools.functions
    if body.get("tool_choice") is not None:
        choice = tools.choice(body["tool_choice"])
        allowed = tools.allowed(body["tool_choice"])
        if allowed is not None:  # only those are offered: chat servers know no allowed_tools
            chat["tools"] = [f for f in chat.get("tools", ()) if f["function"]["name"] in allowed]
            if not chat["tools"]:
                del chat["tools"]
                choice = None
        if choice is not None:
            chat["tool_choice"] = choice
    if chat.get("tools") and body.get("parallel_tool_calls") is not None:  # without tools: nothing to call
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    for src, dst in (("temperature", "temperature"),
                     ("top_p", "top_p"), ("max_output_tokens", "max_tokens"), ("user", "user"),
                     ("safety_identifier", "user"), ("top_logprobs", "top_logprobs")):
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
        effort = string(obj(body, "reasoning", "reasoning", field_error) or {}, "effort", "reasoning.effort",
                        field_error)
        if effort is not None:
            chat["reasoning_effort"] = effort
        summary_asked(body)  # checked here, read by the answer
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    elif body.get("stream") not in (None, False):
        raise bad_request("`stream` must be true or false.", "stream")
    return chat, tools


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


def sealed_reasoning(item: dict[str, Any], text: str, ex: Exchange) -> dict[str, Any]:
    """A reasoning item with its `encrypted_content` when the request included reasoning.encrypted_content: the
    reasoning sealed by the proxy (responses_compact.Seal), which a stateless client sends back whole."""
    if "reasoning.encrypted_content" in included(ex.request):
        item["encrypted_content"] = compact.SEAL.seal("reasoning", text)
    return item


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


def input_messages(value: Any, tools: ChatTools | None = None) -> list[dict[str, Any]]:
    """`input` (a string, or items) as chat messages (tools: where `additional_tools` items and dropped
    hosted-tool items are noted)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if value is None:
        raise bad_request("You must provide an input parameter.", "input", "missing_required_parameter")
    if not isinstance(value, list):
        raise bad_request("`input` must be a string or a list of items.", "input")
    tools = tools if tools is not None else ChatTools()
    messages: list[dict[str, Any]] = []
    call_ids: dict[str, str] = {}  # item id -> call_id (local_shell_call_output names its call by item id)
    expanded = 0  # characters the compaction items expanded to, bounded in all
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request("Each input item must be an object.", param)
        given = item.get("type")
        if given is not None and not isinstance(given, str):  # 0 and false too, not taken for a missing type
            raise bad_request("`type` must be a string.", f"{param}.type", "invalid_type")
        kind = given or ("message" if "role" in item else "item_reference" if is_item_reference(item) else None)
        if kind is not None:
            item_status(item, kind, param, field_error)  # not read, but the document gives its values
        if kind == "message":
            messages.append(message_item(item, param))
        elif kind == "function_call":
            _append_call(messages, _string(item, "call_id", param),
                         chat_name(item, _string(item, "name", param), param),
                         string(item, "arguments", f"{param}.arguments", field_error) or "{}")
        elif kind in CLIENT_CALL_ITEMS:
            call_id = _string(item, "call_id", param)
            if isinstance(item.get("id"), str):
                call_ids[item["id"]] = call_id
            _append_call(messages, call_id, *replayed_call(item, kind, param))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.extend(tool_output(item, param))
        elif kind in CLIENT_OUTPUT_ITEMS:
            messages.append(client_tool_output(item, param, call_ids))
        elif kind == "computer_call_output":
            screenshot_output(messages, item, param)
        elif kind == "additional_tools":
            tools.add_all(item.get("tools"), f"{param}.tools")
        elif kind in HOSTED_CALL_ITEMS:
            tools.note_dropped(kind)  # a hosted tool's record: it ran at OpenAI, a chat upstream cannot take it
        elif kind == "reasoning":
            continue  # a replayed reasoning item: a chat upstream has no way to take it back
        elif kind == "compaction":
            messages.append(compact.compaction_message(item, param, expanded))  # the summary it seals
            expanded += len(messages[-1]["content"])
        elif kind == "item_reference":
            raise bad_request("`item_reference` input items need stored responses; this proxy is stateless.",
                              f"{param}.type" if "type" in item else f"{param}.id", "unsupported_parameter")
        else:
            named = given if kind is None else kind  # "" for an empty one, not None
            raise bad_request(f"Input items of type {named!r} are not supported through a chat-completions "
                              "backend (messages, reasoning, function, custom, local shell and computer tool "
                              "calls and their outputs are).", f"{param}.type", "unsupported_value")
    return messages


def _append_call(messages: list[dict[str, Any]], call_id: str, name: str, arguments: str) -> None:
    """An assistant tool call, joined to the assistant message just before it: chat puts a turn's text and its
    parallel calls in one message (templates that want roles to alternate refuse two assistant messages)."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})  # null: refused by llama.cpp


def client_tool_output(item: dict[str, Any], param: str, call_ids: dict[str, str]) -> dict[str, Any]:
    """The output of a built-in client tool (local_shell_call_output...) as a tool message."""
    ref = item.get("call_id") or item.get("id")
    if not isinstance(ref, str) or not ref:
        raise bad_request("`call_id` must be a non-empty string.", f"{param}.call_id", "missing_required_parameter")
    output = item.get("output")
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call_ids.get(ref, ref), "content": text}


def screenshot_output(messages: list[dict[str, Any]], item: dict[str, Any], param: str) -> None:
    """A computer call's output, a screenshot: a tool message saying so, and the image in a user message (chat
    tool messages take text only) after the turn's other tool messages, which chat wants together."""
    call_id = _string(item, "call_id", param)
    output = obj(item, "output", f"{param}.output", field_error, required=True) or {}
    checked(output, SCREENSHOT, f"{param}.output", field_error, ("type",))
    url = output.get("image_url")
    if not isinstance(url, str) or not url:
        raise bad_request("Screenshots must come as `image_url` (an http(s) or data: URL); `file_id` needs the "
                          "Files API, which this proxy does not serve.", f"{param}.output.image_url",
                          "unsupported_value")
    tool = {"role": "tool", "tool_call_id": call_id, "content": "Screenshot taken (in the next message)."}
    image = {"type": "image_url", "image_url": {"url": url}}
    last = messages[-1] if messages else None
    if last is not None and len(messages) > 1 and messages[-2]["role"] == "tool" and _screenshots(last):
        messages.insert(len(messages) - 1, tool)
        last["content"].append(image)
    else:
        messages.extend([tool, {"role": "user", "content": [image]}])


def _screenshots(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return (message["role"] == "user" and isinstance(content, list)
            and all(part.get("type") == "image_url" for part in content))


def _string(item: dict[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"`{key}` must be a non-empty string.", f"{param}.{key}", "missing_required_parameter")
    return value


def message_item(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request("`role` must be user, assistant, system or developer.", f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise bad_request("`content` must be a string or a list of parts.", f"{param}.content")
    parts = [content_part(part, f"{param}.content[{j}]") for j, part in enumerate(content)]
    if role != "user" or all(p["type"] == "text" for p in parts):
        # Assistant and system turns take text; joining keeps every upstream happy.
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def content_part(part: Any, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise bad_request("Each content part must be an object.", param)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": string(part, "text", f"{param}.text", field_error) or ""}
    if kind == "refusal":
        return {"type": "text", "text": string(part, "refusal", f"{param}.refusal", field_error) or ""}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise bad_request("Images must come as `image_url` (an http(s) or data: URL); `file_id` needs the "
                              "Files API, which this proxy does not serve.", f"{param}.image_url", "unsupported_value")
        image: dict[str, Any] = {"url": url}
        if string(part, "detail", f"{param}.detail", field_error) in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not isinstance(part.get("file_data"), str):
            raise bad_request("Files must come inline as `file_data`; `file_id` and `file_url` are not supported.",
                              f"{param}.file_data", "unsupported_value")
        filename = string(part, "filename", f"{param}.filename", field_error) or "file"
        return {"type": "file", "file": {"file_data": part["file_data"], "filename": filename}}
    raise bad_request(f"Content parts of type {kind!r} are not supported.", f"{param}.type", "unsupported_value")


def tool_output(item: dict[str, Any], param: str) -> list[dict[str, Any]]:
    """A function_call_output item: a tool message (images in it follow as a user message)."""
    call_id = _string(item, "call_id", param)
    output = item.get("output")
    if isinstance(output, str):
        return [{"role": "tool", "tool_call_id": call_id, "content": output}]
    if not isinstance(output, list):
        raise bad_request("`output` must be a string or a list of parts.", f"{param}.output")
    parts = [content_part(p, f"{param}.output[{j}]") for j, p in enumerate(output)]
    texts = [p for p in parts if p["type"] == "text"]
    others = [p for p in parts if p["type"] != "text"]
    out: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": call_id, "content": "".join(p["text"] for p in texts)}]
    if others:
        out.append({"role": "user", "content": others})
    return out


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


# ---------------------------------------------------------------------------------------------- answer

def usage_to_responses(usage: Any) -> dict[str, Any]:
    """Chat usage in the Responses shape; none yet (a response still in progress) counts zeros: neither document
    has a null there that the other takes (OpenAI's has no null, Open Responses requires the field)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    details = usage.get("prompt_tokens_details") or {}
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": details.get("cached_tokens") or 0,
                                     "cache_write_tokens": details.get("cache_write_tokens") or 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": usage.get("total_tokens") or prompt + completion}


def response_error(code: str, message: str) -> dict[str, Any]:
    """A response object's `error`: its code one the API lists."""
    return {"code": code if code in ERROR_CODES else "server_error", "message": message}


def status_of(finish_reason: Any) -> tuple[str, dict[str, Any] | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(ex: Exchange, resp_id: str, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None = None, incomplete: dict[str, Any] | None = None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The response object: every field both documents require, the request's settings echoed (the defaults the
    API reports for those it left out)."""
    obj: dict[str, Any] = (ex.echo or echoed(ex)).copy()
    if obj["id"] is None:  # a stored response's id is its store's (echoed)
        obj["id"] = resp_id
    obj["status"] = status
    if status == "completed":
        obj["completed_at"] = int(time.time())
    obj["error"] = error
    obj["incomplete_details"] = incomplete
    obj["output"] = output
    obj["usage"] = usage if usage is not None else usage_to_responses(None)
    return obj


# A response object of a request that sets nothing, in the order the fields are written: echoed() fills it in.
_UNSET = {**{name: None for name in ECHOED}, **dict(SAMPLING)}
_OBJECT: dict[str, Any] = {
    "id": None, "object": "response", "created_at": 0, "status": None, "completed_at": None, "background": False,
    "error": None, "incomplete_details": None, "model": None, "output": None, "previous_response_id": None,
    "store": False, "reasoning": None, "text": None, "truncation": "disabled", "service_tier": "default",
    "tools": None, "tool_choice": "auto", "parallel_tool_calls": True, "usage": None, **_UNSET}


def echoed(ex: Exchange) -> dict[str, Any]:
    """Each response object of an exchange, but for what it says of its answer (status, output, usage...): the
    request's settings echoed, and a stored response's own fields (ex.state, set before the first object is
    made). Made once (ex.echo), each object a copy."""
    req = ex.request
    echo = _OBJECT.copy()
    echo["created_at"], echo["model"] = ex.created, ex.model
    reasoning, text = req.get("reasoning"), req.get("text")
    echo["reasoning"] = {"effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
                         "summary": summary_asked(req)}
    echo["text"] = {"format": {"type": "text"}, **text} if isinstance(text, dict) else {"format": {"type": "text"}}
    echo["tools"] = echoed_tools(req.get("tools"))
    for name in _ECHO_KEYS.intersection(req):  # a setting left null is reported as left out
        if req[name] is not None:
            echo[name] = req[name]
    if req.get("parallel_tool_calls") is False:
        echo["parallel_tool_calls"] = False
    if isinstance(req.get("user"), str):  # deprecated: a string when given, absent otherwise
        echo["user"] = req["user"]
    if ex.state is not None:  # a stored response (argoproxy/state/): its id and stored fields
        echo.update(ex.state)
    ex.echo = echo
    return echo


_ECHO_KEYS = frozenset(_UNSET) | {"tool_choice"}  # echoed as they came, when not null


def echoed_tools(tools: Any) -> list[Any]:
    """The request's tools as a response object lists them: function tools with every field the documents
    require (null when not given), others as they came."""
    if not isinstance(tools, list):
        return []
    return [{**FUNCTION_TOOL, **t} if isinstance(t, dict) and t.get("type") == "function" else t for t in tools]


def message_output(text: str, status: str = "completed", item_id: str | None = None,
                   refusal: str | None = None, logprobs: list[Any] | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or refusal is None:
        content.append(output_text(text, logprobs))
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": item_id or new_id("msg_"), "status": status, "role": "assistant",
            "content": content}


def output_text(text: str, logprobs: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def logprobs_of(choice: dict[str, Any]) -> list[Any]:
    """A chat choice's token logprobs (`logprobs.content`): the same entries Responses carries (token, logprob,
    bytes, top_logprobs)."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return content if isinstance(content, list) else []


def reasoning_output(text: str, item_id: str | None = None, summary: bool = False) -> dict[str, Any]:
    """A reasoning item: the text as its summary (the client set reasoning.summary), else as its content."""
    if summary:
        return {"type": "reasoning", "id": item_id or new_id("rs_"), "summary": [summary_text(text)],
                "status": "completed"}
    return {"type": "reasoning", "id": item_id or new_id("rs_"), "summary": [],
            "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}


def summary_text(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def function_output(call: dict[str, Any], tools: ChatTools | None = None, resp_id: str | None = None) -> dict[str, Any]:
    """A whole chat tool call as its output item (function_call, or custom_tool_call for a custom tool)."""
    function = call.get("function") or {}
    return (tools or NO_TOOLS).output_item(function.get("name") or "", call.get("id") or new_id("call_"),
                                           function.get("arguments") or "", resp_id=resp_id)


def response_id_of(ex: Exchange) -> str:
    """The response's id: the store's (a stored response), else one of the door's own."""
    return (ex.state or {}).get("id") or new_id("resp_")


def chat_to_response(completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """A whole chat.completion as a `response` object."""
    answer = whole_answer(completion, ex)
    status, incomplete = status_of(answer.choice.get("finish_reason"))
    resp_id = response_id_of(ex)
    output = [sealed_reasoning(reasoning_output(answer.reasoning, output_item_id("rs_", resp_id),
                                                summary=summary_asked(ex.request) is not None), answer.reasoning, ex)
              ] if answer.reasoning else []
    if answer.text or answer.refusal is not None or not answer.calls:
        output.append(message_output(answer.text, item_id=output_item_id("msg_", resp_id), refusal=answer.refusal,
                                     logprobs=logprobs_of(answer.choice)))
    output.extend(function_output(call, ex.tools, resp_id) for call in answer.calls)
    if status != "completed":  # the last item is the one a token limit cut short, as a stream marks it
        output[-1] = {**output[-1], "status": "incomplete"}
    return response_object(ex, resp_id, status, output, usage_to_responses(ex.usage), incomplete)


# ---------------------------------------------------------------------------------------------- stream

class ResponseStream(StreamState):
    """Chat chunks -> Responses events, one output item at a time (reasoning, message, function or custom tool
    calls), each opened with output_item.added and closed with its .done events before the next one starts."""

    piece_cost = 0  # its kept text is joined as it grows (Pieces): MAX_SSE_EVENT_BYTES counts characters only

    def __init__(self, ex: Exchange, on_final: Callable[..., None] | None = None,
                 wire: bool = False) -> None:
        super().__init__(ex)
        self.seq = 0
        self.resp_id = response_id_of(ex)
        # the final object's keeper (a stored response), called before its event goes (with response_json=, its
        # JSON, when that was made for the event)
        self.on_final = on_final
        self.output: list[dict[str, Any]] = []  # finished items
        self.open: dict[str, Any] | None = None  # the item being streamed: {"kind", "item", "text": [..]}
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its open item record
        self.late: dict[int, dict[str, Any]] = {}  # finished calls that got more fragments, by output index
        self.tools: ChatTools = ex.tools or NO_TOOLS
        # Token logprobs, when asked for: sent with each text delta only (the done events and the final response
        # would have to hold them all, several objects a token).
        self.wants_logprobs = bool((ex.chat or {}).get("logprobs"))
        self.delta_logprobs: list[Any] = []
        self.summary = summary_asked(ex.request) is not None  # reasoning goes as the item's summary
        self.echo_short = False  # the response object's echo of the request holds no long string (start)
        # Its events go straight to the encoder (FrontAnswers.encoded): text deltas, most of them, are written
        # here, as bytes, from their item's part made once (no logprobs: those differ from one delta to the next).
        self.wire = wire and not self.wants_logprobs
        if self.wants_logprobs:  # else each chunk goes straight to StreamState.chunk (one call less an event)
            self.chunk = self._chunk_with_logprobs  # type: ignore[method-assign]

    def run(self, chunks: Iterable[dict[str, Any] | str]) -> Iterator[Any]:
        return self._wired(chunks) if self.wire else StreamState.run(self, chunks)

    def _wired(self, chunks: Iterable[dict[str, Any] | str]) -> Iterator[Any]:
        """StreamState.run, but a chunk's text alone (a str: plain_chunks.py) that adds to the open message, most
        of a stream, goes to its event's bytes in one step: no call, no event list. Those texts are kept for the
        closing events, and counted, a run of them at a time (_settle), joined."""
        self.start()
        yield from self.joined()
        run: list[str] = []  # texts sent since the last _settle
        record: dict[str, Any] | None = None  # the open message, while its deltas go this way
        keep = self.ex.keep
        try:
            for chunk in chunks:
                if type(chunk) is str and self.open is record is not None:
                    size = len(chunk)
                    kept = self.kept_size + size
                    if kept > keep:  # as text() ends it: counted, not kept nor sent
                        self._settle(record, run)
                        self.counted.add(chunk)
                        self.ex.cut = True
                        break
                    self.kept_size = kept
                    run.append(chunk)
                    if size >= RUN_PIECE or len(run) >= COMPACT:  # a join copies at most COMPACT small pieces
                        self._settle(record, run)
                    try:
                        text = encode_read_text(chunk)  # read by plain_chunks: valid UTF-8
                    except UnicodeEncodeError:  # a lone surrogate (not UTF-8), were a str to come from elsewhere
                        text = dumps(chunk)
                    yield TEXT_DELTA % (self.seq, record["wire"], text)
                    self.seq += 1
                    continue
                if run:
                    self._settle(record, run)
                self.chunk(chunk)
                record = self.open if self.open is not None and self.open.get("wire") is not None else None
                if self.events:
                    yield from self.joined()
                if self.ex.cut:
                    break
            if run:
                self._settle(record, run)
            self.end()
        except ProxyError as err:
            if run:
                self._settle(record, run)
            self.ex.error = err
            self.fail(err)
        yield from self.joined()

    def joined(self) -> list[Any]:
        """The events made so far, those written here already as one piece (written at the same moment, they go
        out in one write, not one each)."""
        events = self.drain()
        if len(events) > 1 and all(type(e) is bytes for e in events):
            return [b"".join(events)]
        return events

    def _settle(self, record: dict[str, Any] | None, run: list[str]) -> None:
        """Texts the wired loop sent: kept in their message's record, and counted, as one piece."""
        text = run[0] if len(run) == 1 else "".join(run)
        run.clear()
        if record is not None:
            record["text"].add_joined(text)
        self.counted.add(text)

    def _chunk_with_logprobs(self, chunk: dict[str, Any] | str) -> None:
        self.delta_logprobs = logprobs_of(first_choice(chunk)) if isinstance(chunk, dict) else []
        StreamState.chunk(self, chunk)

    def emit(self, kind: str, **fields: Any) -> None:
        # Short: no string in it can pass long_strings.SLICE (what it echoes was looked at once, at the start,
        # and the output so far is shorter), so the encoder need not walk it to know.
        short = self.echo_short and self.counted.characters <= SHORT_OUTPUT
        if short and self.wire:  # written here, as encode_event writes it
            self.events.append(EVENT % (kind.encode(), dumps({"type": kind, "sequence_number": self.seq, **fields})))
        else:
            self.events.append((long_strings.Short if short else dict)(type=kind, sequence_number=self.seq, **fields))
        self.seq += 1

    def start(self) -> None:
        snapshot = response_object(self.ex, self.resp_id, "in_progress", [])
        # What every response object echoes: the request's settings (all but its input), its stored fields.
        req = self.ex.request
        self.echo_short = not long_strings.holds_long([self.ex.state, *(v for k, v in req.items() if k != "input")])
        if self.wire and self.echo_short:  # the same object twice: encoded once
            raw = dumps(snapshot)
            self.wrapped("response.created", raw)
            self.wrapped("response.in_progress", raw)
            return
        self.emit("response.created", response=snapshot)
        self.emit("response.in_progress", response=snapshot)

    def wrapped(self, kind: str, response_json: bytes) -> None:
        """An event that carries the response object, its JSON made already, written as encode_event would."""
        self.events.append(WRAPPED % (kind.encode(), kind.encode(), self.seq, response_json))
        self.seq += 1

    # -- items
    def _open(self, kind: str, item: dict[str, Any], part: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.waiting and kind not in ("call", "custom"):  # calls waiting for the open one go first
            self._release()
        self.close()
        self.new_item(item.get("call_id"), item.get("name"))
        index = len(self.output)
        self.emit("response.output_item.added", output_index=index, item=item)
        record = {"kind": kind, "item": item, "index": index, "text": Pieces()}
        if part is not None:
            self.emit("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                      part=part)
        self.open = record
        return record

    def close(self, status: str = "completed") -> None:
        """Close the open item; `status`: "incomplete" for one a failure or a token limit cut short."""
        record, self.open = self.open, None
        if record is None:
            return
        item, index, text = record["item"], record["index"], "".join(record["text"])
        record["text"] = Pieces([text])  # the pieces freed now (a late fragment of a call may still be added)
        if record["kind"] == "reasoning" and self.summary:
            self.emit("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                      summary_index=0, text=text)
            ended = {"status": "incomplete"} if status == "incomplete" else {}
            self.emit("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                      summary_index=0, part=summary_text(text), **ended)
            done = sealed_reasoning({**reasoning_output(text, item["id"], summary=True), "status": status}, text,
                                    self.ex)
        elif record["kind"] == "reasoning":
            part = {"type": "reasoning_text", "text": text}
            self.emit("response.reasoning_text.done", item_id=item["id"], output_index=index, content_index=0,
                      text=text)
            self.emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                      part=part)
            done = sealed_reasoning({**reasoning_output(text, item["id"]), "status": status}, text, self.ex)
        elif record["kind"] == "message":
            part = output_text(text)
            self.emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                      text=text, logprobs=[])
            self.emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                      part=part)
            done = message_output(text, status, item_id=item["id"])
        elif record["kind"] == "refusal":
            self.emit("response.refusal.done", item_id=item["id"], output_index=index, content_index=0,
                      refusal=text)
            self.emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                      part={"type": "refusal", "refusal": text})
            done = message_output("", status, item_id=item["id"], refusal=text)
        elif record["kind"] == "custom":
            # The input is the string inside the function's JSON arguments: sent once it is whole.
            done = {**item, "input": custom_input(text), "status": status}
            if done["input"]:
                self.emit("response.custom_tool_call_input.delta", item_id=item["id"], output_index=index,
                          delta=done["input"])
            self.emit("response.custom_tool_call_input.done", item_id=item["id"], output_index=index,
                      input=done["input"])
        else:
            text = text or "{}"  # a call without arguments, as OpenAI writes it (the other doors give {})
            done = {**item, "arguments": text, "status": status}
            self.emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                      name=item["name"], arguments=text)
        self.emit("response.output_item.done", output_index=index, item=done)
        self.output.append(done)

    def fits(self, text: str) -> bool:
        """Keep this text for the closing events, which repeat it; past ex.keep the stream ends (incomplete)."""
        if self.keeping(len(text)):
            return True
        self.ex.cut = True
        return False

    def reasoning(self, text: str) -> None:
        if not self.fits(text):
            return
        record = self.open
        if record is None or record["kind"] != "reasoning":
            record = self._open_reasoning()
        record["text"].append(text)
        if self.summary:
            self.emit("response.reasoning_summary_text.delta", item_id=record["item"]["id"],
                      output_index=record["index"], summary_index=0, delta=text)
        else:
            self.emit("response.reasoning_text.delta", item_id=record["item"]["id"], output_index=record["index"],
                      content_index=0, delta=text)

    def _open_reasoning(self) -> dict[str, Any]:
        """A reasoning item opens: with one summary part (summary asked for), else one reasoning_text part."""
        item = {"type": "reasoning", "id": output_item_id("rs_", self.resp_id), "summary": [], "status": "in_progress"}
        if not self.summary:
            return self._open("reasoning", {**item, "content": []}, {"type": "reasoning_text", "text": ""})
        record = self._open("reasoning", item)
        self.emit("response.reasoning_summary_part.added", item_id=item["id"], output_index=record["index"],
                  summary_index=0, part=summary_text(""))
        return record

    def text(self, text: str) -> None:
        # Most of a stream's events: kept (fits, written out) and sent (emit, written out) in one call.
        kept = self.kept_size + len(text)
        if kept > self.ex.keep:
            self.ex.cut = True
            return
        self.kept_size = kept
        record = self.open
        if record is None or record["kind"] != "message":
            item = {"type": "message", "id": output_item_id("msg_", self.resp_id), "status": "in_progress",
                    "role": "assistant", "content": []}
            record = self._open("message", item, output_text(""))
            record["wire"] = (b',"item_id":%b,"output_index":%d,"content_index":0,"delta":'
                              % (dumps(item["id"]), record["index"])) if self.wire else None
        record["text"].append(text)
        if record["wire"] is not None and len(text) <= long_strings.SLICE:  # encode_event's bytes, made here
            self.events.append(TEXT_DELTA % (self.seq, record["wire"], dumps(text)))
        else:
            self.events.append({"type": "response.output_text.delta", "sequence_number": self.seq,
                                "item_id": record["item"]["id"], "output_index": record["index"],
                                "content_index": 0, "delta": text, "logprobs": self.delta_logprobs})
        self.seq += 1

    def refusal(self, text: str) -> None:
        """A refusal is a message of its own whose one part is a `refusal` (as OpenAI streams it)."""
        if not self.fits(text):
            return
        record = self.open
        if record is None or record["kind"] != "refusal":
            item = {"type": "message", "id": output_item_id("msg_", self.resp_id), "status": "in_progress",
                    "role": "assistant", "content": []}
            record = self._open("refusal", item, {"type": "refusal", "refusal": ""})
        record["text"].append(text)
        self.emit("response.refusal.delta", item_id=record["item"]["id"], output_index=record["index"],
                  content_index=0, delta=text)

    def tool_call(self, index: int, fragment: dict[str, Any]) -> None:
        function = fragment.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str) and not self.keeping(len(arguments)):
            # A call's arguments are repeated whole by its .done events: cut, they would be invalid JSON (the
            # call is left out of the failed response rather than repeated in part).
            if self.open is not None and self.open["kind"] in ("call", "custom"):
                self.open = None
            raise ProxyError(502, f"The upstream's tool call arguments grew past MAX_SSE_EVENT_BYTES ({self.ex.keep} "
                             "characters of output kept for the closing events).", code="upstream_event_too_large")
        record = self.calls.get(index)
        if record is None:
            if (self.open is not None and self.open["kind"] in ("call", "custom")) or index in self.waiting:
                # Another call is streaming, and an upstream may still add to it (interleaved parallel calls),
                # while a Responses stream sends one item at a time: this one waits and goes whole at the end.
                self.wait(index, fragment, function)
                return
            record = self.calls[index] = self._open_call(fragment.get("id"), function.get("name") or "")
        elif record is not self.open:
            if function.get("arguments"):  # a late fragment of a finished call (interleaved upstream calls):
                record["text"].append(function["arguments"])  # in the final response only (_settle_late)
                self.late[record["index"]] = record
            return
        args = function.get("arguments")
        if args:
            record["text"].append(args)
            if record["kind"] == "call":
                self.emit("response.function_call_arguments.delta", item_id=record["item"]["id"],
                          output_index=record["index"], delta=args)

    def _open_call(self, call_id: str | None, name: str) -> dict[str, Any]:
        item = self.tools.output_item(name, call_id or new_id("call_"), "", status="in_progress", resp_id=self.resp_id)
        return self._open("custom" if self.tools.is_custom(name) else "call", item)

    def _release(self) -> None:
        """The calls that waited, each a whole item in the order they began."""
        for index, call_id, name, args in self.waited():
            record = self.calls[index] = self._open_call(call_id, name)
            if args:
                record["text"].append(args)
                if record["kind"] == "call":
                    self.emit("response.function_call_arguments.delta", item_id=record["item"]["id"],
                              output_index=record["index"], delta=args)

    def _settle_late(self) -> None:
        """Finished calls that got late fragments: their items whole, joined once (joined per fragment, a hostile
        upstream's fragments cost time quadratic in their number)."""
        for index, record in self.late.items():
            done, text = self.output[index], "".join(record["text"])
            done.update(input=custom_input(text)) if record["kind"] == "custom" else done.update(arguments=text)
        self.late.clear()

    def finish(self) -> None:
        self._release()
        if not self.output and self.open is None:
            self.text("")  # an empty answer is still one message (output_text == "")
        # Cut at ex.keep: the output is what was sent, cut short as by a token limit.
        status, incomplete = status_of("length" if self.ex.cut else self.choice.get("finish_reason"))
        self.close("completed" if status == "completed" else "incomplete")
        self._settle_late()
        final = response_object(self.ex, self.resp_id, status, self.output, usage_to_responses(self.ex.usage),
                                 incomplete)
        self.ex.output = final
        kind = "response.completed" if status == "completed" else "response.incomplete"
        if self.wire and self.echo_short and self.counted.characters <= SHORT_OUTPUT:  # encoded once, for both
            raw = dumps(final)
            if self.on_final is not None:
                self.on_final(final, response_json=raw)
            self.wrapped(kind, raw)
            return
        if self.on_final is not None:
            self.on_final(final)
        self.emit(kind, response=final)

    def fail(self, err: ProxyError) -> None:
        self.echo_short = False  # its message is not bounded by the output
        self.close("incomplete")
        self._settle_late()
        code = err.code or ("server_error" if err.status >= 500 else "invalid_request_error")
        # OpenAI's event, its fields at its top (Open Responses nests them under `error`, which OpenAI's SDK
        # raises at, so its client would never see the response.failed that follows)
        self.emit("error", code=code, message=err.message, param=err.param)
        final = response_object(self.ex, self.resp_id, "failed", self.output, usage_to_responses(self.ex.usage),
                                error=response_error("rate_limit_exceeded" if err.status == 429 else code,
                                                     err.message))
        self.ex.output = final
        if self.on_final is not None:
            self.on_final(final)
        self.emit("response.failed", response=final)


def stream_events(chunks: Iterable[dict[str, Any] | str], ex: Exchange,
                  on_final: Callable[..., None] | None = None, wire: bool = False) -> Iterator[Any]:
    """Chat chunks -> the Responses event sequence (created ... completed), sequence_number from 0; `on_final`
    gets the final response object before its terminal event is sent. `wire`: text deltas come encoded (bytes)."""
    return ResponseStream(ex, on_final, wire).run(chunks)


class ResponsesFront(Front):
    name = "responses"
    routes = (DoorRoute("v1/responses", "responses", bare=True),
              DoorRoute("v1/responses/compact", compact.KIND, bare=True))
    native_shape = Shape(("reasoning", "effort"), "max_output_tokens", False)
    spelled = Spelled(limits=(("max_output_tokens",),), supply=("max_output_tokens",))
    spelled_paths = (("/v1/responses", spelled), ("/responses", spelled))  # a batch's lines
    renamed = {"messages": "input", "max_tokens": "max_output_tokens", "response_format": "text.format",
               "reasoning_effort": "reasoning.effort"}

    def plain_texts(self, ex: Exchange) -> bool:
        return not (ex.chat or {}).get("logprobs")  # each text delta carries its chunk's logprobs

    def answer_budget(self, max_sse_event_bytes: int, journal_bytes: int) -> int:
        # response.completed and the .done events repeat all output: it is kept, up to one event's size.
        return max_sse_event_bytes

    def door_args(self, route: Any, query: str) -> DoorArgs | None:
        return DoorArgs(action=compact.ACTION) if route.kind == compact.KIND else None

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        if args is not None and args.action == compact.ACTION:  # POST /v1/responses/compact
            chat = compact.compaction_to_chat(body, input_messages)
            return chat, Exchange(model=chat["model"], stream=False, request=body, action=compact.ACTION)
        chat, tools = translate(body)
        return chat, Exchange(model=chat["model"], stream=chat.get("stream") is True, request=body, tools=tools,
                              asks_reasoning=summary_asked(body) is not None,
                              dropped=tuple(tools.dropped))

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        if ex.action == compact.ACTION:
            ex.output = compact.compaction_object(completion, ex, usage_to_responses)
            return ex.output
        ex.output = chat_to_response(completion, ex)
        if ex.keeper is not None:  # stored before it is sent (its JSON made once, for both)
            ex.output = ex.keeper.whole(ex.output)
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any] | str], ex: Exchange) -> Iterator[dict[str, Any]]:
        keeper = ex.keeper
        if keeper is not None and keeper.background:  # its events and progress kept as they go
            kept: Iterator[dict[str, Any]] = keeper.events(stream_events(chunks, ex))
            return kept
        # a stored answer is kept at its end, before its terminal event (no layer over every event)
        return stream_events(chunks, ex, keeper.save if keeper is not None else None, ex.encoded_events)

