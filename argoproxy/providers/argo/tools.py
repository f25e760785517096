"""OpenAI tool calling on the ARGO backend (standard mode): request encoding and response decoding.

Owns the two directions of tool calls between OpenAI's wire format and the ARGO gateway:

* `encode_tools` turns OpenAI `tools`, `tool_choice`, assistant `tool_calls` and `role: tool` messages into
  the model family's native shapes (OpenAI as is; Anthropic tool_use/tool_result blocks; Gemini
  `{id, name, args}` calls with parallel calls split into call/result pairs, since Gemini rejects a
  parallel batch), or, for prompt-based tool use, into a system-prompt section plus plain-text history.
* `decode_tool_calls` turns ARGO's `response` (a string carrying `<tool_call>` tags, or a dict in the
  family's native shape) into remaining text plus OpenAI `tool_calls`.

Pure functions: dicts in, dicts out; the input body is never modified. Facts: reference/argo-proxy.md §1.2-1.3, §5.3.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import uuid
from collections import deque
from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import loads

log = logging.getLogger(__name__)

NATIVE_FAMILIES = ("openai", "anthropic", "google")
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")
# The body may not contain another opening tag: an unclosed tag must not swallow the next, valid call.
_TOOL_CALL_TAG = re.compile(r"<tool_call>((?:(?!<tool_call>).)*?)</tool_call>", re.DOTALL)


def uses_prompt_tools(family: str, prompt_tools: bool) -> bool:
    """True when tools go through the system prompt instead of the family's native fields."""
    return prompt_tools or family not in NATIVE_FAMILIES


# =========================================================================== request side


def encode_tools(body: dict[str, Any], family: str, prompt_tools: bool) -> dict[str, Any]:
    """A copy of the OpenAI chat body with tools, tool_choice and tool history in the family's form.

    Bodies with neither tools nor tool history come back unchanged. Raises ProxyError(400) for tools or a
    tool_choice that cannot be understood.
    """
    messages = body.get("messages")
    has_history = isinstance(messages, list) and any(_is_tool_message(m) for m in messages)
    if not body.get("tools") and not has_history:
        return body
    data = copy.deepcopy(body)
    if uses_prompt_tools(family, prompt_tools):
        return _encode_prompt(data)
    if family == "openai":
        return data
    tools = [_function_of(tool, index) for index, tool in enumerate(data.pop("tools", None) or [])]
    choice = _parse_tool_choice(data.pop("tool_choice", None))
    data.pop("parallel_tool_calls", None)  # neither Anthropic nor Gemini shapes have it (argo-proxy pops it too)
    if family == "anthropic":
        return _encode_anthropic(data, tools, choice)
    return _encode_google(data, tools, choice)


def _is_tool_message(message: Any) -> bool:
    return isinstance(message, dict) and (message.get("role") == "tool" or bool(message.get("tool_calls")))


def _function_of(tool: Any, index: int) -> dict[str, Any]:
    """{name, description, parameters} of an OpenAI function tool; 400 for anything else."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
        raise ProxyError(400, f"tools[{index}] must be {{'type': 'function', 'function': {{...}}}}",
                         param=f"tools[{index}]")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ProxyError(400, f"tools[{index}].function.name is required", param=f"tools[{index}].function.name")
    parameters = function.get("parameters")
    if not isinstance(parameters, dict):
        # Anthropic requires an input_schema; an OpenAI tool may omit parameters meaning "no arguments".
        parameters = {"type": "object", "properties": {}}
    return {"name": name, "description": function.get("description") or "", "parameters": parameters}


def _parse_tool_choice(choice: Any) -> tuple[str, str | None]:
    """OpenAI tool_choice -> (mode, name): mode is auto | required | none | named (with the name)."""
    if choice is None:
        return "auto", None
    if choice in ("auto", "required", "none"):
        return choice, None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if choice.get("type") == "function" and isinstance(name, str) and name:
            return "named", name
    raise ProxyError(400, "tool_choice must be 'auto', 'required', 'none' or "
                          "{'type': 'function', 'function': {'name': ...}}", param="tool_choice")


# --------------------------------------------------------------------------- Anthropic (Claude)


def _encode_anthropic(data: dict[str, Any], tools: list[dict[str, Any]], choice: tuple[str, str | None]) -> dict[str, Any]:
    if tools:
        data["tools"] = [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
                         for t in tools]
        mode, name = choice
        data["tool_choice"] = ({"type": "tool", "name": name} if mode == "named"
                               else {"type": {"auto": "auto", "required": "any", "none": "none"}[mode]})
    if isinstance(data.get("messages"), list):
        data["messages"] = _anthropic_messages(data["messages"])
    return data


def _anthropic_messages(messages: list[Any]) -> list[Any]:
    """Assistant tool_calls -> tool_use blocks; tool results -> one user message of tool_result blocks."""
    out: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
        elif message.get("role") == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                     "content": _anthropic_result_content(message.get("content"))}
            # Claude wants all results of one parallel batch in the single user turn that follows it.
            if out and _is_anthropic_result_turn(out[-1]):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif message.get("role") == "assistant" and message.get("tool_calls"):
            blocks = _text_blocks(message.get("content"))
            blocks += [{"type": "tool_use", "id": call.get("id") or _new_call_id(), "name": _call_name(call),
                        "input": _arguments_object(call)} for call in message["tool_calls"]]
            rest = {k: v for k, v in message.items() if k not in ("content", "tool_calls")}
            out.append({**rest, "content": blocks})
        else:
            out.append(message)
    return out


def _is_anthropic_result_turn(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return (message.get("role") == "user" and isinstance(content, list) and bool(content)
            and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content))


def _anthropic_result_content(content: Any) -> Any:
    """A tool message's content as Anthropic takes it: a string, or a list of text blocks."""
    if isinstance(content, list):
        return _text_blocks(content)
    return "" if content is None else str(content)


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    """Text content (a string or OpenAI content parts) as Anthropic text blocks; empty text dropped."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if isinstance(content, list):
        return [{"type": "text", "text": part["text"]} for part in content
                if isinstance(part, dict) and part.get("type") == "text" and str(part.get("text", "")).strip()]
    return []


# --------------------------------------------------------------------------- Google (Gemini)


def _encode_google(data: dict[str, Any], tools: list[dict[str, Any]], choice: tuple[str, str | None]) -> dict[str, Any]:
    if tools:
        data["tools"] = tools
        mode, name = choice
        data["tool_choice"] = ({"mode": "FUNCTION_CALLING", "allowed_function_names": [name]} if mode == "named"
                               else {"auto": "AUTO", "required": "ANY", "none": "NONE"}[mode])
    if isinstance(data.get("messages"), list):
        data["messages"] = _google_messages(data["messages"])
    return data


def _google_messages(messages: list[Any]) -> list[Any]:
    """Assistant calls as {id, name, args}; a parallel batch unwound into one call/result pair per call."""
    out: list[Any] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        if not (isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls")):
            out.append(message)
            continue
        calls = [{"id": call.get("id"), "name": _call_name(call), "args": _arguments_object(call)}
                 for call in message["tool_calls"]]
        results = []
        while index < len(messages) and isinstance(messages[index], dict) and messages[index].get("role") == "tool":
            results.append(messages[index])
            index += 1
        out.extend(_google_pairs(message, calls, results))
    return out


def _google_pairs(message: dict[str, Any], calls: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[assistant(call 1), result 1, assistant(call 2), result 2, ...]; content stays on the first.

    Gemini answers "number of function response parts != number of function call parts" to a batch.
    Results are matched by tool_call_id, else by position; unmatched results follow at the end.
    """
    rest = {k: v for k, v in message.items() if k != "tool_calls"}
    if len(calls) == 1:
        return [{**rest, "tool_calls": calls}, *results]
    # Results by the call id they name, and in order those naming no call of the batch: a search of the list per
    # call made 20,000 parallel calls quadratic.
    batch_ids = {call["id"] for call in calls if isinstance(call["id"], str) and call["id"]}
    named: dict[str, deque[int]] = {}
    unnamed: deque[int] = deque()
    for i, result in enumerate(results):
        ref = result.get("tool_call_id")
        if isinstance(ref, str) and ref in batch_ids:
            named.setdefault(ref, deque()).append(i)
        else:
            unnamed.append(i)
    used: set[int] = set()
    out: list[dict[str, Any]] = []
    for position, call in enumerate(calls):
        by_id = named.get(call["id"]) if call["id"] in batch_ids else None
        # positional fallback: the first result that names no call of this batch
        pick = by_id.popleft() if by_id else unnamed.popleft() if unnamed else None
        pair_message = {**rest, "tool_calls": [call]}
        if position > 0:
            pair_message["content"] = None
        out.append(pair_message)
        if pick is not None:
            used.add(pick)
            out.append(results[pick])
    return out + [result for i, result in enumerate(results) if i not in used]


# --------------------------------------------------------------------------- prompt-based tools


def _encode_prompt(data: dict[str, Any]) -> dict[str, Any]:
    """Tools described in the system prompt; tool fields removed; tool history rendered as text."""
    tools = [_function_of(tool, index) for index, tool in enumerate(data.get("tools") or [])]
    choice = _parse_tool_choice(data.get("tool_choice"))
    parallel = data.get("parallel_tool_calls", True) is not False
    for field in _TOOL_FIELDS:
        data.pop(field, None)
    if isinstance(data.get("messages"), list):
        data["messages"] = _text_history(data["messages"])
    if tools:
        _add_system_text(data, tool_prompt(tools, choice, parallel))
    return data


def tool_prompt(tools: list[dict[str, Any]], choice: tuple[str, str | None] = ("auto", None), parallel: bool = True) -> str:
    """The system-prompt section that teaches a model without native tools to call them."""
    tools_json = json.dumps(tools, ensure_ascii=False, separators=(",", ":"))
    mode, name = choice
    policy = {
        "auto": "Call a tool only when it helps answer; otherwise answer normally.",
        "required": "You must call at least one tool in this answer.",
        "none": "Do not call any tool in this answer; answer normally.",
        "named": f"You must call the tool {json.dumps(name)} in this answer.",
    }[mode]
    batch = ("You may call several tools in one answer, one <tool_call> block each."
             if parallel else "Call at most one tool per answer.")
    return (
        "# Tools\n\n"
        f"You can call these tools (name, description, JSON Schema of the arguments):\n{tools_json}\n\n"
        "To call a tool, write exactly this, with the arguments as a JSON object:\n"
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments>}}</tool_call>\n'
        f"{batch} {policy} After a tool call, stop and wait: its result comes back in the next user message "
        'as <tool_result name="..." id="...">...</tool_result>. Never write a tool_result yourself.'
    )


def _text_history(messages: list[Any]) -> list[Any]:
    """Assistant tool_calls as <tool_call> text and tool results as user text, so any model can follow."""
    names = {call.get("id"): _call_name(call)
             for m in messages if isinstance(m, dict) and m.get("role") == "assistant"
             for call in (m.get("tool_calls") or []) if isinstance(call, dict)}
    out: list[Any] = []
    previous_was_result = False
    for message in messages:
        is_result = isinstance(message, dict) and message.get("role") == "tool"
        if is_result:
            call_id = message.get("tool_call_id")
            name = message.get("name") or names.get(call_id, "")
            text = (f'<tool_result name="{name}" id="{call_id or ""}">\n'
                    f"{_plain_text(message.get('content'))}\n</tool_result>")
            if previous_was_result:  # a parallel batch's results become one user turn
                out[-1]["content"] += "\n\n" + text
            else:
                out.append({"role": "user", "content": text})
        elif isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls"):
            rendered = [_render_call(call) for call in message["tool_calls"]]
            text = "\n".join(filter(None, [_plain_text(message.get("content")).strip(), *rendered]))
            rest = {k: v for k, v in message.items() if k not in ("content", "tool_calls")}
            out.append({**rest, "content": text})
        else:
            out.append(message)
        previous_was_result = is_result
    return out


def _render_call(call: dict[str, Any]) -> str:
    payload = {"name": _call_name(call), "arguments": _arguments_object(call)}
    return f"<tool_call>{json.dumps(payload, ensure_ascii=False)}</tool_call>"


def _add_system_text(data: dict[str, Any], text: str) -> None:
    """Append to the first system message (or the `system` field), else insert a system message first."""
    messages = data.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") in ("system", "developer"):
                content = message.get("content")
                if isinstance(content, list):
                    message["content"] = [*content, {"type": "text", "text": text}]
                else:
                    message["content"] = f"{content}\n\n{text}" if content else text
                return
        messages.insert(0, {"role": "system", "content": text})
        return
    system = data.get("system")
    if isinstance(system, list):
        data["system"] = [*system, text]
    else:
        data["system"] = f"{system}\n\n{text}" if system else text


# =========================================================================== response side


def decode_tool_calls(response: Any, family: str, prompt_tools: bool) -> tuple[str | None, list[dict[str, Any]]]:
    """ARGO's `response` -> (remaining text, OpenAI tool_calls). Text is None when only calls remain.

    Strings are searched for <tool_call> tags only with prompt-based tools (a native answer is plain
    text that may mention the tag). Dicts may use any family's shape: OpenAI {function}, Anthropic
    {input} / tool_use content blocks, Gemini {args}. The caller sets finish_reason "tool_calls"
    when the list is non-empty.
    """
    prompt_mode = uses_prompt_tools(family, prompt_tools)
    if response is None:
        return None, []
    if isinstance(response, str):
        return parse_tool_call_tags(response) if prompt_mode else (response, [])
    if not isinstance(response, dict):
        return str(response), []
    if isinstance(response.get("response"), dict):
        response = response["response"]  # argo-proxy saw Claude answers wrapped once more
    text, calls = _native_content(response.get("content"))
    seen = {call["id"] for call in calls}
    raw_calls = response.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ProxyError(502, "ARGO's 'tool_calls' is not a list.", code="upstream_invalid_response")
    for raw in raw_calls:
        call = _openai_call(raw)
        if call is not None and call["id"] not in seen:
            seen.add(call["id"])
            calls.append(call)
    if prompt_mode and text:
        text, tagged = parse_tool_call_tags(text)
        calls += tagged
    if calls and text is not None and not text.strip():
        text = None
    return text, calls


def _native_content(content: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """Text and tool_use calls from a content string or a list of Anthropic-style blocks."""
    if content is None or isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return str(content), []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "tool_use":
            call = _openai_call(block)
            if call is not None:
                calls.append(call)
    return "".join(texts), calls


def _openai_call(raw: Any) -> dict[str, Any] | None:
    """One tool call in any family's shape as OpenAI's {id, type, function: {name, arguments}}."""
    if not isinstance(raw, dict):
        return None
    inner = raw.get("function")
    function = inner if isinstance(inner, dict) else raw
    name = function.get("name")
    if not isinstance(name, str) or not name:
        log.warning("dropping a tool call without a name from the upstream answer")
        return None
    for key in ("arguments", "input", "args"):
        if key in function:
            arguments = function[key]
            break
    else:
        arguments = {}
    return {"id": raw.get("id") or _new_call_id(), "type": "function",
            "function": {"name": name, "arguments": _arguments_string(arguments)}}


def parse_tool_call_tags(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """<tool_call>{"name", "arguments"}</tool_call> blocks out of text -> (text outside them, calls).

    A block whose body is not a JSON object with a string name stays in the text, as does an unclosed
    tag. The remaining text is stripped; None when it is empty and calls were found.
    """
    calls: list[dict[str, Any]] = []
    pieces: list[str] = []
    position = 0
    for match in _TOOL_CALL_TAG.finditer(text):
        call = _tagged_call(match.group(1))
        if call is None:
            continue  # left in place: it is part of the text between the surrounding tags
        pieces.append(text[position:match.start()])
        position = match.end()
        calls.append(call)
    pieces.append(text[position:])
    if not calls:
        return text, []
    remaining = re.sub(r"\n{3,}", "\n\n", "".join(pieces)).strip()
    return (remaining or None), calls


def _tagged_call(body: str) -> dict[str, Any] | None:
    body = _unfenced(body.strip())
    try:
        payload = loads(body)
    except ValueError:
        log.info("kept a <tool_call> block with invalid JSON as text")
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str) or not payload["name"]:
        return None
    arguments = payload.get("arguments", payload.get("parameters", {}))
    return {"id": _new_call_id(), "type": "function",
            "function": {"name": payload["name"], "arguments": _arguments_string(arguments)}}


def _unfenced(body: str) -> str:
    """The inside of a ```json ... ``` fence (models like to wrap JSON in one even inside the tag). String
    operations, not a pattern: `^```\s*(.*?)\s*```$` took seconds on a fence holding a few thousand spaces,
    and a client can ask the model to write exactly that."""
    if len(body) < 6 or not (body.startswith("```") and body.endswith("```")):
        return body
    inner = body[3:-3]
    return (inner[4:] if inner.startswith("json") else inner).strip()


# --------------------------------------------------------------------------- shared helpers


def _new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _call_name(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if isinstance(name, str):
        return name
    return str(call.get("name", "")) if isinstance(call, dict) else ""


def _arguments_object(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI call's arguments (a JSON string) as the object Anthropic/Gemini want."""
    inner = call.get("function")
    function = inner if isinstance(inner, dict) else {}
    raw = function.get("arguments", "")
    if isinstance(raw, dict):
        return raw
    if not raw or not str(raw).strip():
        return {}
    try:
        parsed = loads(raw)
    except ValueError:
        # Keep what the model wrote rather than drop it; the native shapes only take objects.
        return {"_raw_arguments": str(raw)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _arguments_string(arguments: Any) -> str:
    """Arguments as OpenAI's JSON string; strings that already are JSON pass through unchanged."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)


def _plain_text(content: Any) -> str:
    """Message content (a string or content parts) as text."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "\n\n".join(str(part.get("text", "")) for part in content
                           if isinstance(part, dict) and part.get("type") == "text")
    return str(content)
