"""Responses API tools over a chat-completions backend: which tools become chat functions, which are dropped,
and how calls are named on the way back.

Codex-style clients send more than function tools in every request. A chat upstream can run what the client
executes itself when it has a function form:
- `function` tools as they are; the functions of a `namespace` tool (and of `additional_tools` input items)
  flattened to `<namespace>__<name>`;
- `custom` tools (free-form input, e.g. Codex's apply_patch) as a function taking one string, `input`; the
  call comes back as a `custom_tool_call` item with that string.
Hosted tools (web_search, file_search, code_interpreter, image_generation, mcp...) and the built-in tools
whose schema only OpenAI's models know (local_shell, shell, apply_patch, computer...) have no chat form: they
are dropped, and the front door logs a warning naming them (docs/decisions.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.fronts.fields import boolean, checked, obj, string
from argoproxy.fronts.front import bad_request, new_id
from argoproxy.fronts.responses.shapes import CUSTOM_FLAGS, GRAMMAR_SYNTAXES, hosted_tool
from argoproxy.ids import random_hex
from argoproxy.pipeline.answer_shape import bounded_loads

NAMESPACE_JOIN = "__"
# Input items recording a hosted tool's work: the hosted tool ran at OpenAI, a chat upstream cannot take them.
HOSTED_CALL_ITEMS = ("web_search_call", "file_search_call", "image_generation_call", "code_interpreter_call",
                     "tool_search_call", "tool_search_output", "mcp_list_tools", "mcp_call",
                     "mcp_approval_request", "mcp_approval_response")
# Item fields that are bookkeeping, not a call's arguments.
ITEM_KEYS = ("type", "id", "call_id", "status")


def field_error(message: str, param: str) -> ProxyError:
    """The Responses door's 400 about one field (argoproxy/fronts/fields.py's `bad`)."""
    return bad_request(f"`{param}` {message}", param)


@dataclass
class ChatTools:
    """The request's tools as chat functions, and what the answer needs to name their calls back."""
    functions: list[dict[str, Any]] = field(default_factory=list)
    # chat function name -> (namespace, name, kind "function" | "custom"), for the names that differ
    names: dict[str, tuple[str | None, str, str]] = field(default_factory=dict)
    # tool types (and dropped input item types), in order: a dict as an ordered set (a list's `in` is quadratic)
    dropped: dict[str, None] = field(default_factory=dict)

    def add_all(self, tools: Any, param: str) -> None:
        if not isinstance(tools, list):
            raise bad_request(f"`{param}` must be a list.", param)
        for i, tool in enumerate(tools):
            self.add(tool, f"{param}[{i}]")

    def add(self, tool: Any, param: str, namespace: str | None = None) -> None:
        if not isinstance(tool, dict):
            raise bad_request("Each tool must be an object.", param)
        kind = tool.get("type")
        if not isinstance(kind, str) or not kind:
            raise bad_request("Each tool needs a `type` (function, custom...).", f"{param}.type",
                              "missing_required_parameter")
        if kind == "namespace" and namespace is None:
            self._namespace(tool, param)
        elif kind in ("function", "custom"):
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise bad_request(f"A {kind} tool needs a `name`.", f"{param}.name", "missing_required_parameter")
            chat_name = f"{namespace}{NAMESPACE_JOIN}{name}" if namespace else name
            function = function_of(tool, param) if kind == "function" else custom_function(tool, param)
            function["name"] = chat_name
            self.functions.append({"type": "function", "function": function})
            if namespace or kind == "custom":
                self.names[chat_name] = (namespace, name, kind)
        else:
            hosted_tool(tool, kind, param, field_error)
            self.note_dropped(kind)

    def _namespace(self, tool: dict[str, Any], param: str) -> None:
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("A namespace tool needs a `name`.", f"{param}.name", "missing_required_parameter")
        inner = tool.get("tools")
        if not isinstance(inner, list):
            raise bad_request("A namespace tool needs a list of `tools`.", f"{param}.tools")
        for j, sub in enumerate(inner):
            self.add(sub, f"{param}.tools[{j}]", namespace=name)

    def note_dropped(self, kind: str) -> None:
        self.dropped[kind] = None

    def choice(self, choice: Any) -> Any:
        """tool_choice -> the chat tool_choice (None: leave it out, the tool it named was dropped)."""
        if choice in ("none", "auto", "required"):
            return choice if self.functions or choice == "none" else None
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind in ("function", "custom") and isinstance(choice.get("name"), str):
                return {"type": "function", "function": {"name": choice["name"]}}
            if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
                return choice["mode"] if self.functions else None
            if isinstance(kind, str) and kind not in ("function", "custom", "allowed_tools"):
                return None  # a hosted or built-in tool, dropped with it
        raise bad_request("`tool_choice` must be none, auto, required or {\"type\": \"function\", \"name\": ...}.",
                          "tool_choice")

    def allowed(self, choice: Any) -> set[str] | None:
        """The chat names of the functions an `allowed_tools` choice lets the model call (None: any)."""
        if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
            return None
        listed = choice.get("tools")
        if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
            raise bad_request("`tool_choice.tools` must be a list of tool objects.", "tool_choice.tools")
        names = {t.get("name") for t in listed if t.get("type") in ("function", "custom")}
        return {f["function"]["name"] for f in self.functions
                if self.names.get(f["function"]["name"], (None, f["function"]["name"], ""))[1] in names}

    # -- answers
    def output_item(self, chat_name: str, call_id: str, arguments: str, item_id: str | None = None,
                    status: str = "completed", resp_id: str | None = None) -> dict[str, Any]:
        """A chat tool call as its Responses output item (function_call, or custom_tool_call); `resp_id`: the
        response it belongs to (its id ends the item's: output_item_id)."""
        namespace, name, kind = self.names.get(chat_name, (None, chat_name, "function"))
        if kind == "custom":
            item = {"type": "custom_tool_call", "id": item_id or output_item_id("ctc_", resp_id), "call_id": call_id,
                    "name": name, "input": custom_input(arguments), "status": status}
        else:  # a call without arguments: "{}", as OpenAI writes it (Codex cannot parse "")
            item = {"type": "function_call", "id": item_id or output_item_id("fc_", resp_id), "call_id": call_id,
                    "name": name,
                    "arguments": arguments or ("{}" if status == "completed" else ""), "status": status}
        if namespace:
            item["namespace"] = namespace
        return item

    def is_custom(self, chat_name: str) -> bool:
        return self.names.get(chat_name, (None, "", "function"))[2] == "custom"


def output_item_id(prefix: str, resp_id: str | None) -> str:
    """An output item's id: its prefix, 8 random hex digits, then the last 24 of its response's id, as OpenAI's
    item ids share their response's digits: an item_reference finds a stored response's item by them."""
    if not resp_id or len(resp_id) < 29:
        return new_id(prefix)
    return prefix + random_hex(4) + resp_id[-24:]


def function_of(tool: dict[str, Any], param: str) -> dict[str, Any]:
    string(tool, "description", f"{param}.description", field_error)
    obj(tool, "parameters", f"{param}.parameters", field_error)
    boolean(tool, "strict", f"{param}.strict", field_error)
    return {key: tool[key] for key in ("description", "parameters", "strict") if tool.get(key) is not None}


def custom_function(tool: dict[str, Any], param: str) -> dict[str, Any]:
    """A custom tool as a function of one string; a grammar format goes into the description, so the model
    still knows the syntax its input must follow. Its format is checked as the document gives it (text, or a
    lark or regex grammar), and its flags, which are left out."""
    if "defer_loading" in tool or "allowed_callers" in tool:
        checked(tool, CUSTOM_FLAGS, param, field_error)
    description = string(tool, "description", f"{param}.description", field_error) or ""
    fmt = obj(tool, "format", f"{param}.format", field_error)
    kind = "text" if fmt is None else fmt.get("type")
    if fmt is not None and kind == "grammar":  # written out, not as rules: Codex sends one in every request
        syntax, definition = fmt.get("syntax"), fmt.get("definition")
        if syntax not in GRAMMAR_SYNTAXES:
            raise field_error(f"must be one of {', '.join(GRAMMAR_SYNTAXES)}.", f"{param}.format.syntax")
        if not isinstance(definition, str):
            raise field_error("must be a string.", f"{param}.format.definition")
        note = f"The input must follow this {syntax} grammar:\n{definition}"
        description = f"{description}\n\n{note}" if description else note
    elif kind != "text":
        raise field_error("must be one of text, grammar.", f"{param}.format.type")
    function: dict[str, Any] = {"parameters": {"type": "object", "properties": {"input": {
        "type": "string", "description": "The tool's input, as free-form text."}}, "required": ["input"]}}
    if description:
        function["description"] = description
    return function


def custom_input(arguments: str) -> str:
    """The free-form input of a custom tool call from its function arguments ({"input": ...})."""
    try:
        value = bounded_loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
    text = value.get("input") if isinstance(value, dict) else None
    return text if isinstance(text, str) else arguments


def chat_name(item: dict[str, Any], name: str, param: str) -> str:
    namespace = string(item, "namespace", f"{param}.namespace", field_error)
    return f"{namespace}{NAMESPACE_JOIN}{name}" if namespace else name


def replayed_call(item: dict[str, Any], kind: str, param: str) -> tuple[str, str]:
    """(chat function name, arguments) of a tool call item the client replays: custom_tool_call carries its
    input, the built-in client tools (local_shell_call, shell_call, apply_patch_call...) their action."""
    if kind == "custom_tool_call":
        name = string(item, "name", f"{param}.name", field_error) or "custom"
        text = string(item, "input", f"{param}.input", field_error) or ""
        return chat_name(item, name, param), json.dumps({"input": text}, ensure_ascii=False)
    arguments = {k: v for k, v in item.items() if k not in ITEM_KEYS}
    return kind[:-len("_call")], json.dumps(arguments, ensure_ascii=False)
