"""The Google GenAI (Gemini API) front door: `POST /v1beta/models/{model}:generateContent`,
`:streamGenerateContent` (`?alt=sse`, or a JSON array streamed without it) and `:countTokens`, translated to the
one internal chat-completions request; a chat.completion (or its chunks) back as a GenerateContentResponse (or
its stream). `:embedContent` and `:batchEmbedContents` become one embeddings request (their texts in order).
The model list routes (`GET /v1beta/models[/{model}]`) are answered by the door from the proxy's own
list (argoproxy/serve/door.py answers a door's `models` routes in the door's shape: `model_list`, `model_entry`).
Every path under /v1beta/ and /v1alpha/ (google-genai's `api_version="v1alpha"`), and google-genai's uploads
(/upload/v1beta/...), is this door's (errors in Google's shape) and never forwarded: a Gemini client's key may
ride in its query (`?key=`). So is /v1/models/{model}:{method} for a Google method (google-genai 3 defaults to API
version v1); GET /v1/models[/{id}] is this door's when the client is a Google one (`claims_client`). The model
segment is decoded once like any segment (so `%3A` is `:`); the method is what follows its last ':'
(`argo:gpt-4o:generateContent` is the model `argo:gpt-4o`), matched whatever its case; a model name may hold '/'
as /v1/models/{id} does.

Google has no tool-call ids on the wire by default: a `functionCall` in the history gets the id it carries, else
one made from its turn and place, and each `functionResponse` of the next user turn is matched back to a call of
the previous model turn by its id when it has one, else by name, in order. Thought parts (`thought: true`) in the
history are dropped (a chat upstream cannot take them back); reasoning in answers becomes thought parts only when
`generationConfig.thinkingConfig.includeThoughts` is true, as Gemini does. Every field read is type-checked, and
a bad one is a 400 naming it (`contents[2].parts[0].inlineData.mimeType: ...`).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from argoproxy.edge.classify import Route
from argoproxy.edge.paths import encode_path
from argoproxy.edge.request_models import query_values
from argoproxy.errors import ProxyError
from argoproxy.fronts.front import (ARGS_LIMIT, PIECE_COST, DoorArgs, Exchange, Front, StreamState,
                                    bad_request, embedding_vectors, new_id, whole_answer)
from argoproxy.fronts.fields import has_kind, json_type
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.answer_shape import bounded_loads

# HTTP status -> google.rpc.Code name (https://cloud.google.com/apis/design/errors#handling_errors).
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                405: "INVALID_ARGUMENT", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT",
                415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "function_call": "STOP",
                  "content_filter": "SAFETY"}
# The methods of /v1beta/models/{model}:{method}, by their lower-cased name -> (route kind, spelling).
METHODS = {"generatecontent": ("generate_content", "generateContent"),
           "streamgeneratecontent": ("stream_generate_content", "streamGenerateContent"),
           "counttokens": ("count_tokens", "countTokens"), "embedcontent": ("embed_content", "embedContent"),
           "batchembedcontents": ("batch_embed_contents", "batchEmbedContents")}
EMBED_METHODS = ("embed_content", "batch_embed_contents")  # answered from an embeddings request
THINKING_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
# Chat-completions parameter -> where the client set it (errors the chat request's checks raise name it).
RENAMED = {"temperature": "generationConfig.temperature", "top_p": "generationConfig.topP",
           "top_k": "generationConfig.topK", "max_tokens": "generationConfig.maxOutputTokens",
           "stop": "generationConfig.stopSequences", "seed": "generationConfig.seed",
           "presence_penalty": "generationConfig.presencePenalty",
           "frequency_penalty": "generationConfig.frequencyPenalty", "messages": "contents", "tools": "tools",
           "response_format": "generationConfig.responseMimeType"}
SCHEMA_DEPTH = 64  # nesting a tool schema may have (the conversion recurses)
OUTPUT_LIMIT = 1024 * 1024  # characters of a streamed answer kept for the journal (the rest is counted)
SSE_END = b"\r\n\r\n"  # Google ends its SSE events with CRLF pairs; every SSE reader takes them
CHUNK_HEAD = b'{"candidates":[{"content":{"role":"model","parts":'  # every stream chunk starts so


def status_name(status: int) -> str:
    if status in STATUS_NAMES:
        return STATUS_NAMES[status]
    return "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"


def _bad(message: str, where: str) -> ProxyError:
    return bad_request(f"{where}: {message}", where)


# ---------------------------------------------------------------------------------------------- field checks

@functools.lru_cache(maxsize=None)  # keys are this module's own literals
def snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _value(obj: Mapping[str, Any], key: str, where: str = "") -> Any:
    """A field under its JSON name or its proto name (`maxOutputTokens` or `max_output_tokens`): Google's
    parsers take both, and so do its SDKs send both. Given both ways it is a 400 (which would win is a guess)."""
    other = snake(key)
    if other == key or other not in obj:
        return obj.get(key)
    if key in obj:
        raise _bad(f"is given twice (as {key} and {other}).", f"{where}{key}")
    return obj[other]


def _has(obj: Mapping[str, Any], key: str) -> bool:
    return key in obj or snake(key) in obj


def _get(obj: Mapping[str, Any], key: str, kind: str, where: str) -> Any:
    """obj[key] when present and of this JSON kind ("a string"...; None when absent or null), else a 400 naming
    it (argoproxy/fronts/fields.py words the type, as on the other doors)."""
    value = _value(obj, key, where)
    if value is None:
        return None
    if not has_kind(value, kind):
        raise _bad(f"must be {kind}, not {json_type(value)}.", f"{where}{key}")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str) -> float | int | None:
    value: float | int | None = _get(obj, key, "a number", where)
    return value


def _whole(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    """An integer field. Google's JSON mapping of its integer fields takes a whole number written with a
    fraction (`20.0`), which is what the google-genai SDK sends: it types top_k as a float."""
    raw = _value(obj, key, where)
    value: int | None = int(raw) if type(raw) is float and raw.is_integer() else _get(obj, key, "an integer", where)
    if value is not None and not INT32[0] <= value <= INT32[1]:  # Google's are int32 (TYPE_INT32): a 400 there
        raise _bad(f"must be a 32-bit integer ({INT32[0]} to {INT32[1]}).", f"{where}{key}")
    return value


INT32 = (-2 ** 31, 2 ** 31 - 1)


def _integer(obj: Mapping[str, Any], key: str, where: str, minimum: int = 0) -> int | None:
    value = _whole(obj, key, where)
    if value is not None and value < minimum:
        raise _bad(f"must be at least {minimum}.", f"{where}{key}")
    return value


def _object(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value: dict[str, Any] | None = _get(obj, key, "an object", where)
    return value


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any] | None:
    value: list[Any] | None = _get(obj, key, "an array", where)
    return value


def _string(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value: str | None = _get(obj, key, "a string", where)
    return value


# ---------------------------------------------------------------------------------------------- request

@dataclass
class CallBook:
    """The function calls of the history, so that each functionResponse finds the call it answers. Indexed by
    id and by name (a scan per answer made 48,000 answered calls cost 36 s of a worker's CPU)."""
    turn: int = 0
    pending: dict[str, list[str]] = field(default_factory=dict)  # id -> the names called under it (one, usually)
    by_name: dict[str, deque[str]] = field(default_factory=dict)  # name -> ids in order (some answered already)
    count: int = 0  # calls of the last model turn

    def called(self, name: str, given: str | None) -> str:
        call_id = given or f"call_{self.turn}_{self.count}"
        self.count += 1
        self.pending.setdefault(call_id, []).append(name)
        self.by_name.setdefault(name, deque()).append(call_id)
        return call_id

    def answered(self, name: str, given: str | None, where: str) -> str:
        if given is not None and given in self.pending:
            self._take(given, self.pending[given][0])
            return given
        # by name, in order: no id given, or an id this proxy never saw (the client made its own)
        ids = self.by_name.get(name)
        while ids:
            call_id = ids.popleft()
            if name in self.pending.get(call_id, ()):
                self._take(call_id, name)
                return call_id
        raise _bad(f"no functionCall named {name!r} in the previous model turn is left to answer.", where)

    def _take(self, call_id: str, name: str) -> None:
        names = self.pending[call_id]
        names.remove(name)
        if not names:
            del self.pending[call_id]

    def next_turn(self) -> None:
        """Calls left unanswered stay so; the next model turn starts its own."""
        self.pending.clear()
        self.by_name.clear()
        self.count = 0


def request_to_chat(body: dict[str, Any], args: DoorArgs, *, count_only: bool = False,
                    dropped: dict[str, None] | None = None) -> dict[str, Any]:
    """A generateContent (or countTokens) request as a chat-completions request body."""
    wrapped = _object(body, "generateContentRequest", "") if count_only else None
    if wrapped is not None:
        if _value(body, "contents"):  # Google refuses the pair (an empty list reads as none): which to count?
            raise _bad("give either contents or generateContentRequest, not both.", "generateContentRequest")
        body = wrapped  # countTokens may wrap a whole request
    contents = _list(body, "contents", "")
    if not contents and not count_only:
        raise _bad("Field required: a non-empty list of contents.", "contents")
    messages: list[dict[str, Any]] = []
    system = system_text(_value(body, "systemInstruction"), "systemInstruction")
    if system:
        messages.append({"role": "system", "content": system})
    book = CallBook()
    for i, content in enumerate(contents or ()):
        book.turn = i
        messages.extend(content_to_chat(content, f"contents[{i}]", book))
    chat: dict[str, Any] = {"model": args.model, "messages": messages}
    tools = _list(body, "tools", "")
    if tools:
        functions = tools_to_chat(tools, dropped)
        if functions:
            chat["tools"] = functions
            choice = tool_config_to_chat(_object(body, "toolConfig", ""), functions)
            if choice is not None:
                chat["tool_choice"] = choice
    if _string(body, "cachedContent", "") is not None:
        raise _bad("cached contents are not kept by this proxy; send the contents themselves.", "cachedContent")
    _list(body, "safetySettings", "")  # accepted and left out: a chat upstream has no such setting
    generation_to_chat(_object(body, "generationConfig", "") or {}, chat)
    if args.stream and not count_only:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def system_text(system: Any, where: str) -> str:
    """systemInstruction: a Content whose parts are text (a bare string is taken too, as the SDKs send one)."""
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, dict):
        raise _bad("must be a Content object with text parts.", where)
    texts = []
    for j, part in enumerate(_list(system, "parts", f"{where}.") or ()):
        at = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise _bad("must be a Part object.", at)
        text = _string(part, "text", f"{at}.")
        if text is None:
            raise _bad("Field required: system instructions take text parts.", f"{at}.text")
        texts.append(text)
    return "\n\n".join(t for t in texts if t)


def content_to_chat(content: Any, where: str, book: CallBook) -> list[dict[str, Any]]:
    """One Content as chat messages: a model turn becomes one assistant message (text and tool calls); a user
    turn's functionResponses become tool messages (first, as chat wants them right after the calls), then a user
    message with whatever else it held."""
    if not isinstance(content, dict):
        raise _bad("must be a Content object.", where)
    role = _string(content, "role", f"{where}.") or "user"
    if role not in ("user", "model", "function", "tool"):
        raise _bad("must be user or model.", f"{where}.role")
    parts = _list(content, "parts", f"{where}.")
    if not parts:
        raise _bad("Field required: a non-empty list of parts.", f"{where}.parts")
    if role == "model":
        return [model_turn(parts, where, book)]
    tools: list[dict[str, Any]] = []
    chat_parts: list[dict[str, Any]] = []
    for at, part in part_objects(parts, where):
        response = _object(part, "functionResponse", f"{at}.")
        if response is not None:
            tools.append(function_response(response, f"{at}.functionResponse", book))
        elif part.get("thought") is True:
            continue
        else:
            chat_parts.append(part_to_chat(part, at))
    book.next_turn()
    out = tools
    if chat_parts:
        if all(p["type"] == "text" for p in chat_parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in chat_parts)})
        else:
            out.append({"role": "user", "content": chat_parts})
    return out


def part_objects(parts: list[Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, part) for each part of a Content, each checked to be an object."""
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise _bad("must be a Part object.", at)
        yield at, part


def model_turn(parts: list[Any], where: str, book: CallBook) -> dict[str, Any]:
    book.next_turn()
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for at, part in part_objects(parts, where):
        call = _object(part, "functionCall", f"{at}.")
        if call is not None:
            name = _string(call, "name", f"{at}.functionCall.")
            if not name:
                raise _bad("Field required: the function's name.", f"{at}.functionCall.name")
            arguments = _object(call, "args", f"{at}.functionCall.") or {}
            call_id = book.called(name, _string(call, "id", f"{at}.functionCall."))
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}})
        elif part.get("thought") is True:
            continue
        elif _has(part, "text"):
            texts.append(_string(part, "text", f"{at}.") or "")
        else:
            raise _bad("model turns take text and functionCall parts through a chat-completions backend.", at)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def function_response(response: dict[str, Any], where: str, book: CallBook) -> dict[str, Any]:
    name = _string(response, "name", f"{where}.")
    if not name:
        raise _bad("Field required: the function's name.", f"{where}.name")
    result = _value(response, "response")
    if result is not None and not isinstance(result, dict):
        raise _bad("must be an object.", f"{where}.response")
    call_id = book.answered(name, _string(response, "id", f"{where}."), where)
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result or {}, ensure_ascii=False)}


def part_to_chat(part: dict[str, Any], where: str) -> dict[str, Any]:
    """A user part as a chat content part: text, an image (inline or by URL) or a PDF."""
    if _has(part, "text"):
        return {"type": "text", "text": _string(part, "text", f"{where}.") or ""}
    inline = _object(part, "inlineData", f"{where}.")
    if inline is not None:
        mime = _string(inline, "mimeType", f"{where}.inlineData.") or ""
        data = _string(inline, "data", f"{where}.inlineData.")
        if not data:
            raise _bad("Field required: base64 data.", f"{where}.inlineData.data")
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
        if mime == "application/pdf":
            return {"type": "file", "file": {"file_data": f"data:{mime};base64,{data}", "filename": "document.pdf"}}
        if mime.startswith("text/"):
            return {"type": "text", "text": _base64_text(data, f"{where}.inlineData.data")}
        raise _bad("only images, PDFs and text can go through a chat-completions backend.",
                   f"{where}.inlineData.mimeType")
    file = _object(part, "fileData", f"{where}.")
    if file is not None:
        uri = _string(file, "fileUri", f"{where}.fileData.") or ""
        mime = _string(file, "mimeType", f"{where}.fileData.") or ""
        if uri.startswith(("http://", "https://")) and (mime.startswith("image/") or not mime):
            return {"type": "image_url", "image_url": {"url": uri}}
        raise _bad("only image URLs (http or https) can go through a chat-completions backend; uploaded files are "
                   "not kept by this proxy.", f"{where}.fileData")
    if _has(part, "functionCall"):
        raise _bad("functionCall parts belong in model turns.", f"{where}.functionCall")
    kinds = ", ".join(k for k in part if k not in ("thought", "thoughtSignature", "thought_signature")) or "nothing"
    raise _bad(f"a part holding {kinds} cannot go through a chat-completions backend.", where)


def _base64_text(data: str, where: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise _bad("must be base64 of UTF-8 text.", where) from None


def tools_to_chat(tools: list[Any], dropped: dict[str, None] | None) -> list[dict[str, Any]]:
    """functionDeclarations as chat functions. Google's own tools (googleSearch, codeExecution, urlContext...)
    have no chat form: they are left out and noted in `dropped` (the door logs them), as on the other doors."""
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad("must be a Tool object.", where)
        for key in tool:
            if key not in ("functionDeclarations", "function_declarations") and dropped is not None:
                dropped[key] = None  # an ordered set: many tools name few kinds
        for j, decl in enumerate(_list(tool, "functionDeclarations", f"{where}.") or ()):
            out.append(declaration_to_chat(decl, f"{where}.functionDeclarations[{j}]"))
    return out


def declaration_to_chat(decl: Any, where: str) -> dict[str, Any]:
    if not isinstance(decl, dict):
        raise _bad("must be a FunctionDeclaration object.", where)
    name = _string(decl, "name", f"{where}.")
    if not name:
        raise _bad("Field required: a function name.", f"{where}.name")
    function: dict[str, Any] = {"name": name}
    description = _string(decl, "description", f"{where}.")
    if description:
        function["description"] = description
    schema = _object(decl, "parametersJsonSchema", f"{where}.")  # JSON Schema as it is
    if schema is None:
        given = _object(decl, "parameters", f"{where}.")
        schema = openapi_schema(given, f"{where}.parameters") if given is not None else None
    function["parameters"] = schema or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def openapi_schema(schema: Any, where: str, depth: int = 0) -> dict[str, Any]:
    """Google's Schema (an OpenAPI 3.0 subset, types in capitals) as the JSON Schema chat tools take."""
    if not isinstance(schema, dict):
        raise _bad("must be a Schema object.", where)
    if depth > SCHEMA_DEPTH:
        raise _bad(f"is nested more than {SCHEMA_DEPTH} levels deep.", where)
    out: dict[str, Any] = {}
    for given, value in schema.items():
        key = camel(given)  # proto names (any_of, max_items) are JSON Schema's camelCase keywords
        at = f"{where}.{given}"
        if key == "type":
            if not isinstance(value, str):
                raise _bad("must be a string.", at)
            if value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif key == "properties":
            if not isinstance(value, dict):
                raise _bad("must be an object.", at)
            out[key] = {name: openapi_schema(sub, f"{at}.{name}", depth + 1) for name, sub in value.items()}
        elif key == "items":
            out[key] = openapi_schema(value, at, depth + 1)
        elif key == "anyOf":
            if not isinstance(value, list):
                raise _bad("must be a list.", at)
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
    calling = _object(config, "functionCallingConfig", "toolConfig.") or {}
    where = "toolConfig.functionCallingConfig."
    mode = (_string(calling, "mode", where) or "AUTO").upper()
    names = _list(calling, "allowedFunctionNames", where) or []
    if not all(isinstance(n, str) for n in names):
        raise _bad("must be a list of strings.", f"{where}allowedFunctionNames")
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
                raise _bad("names none of the declared functions.", f"{where}allowedFunctionNames")
            functions[:] = kept
        return "required"
    raise _bad("must be AUTO, ANY, NONE or VALIDATED.", f"{where}mode")


def generation_to_chat(config: dict[str, Any], chat: dict[str, Any]) -> None:
    """generationConfig -> chat parameters (fields a chat upstream has no use for are left out)."""
    at = "generationConfig."
    for key, name in (("temperature", "temperature"), ("topP", "top_p"), ("presencePenalty", "presence_penalty"),
                      ("frequencyPenalty", "frequency_penalty")):
        value = _number(config, key, at)
        if value is not None:
            chat[name] = value
    for key, name in (("topK", "top_k"), ("seed", "seed")):
        value = _whole(config, key, at)
        if value is not None:
            chat[name] = value
    max_tokens = _integer(config, "maxOutputTokens", at, minimum=1)
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    stops = _list(config, "stopSequences", at)
    if stops:
        if not all(isinstance(s, str) for s in stops):
            raise _bad("must be a list of strings.", f"{at}stopSequences")
        chat["stop"] = stops
    count = _integer(config, "candidateCount", at, minimum=1)
    if count is not None and count != 1:
        raise _bad("only 1 candidate can be generated through this proxy.", f"{at}candidateCount")
    modalities = _list(config, "responseModalities", at) or []
    if any(not isinstance(m, str) or m.upper() != "TEXT" for m in modalities):
        raise _bad("only TEXT can be generated through a chat-completions backend.", f"{at}responseModalities")
    response_format = format_to_chat(config)
    if response_format is not None:
        chat["response_format"] = response_format
    thinking = _object(config, "thinkingConfig", at) or {}
    _get(thinking, "includeThoughts", "a boolean", f"{at}thinkingConfig.")
    _whole(thinking, "thinkingBudget", f"{at}thinkingConfig.")  # no chat equivalent: left out
    level = _string(thinking, "thinkingLevel", f"{at}thinkingConfig.")
    if level is not None:
        if level.lower() not in THINKING_LEVELS:
            raise _bad("must be MINIMAL, LOW, MEDIUM or HIGH.", f"{at}thinkingConfig.thinkingLevel")
        chat["reasoning_effort"] = THINKING_LEVELS[level.lower()]


def format_to_chat(config: dict[str, Any]) -> dict[str, Any] | None:
    """responseMimeType (+ responseSchema or responseJsonSchema) -> response_format."""
    at = "generationConfig."
    mime = _string(config, "responseMimeType", at)
    json_schema = _object(config, "responseJsonSchema", at)
    schema = _object(config, "responseSchema", at)
    if schema is not None and json_schema is None:
        json_schema = openapi_schema(schema, f"{at}responseSchema")
    if mime in (None, "", "text/plain"):
        if json_schema is not None:
            raise _bad("a response schema needs responseMimeType application/json.", f"{at}responseMimeType")
        return None
    if mime != "application/json":
        raise _bad("must be text/plain or application/json through a chat-completions backend.",
                   f"{at}responseMimeType")
    if json_schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema}}


def thoughts_requested(body: Mapping[str, Any]) -> bool:
    """generationConfig.thinkingConfig.includeThoughts (checked already by generation_to_chat)."""
    config = _value(body, "generationConfig")
    thinking = _value(config, "thinkingConfig") if isinstance(config, dict) else None
    return isinstance(thinking, dict) and _value(thinking, "includeThoughts") is True


# ---------------------------------------------------------------------------------------------- answer

def usage_metadata(usage: Any) -> dict[str, Any]:
    """Chat usage as usageMetadata (candidates exclude the reasoning tokens, which Gemini counts apart). The
    shared answer side estimates a usage the upstream did not send (argoproxy/pipeline/stream_usage.py)."""
    if not isinstance(usage, dict):
        return {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    details = usage.get("completion_tokens_details")
    thoughts = (details.get("reasoning_tokens") or 0) if isinstance(details, dict) else 0
    out = {"promptTokenCount": prompt, "candidatesTokenCount": max(completion - thoughts, 0),
           "totalTokenCount": usage.get("total_tokens") or prompt + completion}
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    cached = usage.get("prompt_tokens_details")
    if isinstance(cached, dict) and cached.get("cached_tokens"):
        out["cachedContentTokenCount"] = cached["cached_tokens"]
    return out


def function_call_part(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """A chat tool call as a functionCall part; its id is kept, so a client that sends it back is matched by it."""
    try:
        args = bounded_loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        args = {"input": arguments}
    call: dict[str, Any] = {"name": name, "args": args if isinstance(args, dict) else {"input": args}}
    if call_id:
        call["id"] = call_id
    return {"functionCall": call}


def response_object(parts: list[dict[str, Any]], ex: Exchange, finish: str | None,
                    usage: dict[str, Any] | None, response_id: str) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        out["usageMetadata"] = usage
    out["modelVersion"] = ex.model
    out["responseId"] = response_id
    return out


def chat_to_response(completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """A whole chat.completion as a GenerateContentResponse."""
    answer = whole_answer(completion, ex)
    parts: list[dict[str, Any]] = [{"text": answer.reasoning, "thought": True}] if answer.reasoning else []
    text = answer.text + (answer.refusal or "")  # Gemini has no place of its own for a refusal
    if text or not answer.calls:
        parts.append({"text": text})
    for call in answer.calls:
        function = call.get("function") or {}
        parts.append(function_call_part(call.get("id"), function.get("name") or "", function.get("arguments")))
    finish = FINISH_REASONS.get(answer.choice.get("finish_reason") or "", "STOP")
    return response_object(parts, ex, finish, usage_metadata(ex.usage), new_id("resp_"))


# ---------------------------------------------------------------------------------------------- embeddings

def embed_request(body: dict[str, Any], model: str, batch: bool) -> dict[str, Any]:
    """embedContent (one Content) or batchEmbedContents (`requests`, each for the path's model) as one embeddings
    request: each Content's text parts joined. taskType and title are accepted and left out (an OpenAI embeddings
    server has no such setting); outputDimensionality becomes `dimensions` (one for the whole batch)."""
    if batch:
        requests = _list(body, "requests", "")
        if not requests:
            raise _bad("Field required: a non-empty list of requests.", "requests")
        places = [(f"requests[{i}]", r) for i, r in enumerate(requests)]
    else:
        places = [("", body)]
    texts: list[str] = []
    sizes: set[int] = set()
    for where, one in places:
        if not isinstance(one, dict):
            raise _bad("must be an EmbedContentRequest object.", where)
        prefix = f"{where}." if where else ""
        named = _string(one, "model", prefix)
        if named is not None and named.removeprefix("models/") != model:
            raise _bad(f"must be the model of the path (models/{model}).", f"{prefix}model")
        _string(one, "taskType", prefix)
        _string(one, "title", prefix)
        size = _integer(one, "outputDimensionality", prefix, minimum=1)
        if size is not None:
            sizes.add(size)
        texts.append(content_text(_object(one, "content", prefix), f"{prefix}content"))
    if len(sizes) > 1:
        raise _bad("must be the same for every request of a batch.", "requests[].outputDimensionality")
    out: dict[str, Any] = {"model": model, "input": texts}
    if sizes:
        out["dimensions"] = sizes.pop()
    return out


def content_text(content: dict[str, Any] | None, where: str) -> str:
    """The text of a Content to embed (its text parts, joined)."""
    if content is None:
        raise _bad("Field required: a Content.", where)
    parts = _list(content, "parts", f"{where}.")
    if not parts:
        raise _bad("Field required: a non-empty list of parts.", f"{where}.parts")
    texts = []
    for at, part in part_objects(parts, where):
        text = _string(part, "text", f"{at}.")
        if text is None:
            raise _bad("only text parts can be embedded through an OpenAI embeddings backend.", at)
        texts.append(text)
    return "".join(texts)


def embeddings_answer(result: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """An embeddings list as embedContent's answer (`embedding`) or batchEmbedContents' (`embeddings`, in order)."""
    vectors = [{"values": v} for v in embedding_vectors(result, ex)]
    if isinstance(ex, GoogleExchange) and ex.method == "batch_embed_contents":
        return {"embeddings": vectors}
    return {"embedding": vectors[0] if vectors else {"values": []}}


# ---------------------------------------------------------------------------------------------- stream

class GoogleStream(StreamState):
    """Chat chunks -> GenerateContentResponse chunks: each text or reasoning delta at once; function calls
    whole (Gemini sends a call's args as one object), in the last chunk with the finish reason and usage. What
    it holds is bounded: tool-call arguments up to ARGS_LIMIT bytes, and OUTPUT_LIMIT characters of the answer
    for the journal. A chunk is written as bytes around its parts: the constant rest is encoded once."""

    def __init__(self, ex: Exchange) -> None:
        super().__init__(ex)
        self.response_id = new_id("resp_")
        self.ids = b'"modelVersion":' + dumps(ex.model) + b',"responseId":"' + self.response_id.encode() + b'"}'
        self.kept: list[tuple[bool | None, list[Any]]] = []  # runs for the journal: (thought, pieces), (None, [call])
        self.kept_chars = 0

    def start(self) -> None:
        pass  # a Gemini stream has no opening event

    def emit(self, parts: bytes, finish: str | None = None, usage: dict[str, Any] | None = None) -> None:
        end = b'},"index":0,"finishReason":"' + finish.encode() + b'"}],' if finish else b'},"index":0}],'
        if usage is not None:
            end += b'"usageMetadata":' + dumps(usage) + b","
        self.events.append({"type": "chunk", "data": CHUNK_HEAD + parts + end + self.ids})

    def keep(self, thought: bool, text: str) -> None:
        """Text for the journal's copy of the answer, in runs (joined once, at the end)."""
        room = OUTPUT_LIMIT - self.kept_chars - PIECE_COST
        if room <= 0:
            return
        text = text[:room]
        self.kept_chars += len(text) + PIECE_COST
        if self.kept and self.kept[-1][0] is thought:
            self.kept[-1][1].append(text)
        else:
            self.kept.append((thought, [text]))

    def reasoning(self, text: str) -> None:
        self.keep(True, text)
        self.emit(b'[{"text":' + dumps(text) + b',"thought":true}]')

    def text(self, text: str) -> None:
        self.keep(False, text)
        self.emit(b'[{"text":' + dumps(text) + b"}]")

    def tool_call(self, key: int, fragment: dict[str, Any]) -> None:
        self.wait(key, fragment, fragment.get("function") or {})  # sent whole, in the last chunk

    def finish(self) -> None:
        calls = [function_call_part(call_id or new_id("call_"), name, args) for _, call_id, name, args in self.waited()]
        finish = FINISH_REASONS.get(self.choice.get("finish_reason") or "", "STOP")
        usage = usage_metadata(self.ex.usage)
        # an empty text part, not an empty list: google-genai's chunk.text is None for a chunk without one, and
        # the SDK's own streaming example (print(chunk.text, end="")) printed "None"
        self.emit(dumps(calls) if calls else b'[{"text":""}]', finish, usage)
        parts: list[dict[str, Any]] = [{"text": "".join(pieces), "thought": True} if thought
                                       else {"text": "".join(pieces)} for thought, pieces in self.kept]
        self.ex.output = response_object(parts + calls or [{"text": ""}], self.ex, finish, usage, self.response_id)
        if isinstance(self.ex, GoogleExchange) and self.ex.sse is False:
            self.events.append({"type": "end"})

    def fail(self, err: ProxyError) -> None:
        self.events.append({"type": "error", "data": dumps(error_object(err.status, err.message))})
        if isinstance(self.ex, GoogleExchange) and self.ex.sse is False:
            self.events.append({"type": "end"})


def error_object(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Google's error shape (google.rpc.Status over HTTP); the request id as a RequestInfo detail."""
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name(status)}
    if request_id:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id}]
    return {"error": error}


@dataclass
class GoogleExchange(Exchange):
    """The Exchange of a Google request: how its stream is framed, which method it called."""
    sse: bool = True
    method: str = "generate_content"


@dataclass(frozen=True)
class GoogleArgs(DoorArgs):
    """The method the path names (a route kind: generate_content, embed_content...)."""
    method: str = "generate_content"


# A raw target meant for this door (answered in its error shape when its path is refused).
LOOKS_GOOGLE = re.compile(r"(?i)^(?:/upload)?/v1(?:beta|alpha)(?:/|$)|(?::|%3a)(?:streamgeneratecontent|generatecontent|"
                          r"counttokens|embedcontent|batchembedcontents)\b")


class GoogleFront(Front):
    name = "google"
    renamed = RENAMED
    key_headers = ("X-Goog-Api-Key",)
    key_params = frozenset({"key"})  # Google's `?key=`, read on this door's routes only
    key_hint = "`x-goog-api-key: <key>` or `?key=<key>`"
    joins_answer_pieces = True  # google-genai's chats replay a streamed answer as a model turn per chunk
    passes_through = False  # no backend serves Google's API
    # SSE comment lines break both Gemini SDKs' stream readers; a blank line is skipped by both (and is white
    # space between the elements of a JSON-array stream).
    keepalive_beat = b"\n"
    texts_in_events = False  # a chunk's text is encoded into its event as it is made (GoogleStream.emit)

    def route(self, parts: tuple[str, ...]) -> Route | None:
        key = tuple(p.lower() for p in parts[:2])
        if key[:1] in GOOGLE_ONLY:
            return google_route(parts)
        if key in GOOGLE_UPLOADS:  # google-genai's files.upload: not served, and never forwarded
            return Route("unknown", "unknown", encode_path(parts), front=self.name)
        if len(parts) > 2 and key == ("v1", "models") and split_method(parts[-1])[1] is not None:
            return google_route(parts)  # google-genai's default version is v1
        return None

    def claims_client(self, headers: Mapping[str, str], query: str) -> bool:
        """A Google SDK (x-goog-api-key or x-goog-api-client, or a `key` query parameter): OpenAI's and
        Anthropic's clients send none of them."""
        return "X-Goog-Api-Key" in headers or "X-Goog-Api-Client" in headers or \
            (bool(query) and bool(query_values(query, "key")))

    def looks_like_mine(self, target: str) -> bool:
        return LOOKS_GOOGLE.search(target) is not None

    def door_args(self, route: Route, query: str) -> DoorArgs | None:
        return GoogleArgs(model=route.model, stream=route.kind == "stream_generate_content", sse=sse_asked(query),
                          method=route.kind)

    def unserved(self, route: Route, method: str) -> ProxyError | None:
        if route.kind == "model" and method == "POST":
            return unserved_method(route.model or "")  # `x:embedContent` reads as a model named so
        return None

    def model_list(self, data: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        return model_list(data)

    def model_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return model_entry(entry)

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        args = args or DoorArgs()
        method = args.method if isinstance(args, GoogleArgs) else "generate_content"
        if method in EMBED_METHODS:
            request = embed_request(body, args.model or "", batch=method == "batch_embed_contents")
            return request, GoogleExchange(model=args.model or "", stream=False, request=body, kind="embeddings",
                                           path="v1/embeddings", method=method)
        dropped: dict[str, None] = {}
        chat = request_to_chat(body, args, count_only=count_only, dropped=dropped)
        stops = tuple(chat.get("stop") or ())
        asked = thoughts_requested(body)
        ex = GoogleExchange(model=args.model or "", stream=chat.get("stream") is True, request=body, thinking=asked,
                            asks_reasoning=asked, stop_sequences=stops, dropped=tuple(dropped), sse=args.sse)
        return chat, ex

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        if isinstance(ex, GoogleExchange) and ex.method in EMBED_METHODS:
            ex.output = embeddings_answer(completion, ex)
        else:
            ex.output = chat_to_response(completion, ex)
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        return framed(GoogleStream(ex).run(chunks), isinstance(ex, GoogleExchange) and ex.sse is False)

    def encode_event(self, event: dict[str, Any]) -> bytes:
        """SSE (`data: {...}` + CRLF CRLF), or a piece of the JSON array (`[`, `,` before each element, `]`).
        An error that ends an SSE stream is the bare object, as Google writes one: google-genai's JavaScript
        reader (Gemini CLI's) raises only for a read that is such an object, and took `data: {"error": ...}`
        for a chunk with no candidates, so a stream cut short ended as a success; the Python one reads both."""
        frame: bytes | None = event.get("frame")
        if frame is not None and event["type"] == "end":
            return frame
        data: bytes = event["data"]
        if frame is None:
            return data + b"\r\n" if event["type"] == "error" else b"data: " + data + SSE_END
        return frame + data

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        return error_object(status, err.get("message") or "", request_id)

    def client_key(self, headers: Mapping[str, str]) -> str | None:
        return None  # a Google API key is never an upstream's credential

    def upstream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Google's own headers (x-goog-api-key, x-goog-api-client...) stay here."""
        return {k: v for k, v in headers.items() if not k.lower().startswith("x-goog-")}

    def stream_type(self, ex: Exchange) -> str:
        return "text/event-stream; charset=utf-8" if not isinstance(ex, GoogleExchange) or ex.sse \
            else "application/json; charset=utf-8"

    def count_answer(self, count: int) -> dict[str, Any]:
        return {"totalTokens": count, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": count}]}


def framed(events: Iterator[dict[str, Any]], array: bool) -> Iterator[dict[str, Any]]:
    """Without `alt=sse` the stream is one JSON array: `[` before the first element, `,` before the others and
    `]` at the end (each event says which it gets, as the front itself is shared by all requests). With it, the
    events as they are (no generator step of its own per event)."""
    return _in_array(events) if array else events


def _in_array(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    first = True
    for event in events:
        if event["type"] == "end":
            yield {**event, "frame": b"[]" if first else b"]"}
            return
        yield {**event, "frame": b"[" if first else b",\r\n"}
        first = False


# ---------------------------------------------------------------------------------------------- routes

GOOGLE_VERSIONS = ("v1beta", "v1alpha", "v1")
# Paths only Google's API has: the Google door's, whatever follows (a Gemini client's key may ride in the query).
GOOGLE_ONLY = (("v1beta",), ("v1alpha",))
GOOGLE_UPLOADS = (("upload", "v1beta"), ("upload", "v1alpha"))


def google_route(parts: tuple[str, ...]) -> Route:
    """A path under /v1beta/ (or /v1/models/{model}:{method}): the Google door's model list, one model, or a
    method on a model, under the version the client named."""
    key = tuple(p.lower() for p in parts[:2])
    if key[0] not in GOOGLE_VERSIONS or key[1:] != ("models",):
        return Route("unknown", "unknown", encode_path(parts), front="google")
    models = (key[0], "models")
    if len(parts) == 2:
        return Route("models", "models", encode_path(models), frozenset({"GET", "HEAD"}), front="google")
    name, kind = split_method(parts[-1])
    model = "/".join(parts[2:-1] + (name,))
    if not name or model.startswith("/"):
        return Route("unknown", "unknown", encode_path(parts), front="google")
    if kind is None:
        return Route("model", "models", encode_path(models + parts[2:]), frozenset({"GET", "HEAD"}),
                     model=model, front="google")
    spelling = f"{name}:{METHODS[kind][1]}"
    return Route(METHODS[kind][0], "front", encode_path(models + parts[2:-1] + (spelling,)),
                 frozenset({"POST"}), model=model, front="google")


def sse_asked(query: str) -> bool:
    """`?alt=sse`: a Google stream as SSE; without it (or `alt=json`), one JSON array."""
    values = query_values(query, "alt") if query else []
    if len(values) > 1:
        raise ProxyError(400, "The query parameter `alt` is given more than once.", param="alt",
                         code="duplicate_parameter")
    alt = values[0].lower() if values else "json"
    if alt not in ("sse", "json"):
        raise ProxyError(400, "The query parameter `alt` must be sse or json.", param="alt", code="invalid_value")
    return alt == "sse"


def unserved_method(model: str) -> ProxyError:
    """A POST to /v1beta/models/{model}:{method} for a method the door does not serve (embedContent,
    batchEmbedContents, predict...): a 404 naming those it does, not a 405 for a model named `x:embedContent`."""
    name, _, method = model.rpartition(":")
    served = ", ".join(spelled for _, spelled in METHODS.values())
    named = bool(name) and method.isalpha()  # a method's name (embedContent), not a model's tail (argo:gpt-4o)
    what = f"`{method}`" if named else f"POST on the model `{model}` itself"
    return ProxyError(404, f"The Google door does not serve {what}: it serves {served}.", code="unknown_route")


def split_method(last: str) -> tuple[str, str | None]:
    """The last path segment of /v1beta/models/{model}:{method} as (model part, method kind): the method is
    what follows the last ':' (a model name may hold ':' itself, as `argo:gpt-4o` does), when it names one."""
    name, sep, method = last.rpartition(":")
    if sep and method.lower() in METHODS:
        return name, method.lower()
    return last, None


def model_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI model list entry as a Google Model."""
    name = str(entry.get("id") or "")
    methods = ["embedContent", "batchEmbedContents"] if "embed" in name.lower() else \
        ["generateContent", "streamGenerateContent", "countTokens"]  # a model whose name says it embeds
    return {"name": f"models/{name}", "baseModelId": name, "version": "001", "displayName": name,
            "description": f"{name}, served by cot_proxy ({entry.get('owned_by') or 'upstream'})",
            "supportedGenerationMethods": methods}


def model_list(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"models": [model_entry(m) for m in data if isinstance(m, Mapping) and m.get("id")]}
