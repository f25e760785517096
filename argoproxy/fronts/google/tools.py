"""Google's function declarations and schemas -> chat tools: functionDeclarations as chat functions, Google's
Schema (an OpenAPI 3.0 subset) as JSON Schema, toolConfig as tool_choice, responseMimeType and its schema as
response_format.
"""

from __future__ import annotations

from typing import Any

from argoproxy.fronts.google.fields import bad, list_field, object_field, string_field


SCHEMA_DEPTH = 64  # nesting a tool schema may have (the conversion recurses)


def tools_to_chat(tools: list[Any], dropped: dict[str, None] | None) -> list[dict[str, Any]]:
    """functionDeclarations as chat functions. Google's own tools (googleSearch, codeExecution, urlContext...)
    have no chat form: they are left out and noted in `dropped` (the door logs them), as on the other doors."""
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise bad("must be a Tool object.", where)
        for key in tool:
            if key not in ("functionDeclarations", "function_declarations") and dropped is not None:
                dropped[key] = None  # an ordered set: many tools name few kinds
        for j, decl in enumerate(list_field(tool, "functionDeclarations", f"{where}.") or ()):
            out.append(declaration_to_chat(decl, f"{where}.functionDeclarations[{j}]"))
    return out


def declaration_to_chat(decl: Any, where: str) -> dict[str, Any]:
    if not isinstance(decl, dict):
        raise bad("must be a FunctionDeclaration object.", where)
    name = string_field(decl, "name", f"{where}.")
    if not name:
        raise bad("Field required: a function name.", f"{where}.name")
    function: dict[str, Any] = {"name": name}
    description = string_field(decl, "description", f"{where}.")
    if description:
        function["description"] = description
    schema = object_field(decl, "parametersJsonSchema", f"{where}.")  # JSON Schema as it is
    if schema is None:
        given = object_field(decl, "parameters", f"{where}.")
        schema = openapi_schema(given, f"{where}.parameters") if given is not None else None
    function["parameters"] = schema or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def openapi_schema(schema: Any, where: str, depth: int = 0) -> dict[str, Any]:
    """Google's Schema (an OpenAPI 3.0 subset, types in capitals) as the JSON Schema chat tools take."""
    if not isinstance(schema, dict):
        raise bad("must be a Schema object.", where)
    if depth > SCHEMA_DEPTH:
        raise bad(f"is nested more than {SCHEMA_DEPTH} levels deep.", where)
    out: dict[str, Any] = {}
    for given, value in schema.items():
        key = camel(given)  # proto names (any_of, max_items) are JSON Schema's camelCase keywords
        at = f"{where}.{given}"
        if key == "type":
            if not isinstance(value, str):
                raise bad("must be a string.", at)
            if value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif key == "properties":
            if not isinstance(value, dict):
                raise bad("must be an object.", at)
            out[key] = {name: openapi_schema(sub, f"{at}.{name}", depth + 1) for name, sub in value.items()}
        elif key == "items":
            out[key] = openapi_schema(value, at, depth + 1)
        elif key == "anyOf":
            if not isinstance(value, list):
                raise bad("must be a list.", at)
            out[key] = [openapi_schema(sub, f"{at}[{k}]", depth + 1) for k, sub in enumerate(value)]
        elif key in ("nullable", "propertyOrdering", "example"):
            continue  # no JSON Schema keyword a chat upstream would take
        else:
            out[key] = value  # description, enum, required, format, minimum, maxItems...: the same in both
    return out


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest) if rest else key


def tool_config_to_chat(config: dict[str, Any] | None, functions: list[dict[str, Any]] | None = None) -> Any:
    """toolConfig.functionCallingConfig -> tool_choice (None: the upstream's default, auto). ANY with several
    allowedFunctionNames leaves only those in `functions` (chat's tool_choice names one function or none)."""
    if not config:
        return None
    calling = object_field(config, "functionCallingConfig", "toolConfig.") or {}
    where = "toolConfig.functionCallingConfig."
    mode = (string_field(calling, "mode", where) or "AUTO").upper()
    names = list_field(calling, "allowedFunctionNames", where) or []
    if not all(isinstance(n, str) for n in names):
        raise bad("must be a list of strings.", f"{where}allowedFunctionNames")
    if mode in ("AUTO", "MODE_UNSPECIFIED"):
        return "auto"
    if mode == "NONE":
        return "none"
    if mode in ("ANY", "VALIDATED"):
        if len(names) == 1:
            return {"type": "function", "function": {"name": names[0]}}
        if names and functions is not None:
            kept = [f for f in functions if f["function"]["name"] in names]
            if not kept:
                raise bad("names none of the declared functions.", f"{where}allowedFunctionNames")
            functions[:] = kept
        return "required"
    raise bad("must be AUTO, ANY, NONE or VALIDATED.", f"{where}mode")


def format_to_chat(config: dict[str, Any]) -> dict[str, Any] | None:
    """responseMimeType (+ responseSchema or responseJsonSchema) -> response_format."""
    at = "generationConfig."
    mime = string_field(config, "responseMimeType", at)
    json_schema = object_field(config, "responseJsonSchema", at)
    schema = object_field(config, "responseSchema", at)
    if schema is not None and json_schema is None:
        json_schema = openapi_schema(schema, f"{at}responseSchema")
    if mime in (None, "", "text/plain"):
        if json_schema is not None:
            raise bad("a response schema needs responseMimeType application/json.", f"{at}responseMimeType")
        return None
    if mime != "application/json":
        raise bad("must be text/plain or application/json through a chat-completions backend.",
                   f"{at}responseMimeType")
    if json_schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema}}
