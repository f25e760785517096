"""`input` -> chat messages: each item read by its kind (messages, function and client tool calls and their
outputs, screenshots, compaction summaries), in order; reasoning items replayed by a client dropped."""

from __future__ import annotations

import json
from typing import Any, Callable

from argoproxy.fronts.fields import checked, obj, one_of, string
from argoproxy.fronts.front import bad_request
from argoproxy.fronts.responses import compact
from argoproxy.fronts.responses.shapes import is_item_reference, item_status
from argoproxy.fronts.responses.tools import ChatTools, HOSTED_CALL_ITEMS, chat_name, field_error, replayed_call


# Input items of the built-in tools a client runs itself, replayed as chat tool calls and tool messages.
CLIENT_CALL_ITEMS = ("custom_tool_call", "local_shell_call", "shell_call", "apply_patch_call", "computer_call")
CLIENT_OUTPUT_ITEMS = ("local_shell_call_output", "shell_call_output", "apply_patch_call_output")
SCREENSHOT = {"type": one_of("computer_screenshot")}  # a computer call's output


def input_messages(value: Any, tools: ChatTools | None = None) -> list[dict[str, Any]]:
    """`input` (a string, or items) as chat messages (tools: where `additional_tools` items and dropped
    hosted-tool items are noted)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if value is None:
        raise bad_request("You must provide an input parameter.", "input", "missing_required_parameter")
    if not isinstance(value, list):
        raise bad_request("`input` must be a string or a list of items.", "input")
    items = InputItems(tools if tools is not None else ChatTools())
    for i, item in enumerate(value):
        items.add(item, f"input[{i}]")
    return items.messages


class InputItems:
    """The input items read in order into chat messages, with what a later item refers back to."""

    def __init__(self, tools: ChatTools) -> None:
        self.tools = tools
        self.messages: list[dict[str, Any]] = []
        self.call_ids: dict[str, str] = {}  # item id -> call_id (local_shell_call_output names its call by item id)
        self.expanded = 0  # characters the compaction items expanded to, bounded in all

    def add(self, item: Any, param: str) -> None:
        if not isinstance(item, dict):
            raise bad_request("Each input item must be an object.", param)
        given = item.get("type")
        if given is not None and not isinstance(given, str):  # 0 and false too, not taken for a missing type
            raise bad_request("`type` must be a string.", f"{param}.type", "invalid_type")
        kind = given or ("message" if "role" in item else "item_reference" if is_item_reference(item) else None)
        if kind is not None:
            item_status(item, kind, param, field_error)  # not read, but the document gives its values
        read = READERS.get(kind or "")
        if read is None:
            named = given if kind is None else kind  # "" for an empty one, not None
            raise bad_request(f"Input items of type {named!r} are not supported through a chat-completions "
                              "backend (messages, reasoning, function, custom, local shell and computer tool "
                              "calls and their outputs are).", f"{param}.type", "unsupported_value")
        read(self, item, kind or "", param)

    def message(self, item: dict[str, Any], kind: str, param: str) -> None:
        self.messages.append(message_item(item, param))

    def function_call(self, item: dict[str, Any], kind: str, param: str) -> None:
        call_id = required_string(item, "call_id", param)
        name = chat_name(item, required_string(item, "name", param), param)
        append_call(self.messages, call_id, name, string(item, "arguments", f"{param}.arguments", field_error) or "{}")

    def client_call(self, item: dict[str, Any], kind: str, param: str) -> None:
        call_id = required_string(item, "call_id", param)
        if isinstance(item.get("id"), str):
            self.call_ids[item["id"]] = call_id
        append_call(self.messages, call_id, *replayed_call(item, kind, param))

    def tool_output(self, item: dict[str, Any], kind: str, param: str) -> None:
        self.messages.extend(tool_output(item, param))

    def client_output(self, item: dict[str, Any], kind: str, param: str) -> None:
        self.messages.append(client_tool_output(item, param, self.call_ids))

    def screenshot(self, item: dict[str, Any], kind: str, param: str) -> None:
        screenshot_output(self.messages, item, param)

    def additional_tools(self, item: dict[str, Any], kind: str, param: str) -> None:
        self.tools.add_all(item.get("tools"), f"{param}.tools")

    def hosted_call(self, item: dict[str, Any], kind: str, param: str) -> None:
        self.tools.note_dropped(kind)  # a hosted tool's record: it ran at OpenAI, a chat upstream cannot take it

    def reasoning(self, item: dict[str, Any], kind: str, param: str) -> None:
        pass  # a replayed reasoning item: a chat upstream has no way to take it back

    def compaction(self, item: dict[str, Any], kind: str, param: str) -> None:
        self.messages.append(compact.compaction_message(item, param, self.expanded))  # the summary it seals
        self.expanded += len(self.messages[-1]["content"])

    def item_reference(self, item: dict[str, Any], kind: str, param: str) -> None:
        raise bad_request("`item_reference` input items need stored responses; this proxy is stateless.",
                          f"{param}.type" if "type" in item else f"{param}.id", "unsupported_parameter")


# Each input item's kind -> how it is read.
READERS: dict[str, Callable[[InputItems, dict[str, Any], str, str], None]] = {
    "message": InputItems.message, "function_call": InputItems.function_call,
    **{kind: InputItems.client_call for kind in CLIENT_CALL_ITEMS},
    "function_call_output": InputItems.tool_output, "custom_tool_call_output": InputItems.tool_output,
    **{kind: InputItems.client_output for kind in CLIENT_OUTPUT_ITEMS},
    "computer_call_output": InputItems.screenshot, "additional_tools": InputItems.additional_tools,
    **{kind: InputItems.hosted_call for kind in HOSTED_CALL_ITEMS},
    "reasoning": InputItems.reasoning, "compaction": InputItems.compaction,
    "item_reference": InputItems.item_reference}


def append_call(messages: list[dict[str, Any]], call_id: str, name: str, arguments: str) -> None:
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
    call_id = required_string(item, "call_id", param)
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


def required_string(item: dict[str, Any], key: str, param: str) -> str:
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
    call_id = required_string(item, "call_id", param)
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
