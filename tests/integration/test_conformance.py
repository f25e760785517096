"""Every door's answers held to its API's published document (tests/specs/: OpenAI's OpenAPI, Open Responses,
Anthropic's, Gemini's and Ollama's): whole answers, every stream event, every error and the model lists, read off
the wire of the real app under Gunicorn, in front of an upstream that answers as a capable model does (reasoning,
text and two parallel tool calls, usage with cached and reasoning tokens) to requests with tools and an image.
Each request sent is first checked against the document's request schema (the sample is one the API accepts: it
must be answered); requests the document rejects get the API's own error shape and status.

The SDKs are lenient and pass answers their own documents reject, so this reads raw HTTP. docs/conformance.md
lists the deliberate departures; the few places a test lets one pass name it."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
import requests

from tests.fakes import capable_model as capable
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.specs import Spec, spec

MODEL = capable.MODEL
IMAGE_URL = f"data:image/png;base64,{capable.PNG}"
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-client"}
# Google's error envelope (AIP-193) is not in its API document: this is its documented shape.
GOOGLE_ERROR = {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {"error": {
    "type": "object", "required": ["code", "message", "status"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "status": {"type": "string"},
                   "details": {"type": "array"}}}}}


@pytest.fixture(scope="module")
def served():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, THINK_MODE="reasoning") as p:
        # a capable OpenAI-compatible server (vLLM, OpenAI's own): takes what llama.cpp's refuses
        fake.accepts_developer = fake.accepts_null_content = fake.accepts_json_schema = True
        fake.accepts_unparsed_arguments = True
        yield p, fake


class Wire:
    """Raw HTTP to the proxy, the upstream's next answers, and the problems found (all reported at the end)."""

    def __init__(self, proxy: Any, fake: FakeOpenAI) -> None:
        self.proxy, self.fake = proxy, fake
        self.problems: list[str] = []

    # -- the upstream
    def answers(self, *answers: Reply | Stream) -> None:
        self.fake.add(*answers)

    def capable(self, stream: bool, **kw: Any) -> None:
        self.fake.add(Stream(capable.chunks(**kw)) if stream else Reply(capable.whole(**kw)))

    # -- the proxy
    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             stream: bool = False) -> requests.Response:
        headers = {"Authorization": "Bearer sk-client", **(headers or {})}
        return requests.request(method, self.proxy.url + path, json=body, headers=headers, timeout=30, stream=stream)

    # -- checks
    def accepted(self, name: str, schema: str, body: Any) -> Any:
        """A request body the document accepts (else the sample itself is wrong: the test stops)."""
        found = spec(name).problems(schema, body)
        assert not found, f"the sample request is not a valid {name} {schema}: {found}"
        return body

    def conforms(self, name: str, schema: str | dict, instance: Any, label: str) -> None:
        s = spec(name)
        found = s.problems(schema, instance) if isinstance(schema, str) else inline_problems(schema, instance)
        self.problems += [f"{label} ({name} {schema if isinstance(schema, str) else 'shape'}): {p}" for p in found]

    def events(self, name: str, union: str | list[str], events: list[dict[str, Any]], label: str,
               skip: tuple[str, ...] = ()) -> None:
        """Each event against the schema its `type` names in the union (a type the union lacks is a problem)."""
        by_type = event_schemas(spec(name), union)
        for i, event in enumerate(events):
            kind = event.get("type")
            if kind in skip:
                continue
            if kind not in by_type:
                self.problems.append(f"{label} event {i}: type {kind!r} is not one of {name}'s stream events")
                continue
            self.conforms(name, by_type[kind], event, f"{label} event {i} {kind}")

    def status(self, response: requests.Response, expected: int, label: str) -> Any:
        if response.status_code != expected:
            self.problems.append(f"{label}: status {response.status_code}, expected {expected}: {response.text[:300]}")
        return response.json()

    def done(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def wire(served) -> Iterator[Wire]:
    proxy, fake = served
    fake.reset()
    w = Wire(proxy, fake)
    yield w
    fake.reset()


def inline_problems(schema: dict, instance: Any) -> list[str]:
    from jsonschema import Draft202012Validator
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in Draft202012Validator(schema).iter_errors(instance)]


def event_schemas(s: Spec, union: str | list[str]) -> dict[str, str]:
    """type -> schema name, for the event schemas a union schema (or a list of names) lists."""
    names = union if isinstance(union, list) else [
        ref["$ref"].split("/")[-1] for ref in s.doc["components"]["schemas"][union].get("oneOf")
        or s.doc["components"]["schemas"][union].get("anyOf")]
    out = {}
    for name in names:
        kind = s.doc["components"]["schemas"][name].get("properties", {}).get("type", {})
        for value in ([kind["const"]] if "const" in kind else kind.get("enum", [])):
            out[value] = name
    return out


def sse(response: requests.Response) -> list[dict[str, Any]]:
    """The JSON objects of an SSE stream's data lines ([DONE] left out)."""
    out = []
    for line in response.iter_lines():
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data and data != b"[DONE]":
                out.append(json.loads(data))
    return out


def ndjson(response: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.iter_lines() if line.strip()]


def weather_function() -> dict[str, Any]:
    return {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                             "parameters": capable.WEATHER_PARAMETERS}}


# ================================================================== OpenAI chat completions (and its API routes)

def chat_request(stream: bool) -> dict[str, Any]:
    body = {"model": MODEL, "stream": stream, "tools": [weather_function()], "reasoning_effort": "low",
            "messages": [{"role": "developer", "content": "Answer briefly."},
                         {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"},
                                                      {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def test_chat_completion_whole(wire):
    wire.capable(False)
    body = wire.accepted("openai", "CreateChatCompletionRequest", chat_request(False))
    answer = wire.status(wire.call("POST", "/v1/chat/completions", body), 200, "chat")
    wire.conforms("openai", "CreateChatCompletionResponse", answer, "chat")
    wire.done()


def test_chat_completion_stream(wire):
    wire.capable(True)
    body = wire.accepted("openai", "CreateChatCompletionRequest", chat_request(True))
    events = sse(wire.call("POST", "/v1/chat/completions", body, stream=True))
    assert len(events) > 5
    for i, event in enumerate(events):
        wire.conforms("openai", "CreateChatCompletionStreamResponse", event, f"chat chunk {i}")
    wire.done()


def test_completions_embeddings_and_models(wire):
    wire.answers(Reply({"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": MODEL,
                        "choices": [{"index": 0, "text": "Paris", "logprobs": None, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}))
    body = wire.accepted("openai", "CreateCompletionRequest", {"model": MODEL, "prompt": "The capital of France is"})
    wire.conforms("openai", "CreateCompletionResponse",
                  wire.status(wire.call("POST", "/v1/completions", body), 200, "completions"), "completions")
    body = wire.accepted("openai", "CreateEmbeddingRequest", {"model": "fake-embed", "input": "Paris"})
    wire.conforms("openai", "CreateEmbeddingResponse",
                  wire.status(wire.call("POST", "/v1/embeddings", body), 200, "embeddings"), "embeddings")
    listed = wire.status(wire.call("GET", "/v1/models"), 200, "models")
    wire.answers(Reply({"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "fake"},
                       path=f"/models/{MODEL}"))  # forwarded as it is
    wire.conforms("openai", "ListModelsResponse", listed, "models")
    wire.conforms("openai", "Model", wire.status(wire.call("GET", f"/v1/models/{MODEL}"), 200, "model"), "model")
    wire.done()


def test_chat_errors(wire):
    """Refused requests (the document rejects them), an upstream's failure, a stream cut mid-way."""
    for label, body in (("temperature 5", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                           "temperature": 5}),
                        ("messages not a list", {"model": MODEL, "messages": "Hi"})):
        assert spec("openai").problems("CreateChatCompletionRequest", body)
        wire.conforms("openai", "ErrorResponse", wire.status(wire.call("POST", "/v1/chat/completions", body), 400,
                                                            label), label)
    wire.answers(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    answer = wire.call("POST", "/v1/chat/completions", chat_request(False))
    wire.conforms("openai", "ErrorResponse", answer.json(), f"upstream 500 -> {answer.status_code}")
    wire.answers(Stream(capable.chunks(), cut_after=4))
    events = sse(wire.call("POST", "/v1/chat/completions", chat_request(True), stream=True))
    assert "error" in events[-1], events[-1]
    wire.conforms("openai", "ErrorResponse", events[-1], "chat stream cut")
    wire.done()


# ================================================================== OpenAI Responses (and Open Responses)

def responses_request(stream: bool, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "stream": stream, "instructions": "Answer briefly.", "reasoning": {"effort": "low"},
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                       "parameters": capable.WEATHER_PARAMETERS, "strict": False}],
            "input": [{"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather in Paris and Rome?"},
                {"type": "input_image", "image_url": IMAGE_URL, "detail": "auto"}]}],
            **extra}


def check_response(wire: Wire, obj: Any, label: str) -> None:
    wire.conforms("openai", "Response", obj, label)
    wire.conforms("openresponses", "ResponseResource", obj, label)


# Open Responses names the reasoning text's events response.reasoning.*, OpenAI response.reasoning_text.*: the door
# speaks OpenAI's (its SDK's) names; those two are checked against OpenAI's document only.
OPENAI_ONLY_EVENTS = ("response.reasoning_text.delta", "response.reasoning_text.done")


def test_responses_whole(wire):
    wire.capable(False)
    body = wire.accepted("openai", "CreateResponse", responses_request(False))
    wire.accepted("openresponses", "CreateResponseBody", body)
    answer = wire.status(wire.call("POST", "/v1/responses", body), 200, "responses")
    check_response(wire, answer, "response")
    # the least Open Responses takes: a tool of a name only, text settings without a format, sampling settings
    wire.capable(False, calls=False)
    least = wire.accepted("openresponses", "CreateResponseBody", {
        "model": MODEL, "input": "Hi", "tools": [{"type": "function", "name": "get_time"}],
        "text": {"verbosity": "low"}, "temperature": 0.2, "top_logprobs": 2, "safety_identifier": "u-1"})
    answer = wire.status(wire.call("POST", "/v1/responses", least), 200, "least")
    check_response(wire, answer, "least response")
    assert (answer["temperature"], answer["top_p"], answer["top_logprobs"], answer["safety_identifier"]) == (
        0.2, 1.0, 2, "u-1")
    wire.done()


def test_responses_stream(wire):
    wire.capable(True)
    body = wire.accepted("openai", "CreateResponse", responses_request(True))
    wire.accepted("openresponses", "CreateResponseBody", body)
    events = sse(wire.call("POST", "/v1/responses", body, stream=True))
    kinds = {e["type"] for e in events}
    assert {"response.completed", "response.function_call_arguments.done", "response.output_text.done",
            "response.reasoning_text.done"} <= kinds, kinds
    wire.events("openai", "ResponseStreamEvent", events, "responses stream")
    wire.events("openresponses", open_responses_events(), events, "responses stream", skip=OPENAI_ONLY_EVENTS)
    # reasoning as a summary, when asked (the summary part and text events)
    summarized = wire.accepted("openai", "CreateResponse", responses_request(True, reasoning={
        "effort": "low", "summary": "auto"}))
    wire.capable(True)
    events = sse(wire.call("POST", "/v1/responses", summarized, stream=True))
    assert "response.reasoning_summary_text.done" in {e["type"] for e in events}, {e["type"] for e in events}
    wire.events("openai", "ResponseStreamEvent", events, "summarized stream")
    wire.events("openresponses", open_responses_events(), events, "summarized stream", skip=OPENAI_ONLY_EVENTS)
    wire.capable(False)
    check_response(wire, wire.status(wire.call("POST", "/v1/responses", {**summarized, "stream": False}), 200,
                                     "summarized"), "summarized response")
    wire.done()


def test_responses_cut_short_structured_and_custom(wire):
    """An answer a token limit cut (incomplete), one held to a JSON schema, a custom tool's call."""
    fmt = {"type": "json_schema", "name": "weather", "strict": True, "description": "The weather",
           "schema": {"type": "object", "properties": {"sky": {"type": "string"}}, "required": ["sky"],
                      "additionalProperties": False}}
    body = wire.accepted("openai", "CreateResponse", responses_request(False, text={"format": fmt},
                                                                       max_output_tokens=16))
    wire.capable(False, calls=False, finish="length")
    answer = wire.status(wire.call("POST", "/v1/responses", body), 200, "cut short")
    assert answer["status"] == "incomplete", answer["status"]
    assert answer["text"]["format"]["schema"] == fmt["schema"]
    wire.conforms("openai", "Response", answer, "cut short")
    wire.conforms("openresponses", "ResponseResource", schema_nulled(answer), "cut short")
    wire.capable(True, calls=False, finish="length")
    events = sse(wire.call("POST", "/v1/responses", {**body, "stream": True}, stream=True))
    assert events[-1]["type"] == "response.incomplete", events[-1]["type"]
    wire.events("openai", "ResponseStreamEvent", events, "cut stream")
    events = [{**e, "response": schema_nulled(e["response"])} if "response" in e else e for e in events]
    wire.events("openresponses", open_responses_events(), events, "cut stream", skip=OPENAI_ONLY_EVENTS)
    custom = wire.accepted("openai", "CreateResponse", {"model": MODEL, "input": "Run it", "tools": [
        {"type": "custom", "name": "run_sql", "description": "Runs SQL"}]})
    wire.answers(Reply(capable.whole(reasoning=False)))
    wire.fake.queue[-1].body["choices"][0]["message"]["tool_calls"] = [{"id": "call_sql", "type": "function",
        "function": {"name": "run_sql", "arguments": json.dumps({"input": "SELECT 1"})}}]
    answer = wire.status(wire.call("POST", "/v1/responses", custom), 200, "custom tool")
    assert any(item["type"] == "custom_tool_call" for item in answer["output"]), answer["output"]
    wire.conforms("openai", "Response", answer, "custom tool")  # Open Responses has no custom tools
    wire.done()


def schema_nulled(response: dict[str, Any]) -> dict[str, Any]:
    """The response with its text format's JSON schema as null: Open Responses' document types that field as null
    only (a defect: its prose and OpenAI's document give the schema object, which the door echoes)."""
    fmt = {**response["text"]["format"], "schema": None}
    return {**response, "text": {**response["text"], "format": fmt}}


def open_responses_events() -> list[str]:
    post = spec("openresponses").doc["paths"]["/responses"]["post"]
    union = post["responses"]["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
    return [ref["$ref"].split("/")[-1] for ref in union]


def test_responses_stored_objects(wire):
    """What the store answers: a stored response, its input items, a deletion, a conversation and its items."""
    wire.capable(False, calls=False)
    made = wire.status(wire.call("POST", "/v1/responses", responses_request(False, store=True)), 200, "create")
    rid = made["id"]
    check_response(wire, wire.status(wire.call("GET", f"/v1/responses/{rid}"), 200, "retrieve"), "retrieved")
    wire.conforms("openai", "ResponseItemList",
                  wire.status(wire.call("GET", f"/v1/responses/{rid}/input_items"), 200, "input_items"), "input items")
    wire.status(wire.call("DELETE", f"/v1/responses/{rid}"), 200, "delete")  # the document gives no body schema
    wire.capable(False, calls=False)
    queued = wire.status(wire.call("POST", "/v1/responses", responses_request(False, background=True, store=True)),
                         200, "background")
    check_response(wire, queued, "background, queued")

    def finished() -> dict[str, Any] | None:
        found = wire.call("GET", f"/v1/responses/{queued['id']}").json()
        return found if found["status"] not in ("queued", "in_progress") else None
    done = poll(finished)
    assert done is not None and done["status"] == "completed", done
    check_response(wire, done, "background, completed")
    made = wire.accepted("openai", "CreateConversationBody", {"items": [
        {"type": "message", "role": "user", "content": "Hello"}]})
    conversation = wire.status(wire.call("POST", "/v1/conversations", made), 200, "conversation")
    wire.conforms("openai", "ConversationResource", conversation, "conversation")
    cid = conversation["id"]
    wire.conforms("openai", "ConversationResource",
                  wire.status(wire.call("GET", f"/v1/conversations/{cid}"), 200, "get conversation"), "conversation")
    items = wire.status(wire.call("GET", f"/v1/conversations/{cid}/items"), 200, "items")
    wire.conforms("openai", "ConversationItemList", items, "conversation items")
    wire.conforms("openai", "ConversationItem", wire.status(
        wire.call("GET", f"/v1/conversations/{cid}/items/{items['data'][0]['id']}"), 200, "item"), "item")
    wire.conforms("openai", "DeletedConversationResource",
                  wire.status(wire.call("DELETE", f"/v1/conversations/{cid}"), 200, "delete conversation"),
                  "deleted conversation")
    wire.done()


def test_responses_compact_and_included_reasoning(wire):
    """POST /v1/responses/compact's request and answer (CompactResponseMethodPublicBody, CompactResource), the
    window sent on (CreateResponse with its compaction item), and reasoning items with encrypted_content."""
    wire.capable(False, calls=False)
    asked = wire.accepted("openai", "CompactResponseMethodPublicBody", {
        "model": MODEL, "instructions": "Answer briefly.",
        "input": [{"role": "user", "content": "Weather in Paris?"},
                  {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                   "content": [{"type": "output_text", "text": "Sunny.", "annotations": [], "logprobs": []}]}]})
    compacted = wire.status(wire.call("POST", "/v1/responses/compact", asked), 200, "compact")
    wire.conforms("openai", "CompactResource", compacted, "compacted")
    wire.capable(False, calls=False)
    follow = wire.accepted("openai", "CreateResponse", responses_request(
        False, store=False, include=["reasoning.encrypted_content"],
        input=compacted["output"] + [{"role": "user", "content": "And Rome?"}]))
    answer = wire.status(wire.call("POST", "/v1/responses", follow), 200, "after compaction")
    check_response(wire, answer, "after compaction")
    reasoning = [i for i in answer.get("output", []) if i.get("type") == "reasoning"]
    assert reasoning and all(i.get("encrypted_content") for i in reasoning), answer.get("output")
    wire.capable(True, calls=False)
    events = sse(wire.call("POST", "/v1/responses", {**follow, "stream": True}, stream=True))
    wire.events("openai", "ResponseStreamEvent", events, "included stream")
    wire.done()


def test_responses_errors(wire):
    for label, body in (("no model", {"input": "Hi"}), ("input a number", {"model": MODEL, "input": 5})):
        assert spec("openai").problems("CreateResponse", body) or spec("openresponses").problems(
            "CreateResponseBody", body) or label == "no model"
        wire.conforms("openai", "ErrorResponse", wire.status(wire.call("POST", "/v1/responses", body), 400, label),
                      label)
    wire.conforms("openai", "ErrorResponse", wire.status(wire.call("GET", "/v1/responses/resp_missing"), 404,
                                                        "unknown id"), "unknown id")
    wire.answers(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    answer = wire.call("POST", "/v1/responses", responses_request(False))
    wire.conforms("openai", "ErrorResponse", answer.json(), f"upstream 500 -> {answer.status_code}")
    wire.done()


def test_responses_refuses_malformed_items_in_its_own_words(wire):
    """Found by bench/conformance.py: an input item whose `type` is not a string was a 500 where the response is
    stored (the default), and an item_reference without an id was reported missing under an id the proxy made;
    an MCP tool's fields and an item's status were taken unchecked (the tool left out, the status not read)."""
    cases = (("type a list", {"model": MODEL, "input": [{"id": "", "type": [None, None]}]}, "input[0].type"),
             ("type a list, not stored", {"model": MODEL, "store": False, "input": [{"type": [None]}]},
              "input[0].type"),
             ("reference without id", {"model": MODEL, "input": [{"type": "item_reference", "id": ""}]},
              "input[0].id"),
             ("an MCP tool without a label", {"model": MODEL, "input": "Hi", "tools": [
                 {"type": "mcp", "server_label": None}]}, "tools[0].server_label"),
             ("a call's status unknown", {"model": MODEL, "input": [
                 {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "status": "done"},
                 {"type": "function_call_output", "call_id": "c1", "output": "r"}]}, "input[0].status"))
    for label, body, param in cases:
        assert spec("openai").problems("CreateResponse", body) or label == "reference without id", label
        answer = wire.status(wire.call("POST", "/v1/responses", body), 400, label)
        wire.conforms("openai", "ErrorResponse", answer, label)
        if answer.get("error", {}).get("param") != param or "item_" in answer["error"]["message"]:
            wire.problems.append(f"{label}: {answer}")
    conv = wire.status(wire.call("POST", "/v1/conversations", {}), 200, "conversation")
    answer = wire.status(wire.call("POST", f"/v1/conversations/{conv['id']}/items", {"items": [{"type": 5}]}), 400,
                         "conversation item type a number")
    wire.conforms("openai", "ErrorResponse", answer, "conversation item type a number")
    wire.done()


def test_responses_checks_the_fields_of_the_tools_it_leaves_out(wire):
    """Hosted and built-in tools (web search, file search, code interpreter, image generation, computer use...)
    are left out on the way to a chat upstream, and were taken in any shape; the document refuses those requests
    (a 400 in OpenAI's error shape naming the field), and takes the well-formed ones."""
    refused = (("web search context size", {"type": "web_search", "search_context_size": "huge"},
                "tools[0].search_context_size"),
               ("file search without stores", {"type": "file_search"}, "tools[0].vector_store_ids"),
               ("code interpreter memory", {"type": "code_interpreter", "container": {
                   "type": "auto", "memory_limit": "2g"}}, "tools[0].container.memory_limit"),
               ("image quality", {"type": "image_generation", "quality": "best"}, "tools[0].quality"),
               ("computer without a height", {"type": "computer_use_preview", "environment": "mac",
                                              "display_width": 800}, "tools[0].display_height"),
               ("custom grammar syntax", {"type": "custom", "name": "patch", "format": {
                   "type": "grammar", "syntax": "ebnf", "definition": "x"}}, "tools[0].format.syntax"))
    for label, tool, param in refused:
        body = {"model": MODEL, "input": "Hi", "tools": [tool]}
        assert spec("openai").problems("CreateResponse", body), label
        answer = wire.status(wire.call("POST", "/v1/responses", body), 400, label)
        wire.conforms("openai", "ErrorResponse", answer, label)
        if (answer.get("error") or {}).get("param") != param:
            wire.problems.append(f"{label}: {answer}")
    wire.capable(False)
    body = wire.accepted("openai", "CreateResponse", {"model": MODEL, "input": "Hi", "tools": [
        {"type": "web_search", "search_context_size": "low", "user_location": {"type": "approximate", "city": "Paris"}},
        {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 4},
        {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}},
        {"type": "image_generation", "quality": "high"},
        {"type": "computer_use_preview", "environment": "mac", "display_width": 800, "display_height": 600},
        {"type": "custom", "name": "patch", "format": {"type": "grammar", "syntax": "lark", "definition": "x"}}]})
    answer = wire.status(wire.call("POST", "/v1/responses", body), 200, "well-formed")
    wire.conforms("openai", "Response", answer, "well-formed")
    wire.done()


def test_responses_takes_a_computer_use_history(wire):
    """Found by bench/conformance.py: computer_call items and their screenshots were refused as having no chat
    form; the calls are the client's (like a local shell's) and a screenshot is an image: both reach the
    upstream, the screenshot after the tool message."""
    shot = f"data:image/png;base64,{capable.PNG}"
    body = wire.accepted("openai", "CreateResponse", {"model": MODEL, "input": [
        {"role": "user", "content": "Open the page."},
        {"type": "computer_call", "id": "cu_1", "call_id": "call_1", "status": "completed",
         "action": {"type": "screenshot"}, "pending_safety_checks": []},
        {"type": "computer_call_output", "call_id": "call_1",
         "output": {"type": "computer_screenshot", "image_url": shot}}]})
    wire.capable(False)
    answer = wire.status(wire.call("POST", "/v1/responses", body), 200, "computer use")
    wire.conforms("openai", "Response", answer, "computer use")
    wire.done()
    sent = wire.fake.received[-1].json()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "computer"
    assert sent[3]["content"] == [{"type": "image_url", "image_url": {"url": shot}}]


def test_responses_stream_failure(wire):
    """A stream cut mid-way ends with an `error` event and response.failed."""
    wire.answers(Stream(capable.chunks(), cut_after=6))
    events = sse(wire.call("POST", "/v1/responses", responses_request(True), stream=True))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"], [e["type"] for e in events]
    wire.events("openai", "ResponseStreamEvent", events, "failed stream")
    # the error event is OpenAI's (docs/conformance.md): Open Responses nests its fields under `error`
    wire.events("openresponses", open_responses_events(), events, "failed stream",
                skip=OPENAI_ONLY_EVENTS + ("error",))
    wire.done()


# ================================================================== Anthropic Messages

# Usage.output_tokens_details and MessageDeltaUsage.output_tokens_details as Anthropic's current document has them
# (required, nullable; the vendored document, of 2026-05-06, predates the field): held on top of the vendored one.
THINKING_USAGE = {"type": "object", "required": ["output_tokens_details"], "properties": {"output_tokens_details": {
    "anyOf": [{"type": "null"}, {"type": "object", "required": ["thinking_tokens"], "additionalProperties": False,
                                 "properties": {"thinking_tokens": {"type": "integer", "minimum": 0}}}]}}}


def thinking_usages(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(label, usage) of each Messages stream event that carries usage: message_start's and message_delta's."""
    return [(e["type"], e["message"]["usage"] if e["type"] == "message_start" else e["usage"])
            for e in events if e["type"] in ("message_start", "message_delta")]


def messages_request(stream: bool, thinking: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL, "max_tokens": 2048, "stream": stream, "system": "Answer briefly.",
        "tools": [{"name": "get_weather", "description": "Weather for a city",
                   "input_schema": capable.WEATHER_PARAMETERS}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Weather in Paris and Rome?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": capable.PNG}}]}]}
    if thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    return body


def test_messages_whole(wire):
    wire.capable(False)
    body = wire.accepted("anthropic", "CreateMessageParams", messages_request(False))
    answer = wire.status(wire.call("POST", "/v1/messages", body, ANTHROPIC_HEADERS), 200, "messages")
    wire.conforms("anthropic", "Message", answer, "message")
    wire.conforms("anthropic", THINKING_USAGE, answer["usage"], "message usage")
    assert answer["usage"]["output_tokens_details"] == {
        "thinking_tokens": capable.USAGE["completion_tokens_details"]["reasoning_tokens"]}
    wire.done()


def test_messages_stream(wire):
    wire.capable(True)
    body = wire.accepted("anthropic", "CreateMessageParams", messages_request(True))
    events = sse(wire.call("POST", "/v1/messages", body, ANTHROPIC_HEADERS, stream=True))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    # `ping` is in Anthropic's streaming documentation, not in its API document: its documented shape
    pings = [e for e in events if e["type"] == "ping"]
    assert all(e == {"type": "ping"} for e in pings), pings
    wire.events("anthropic", "MessageStreamEvent", events, "messages stream", skip=("ping",))
    for label, usage in thinking_usages(events):
        wire.conforms("anthropic", THINKING_USAGE, usage, f"{label} usage")
    assert [u["output_tokens_details"] for _, u in thinking_usages(events)] == [
        None, {"thinking_tokens": capable.USAGE["completion_tokens_details"]["reasoning_tokens"]}]
    wire.done()


def test_messages_refusal_and_token_limit(wire):
    """A refusal (chat's content_filter) and an answer a token limit cut, whole and streamed."""
    for finish, stop in (("content_filter", "refusal"), ("length", "max_tokens")):
        wire.capable(False, calls=False, finish=finish)
        answer = wire.status(wire.call("POST", "/v1/messages", messages_request(False), ANTHROPIC_HEADERS), 200,
                             finish)
        assert answer["stop_reason"] == stop, answer["stop_reason"]
        wire.conforms("anthropic", "Message", answer, f"{finish} message")
        wire.capable(True, calls=False, finish=finish)
        events = sse(wire.call("POST", "/v1/messages", messages_request(True), ANTHROPIC_HEADERS, stream=True))
        wire.events("anthropic", "MessageStreamEvent", events, f"{finish} stream", skip=("ping",))
        for label, usage in [("message", answer["usage"])] + thinking_usages(events):
            wire.conforms("anthropic", THINKING_USAGE, usage, f"{finish} {label} usage")
    wire.done()


def test_messages_count_tokens_and_models(wire):
    body = wire.accepted("anthropic", "CountMessageTokensParams",
                         {k: v for k, v in messages_request(False).items() if k not in ("max_tokens", "stream")})
    wire.conforms("anthropic", "CountMessageTokensResponse", wire.status(
        wire.call("POST", "/v1/messages/count_tokens", body, ANTHROPIC_HEADERS), 200, "count_tokens"), "count_tokens")
    listed = wire.status(wire.call("GET", "/v1/models", headers=ANTHROPIC_HEADERS), 200, "models")
    wire.conforms("anthropic", "ListResponse_ModelInfo_", listed, "models")
    wire.conforms("anthropic", "ModelInfo", wire.status(
        wire.call("GET", f"/v1/models/{MODEL}", headers=ANTHROPIC_HEADERS), 200, "model"), "model")
    wire.done()


def test_messages_errors(wire):
    for label, body in (("no max_tokens", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}),
                        ("messages not a list", {"model": MODEL, "max_tokens": 10, "messages": "Hi"})):
        assert spec("anthropic").problems("CreateMessageParams", body)
        wire.conforms("anthropic", "ErrorResponse", wire.status(
            wire.call("POST", "/v1/messages", body, ANTHROPIC_HEADERS), 400, label), label)
    wire.answers(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    answer = wire.call("POST", "/v1/messages", messages_request(False), ANTHROPIC_HEADERS)
    wire.conforms("anthropic", "ErrorResponse", answer.json(), f"upstream 500 -> {answer.status_code}")
    wire.answers(Stream(capable.chunks(), cut_after=6))
    events = sse(wire.call("POST", "/v1/messages", messages_request(True), ANTHROPIC_HEADERS, stream=True))
    assert events[-1]["type"] == "error", events[-1]
    wire.conforms("anthropic", "ErrorResponse", events[-1], "stream cut")
    wire.events("anthropic", "MessageStreamEvent", events[:-1], "stream cut", skip=("ping",))
    wire.done()


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
CITED = {"type": "char_location", "cited_text": "Hi", "document_index": 0, "document_title": None,
         "start_char_index": 0, "end_char_index": 2}


def test_messages_refuses_what_anthropics_document_refuses_in_fields_it_leaves_out(wire):
    """Found by bench/conformance.py: prompt caching's cache_control, a client tool's flags, server tools' own
    fields, citations, the request's own fields and thinking blocks are left out on the way to a chat upstream,
    and were accepted in any shape; the document refuses those requests (a 400 in Anthropic's error shape, naming
    the field), and takes the well-formed ones."""
    tool = {"name": "get_weather", "input_schema": capable.WEATHER_PARAMETERS}
    hello = [{"role": "user", "content": "Hi"}]
    refused = (("cache_control a string", {"system": [{"type": "text", "text": "Be brief.", "cache_control": "x"}]},
                "system.0.cache_control"),
               ("cache_control of another type", {"messages": [{"role": "user", "content": [
                   {"type": "text", "text": "Hi", "cache_control": {"type": "persistent"}}]}]},
                "messages.0.content.0.cache_control.type"),
               ("cache_control ttl", {"tools": [{**tool, "cache_control": {"type": "ephemeral", "ttl": "2h"}}]},
                "tools.0.cache_control.ttl"),
               ("strict a string", {"tools": [{**tool, "strict": "yes"}]}, "tools.0.strict"),
               ("allowed_callers unknown", {"tools": [{**tool, "allowed_callers": ["anyone"]}]},
                "tools.0.allowed_callers"),
               ("input_examples not objects", {"tools": [{**tool, "input_examples": [1]}]}, "tools.0.input_examples"),
               ("a name with a space", {"tools": [{**tool, "name": "get weather"}]}, "tools.0.name"),
               ("web search max_uses 0", {"tools": [{**WEB_SEARCH, "max_uses": 0}]}, "tools.0.max_uses"),
               ("web search country of 3 letters", {"tools": [{**WEB_SEARCH, "user_location": {
                   "type": "approximate", "country": "FRA"}}]}, "tools.0.user_location.country"),
               ("web fetch citations a string", {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch",
                                                            "citations": "on"}]}, "tools.0.citations"),
               ("citation without its end", {"messages": [{"role": "user", "content": [
                   {"type": "text", "text": "Hi", "citations": [{k: v for k, v in CITED.items()
                                                                 if k != "end_char_index"}]}]}]},
                "messages.0.content.0.citations.0.end_char_index"),
               ("document citations enabled a string", {"messages": [{"role": "user", "content": [
                   {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"},
                    "citations": {"enabled": "yes"}}]}]}, "messages.0.content.0.citations.enabled"),
               ("service_tier unknown", {"service_tier": "priority"}, "service_tier"),
               ("temperature above 1", {"temperature": 1.5}, "temperature"),
               ("thinking block without signature", {"messages": [
                   {"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
                       {"type": "thinking", "thinking": "t"}, {"type": "text", "text": "Hello"}]},
                   {"role": "user", "content": "And?"}]}, "messages.1.content.0.signature"))
    for label, fields, param in refused:
        body = {"model": MODEL, "max_tokens": 10, "messages": hello, **fields}
        assert spec("anthropic").problems("CreateMessageParams", body), label
        answer = wire.status(wire.call("POST", "/v1/messages", body, ANTHROPIC_HEADERS), 400, label)
        wire.conforms("anthropic", "ErrorResponse", answer, label)
        if param not in answer.get("error", {}).get("message", ""):
            wire.problems.append(f"{label}: the error does not name {param}: {answer}")
    wire.capable(False)
    body = wire.accepted("anthropic", "CreateMessageParams", {
        "model": MODEL, "max_tokens": 10, "cache_control": {"type": "ephemeral"},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}, "citations": [CITED]}]}],
        "tools": [{**tool, "strict": True, "defer_loading": False, "input_examples": [{"city": "Paris"}],
                   "allowed_callers": ["direct"], "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                  {**WEB_SEARCH, "max_uses": 8, "allowed_domains": ["example.com"],
                   "user_location": {"type": "approximate", "country": "FR", "city": None}}],
        "service_tier": "auto", "temperature": 1})
    answer = wire.status(wire.call("POST", "/v1/messages", body, ANTHROPIC_HEADERS), 200, "well-formed")
    wire.conforms("anthropic", "Message", answer, "well-formed")
    wire.done()


def test_messages_takes_the_blocks_a_chat_upstream_can_read(wire):
    """Found by bench/conformance.py: a search result (in a turn or a tool result), a tool search's
    tool_reference and a content document's image were refused as blocks of no chat form; each has one (text,
    the tool's name, an image part), and the upstream is sent it."""
    result = {"type": "search_result", "source": "https://example.com/rain", "title": "Rain",
              "content": [{"type": "text", "text": "Rain in Paris."}], "citations": {"enabled": True}}
    body = wire.accepted("anthropic", "CreateMessageParams", {"model": MODEL, "max_tokens": 10, "messages": [
        {"role": "user", "content": [result, {"type": "document", "title": "Chart", "source": {
            "type": "content", "content": [{"type": "text", "text": "A chart."}, {"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": capable.PNG}}]}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "find", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            result, {"type": "tool_reference", "tool_name": "get_weather"}]}]}]})
    wire.capable(False)
    answer = wire.status(wire.call("POST", "/v1/messages", body, ANTHROPIC_HEADERS), 200, "blocks")
    wire.conforms("anthropic", "Message", answer, "blocks")
    wire.done()
    sent = wire.fake.received[-1].json()["messages"]
    assert sent[0]["content"] == [
        {"type": "text", "text": "Rain\nhttps://example.com/rain\n\nRain in Paris."},
        {"type": "text", "text": "Chart\n\nA chart."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{capable.PNG}"}}]
    assert sent[2] == {"role": "tool", "tool_call_id": "t1",
                       "content": "Rain\nhttps://example.com/rain\n\nRain in Paris.\nget_weather"}


# ================================================================== Google Gemini

GOOGLE = f"/v1beta/models/{MODEL}"
GOOGLE_HEADERS = {"x-goog-api-key": "sk-client"}


def google_request() -> dict[str, Any]:
    # `model` is in the path; the document's body schema lists it (the resource name) as required too
    return {"model": f"models/{MODEL}", "systemInstruction": {"parts": [{"text": "Answer briefly."}]},
            "contents": [{"role": "user", "parts": [{"text": "Weather in Paris and Rome?"},
                                                    {"inlineData": {"mimeType": "image/png", "data": capable.PNG}}]}],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                                                 "parameters": {"type": "OBJECT",
                                                                "properties": {"city": {"type": "STRING"}},
                                                                "required": ["city"]}}]}],
            "generationConfig": {"maxOutputTokens": 2048, "thinkingConfig": {"includeThoughts": True}}}


def test_google_generate_content(wire):
    wire.capable(False)
    body = wire.accepted("gemini", "GenerateContentRequest", google_request())
    answer = wire.status(wire.call("POST", f"{GOOGLE}:generateContent", body, GOOGLE_HEADERS), 200, "generate")
    wire.conforms("gemini", "GenerateContentResponse", answer, "generateContent")
    wire.done()


def test_google_stream_generate_content(wire):
    wire.capable(True)
    body = wire.accepted("gemini", "GenerateContentRequest", google_request())
    events = sse(wire.call("POST", f"{GOOGLE}:streamGenerateContent?alt=sse", body, GOOGLE_HEADERS, stream=True))
    assert len(events) > 2
    for i, event in enumerate(events):
        wire.conforms("gemini", "GenerateContentResponse", event, f"stream chunk {i}")
    wire.capable(True)
    array = wire.status(wire.call("POST", f"{GOOGLE}:streamGenerateContent", body, GOOGLE_HEADERS), 200, "array")
    for i, event in enumerate(array):
        wire.conforms("gemini", "GenerateContentResponse", event, f"array chunk {i}")
    wire.done()


def test_google_count_embed_and_models(wire):
    body = wire.accepted("gemini", "CountTokensRequest", {"model": f"models/{MODEL}",
                                                          "contents": google_request()["contents"]})
    wire.conforms("gemini", "CountTokensResponse", wire.status(
        wire.call("POST", f"{GOOGLE}:countTokens", body, GOOGLE_HEADERS), 200, "countTokens"), "countTokens")
    embed = wire.accepted("gemini", "EmbedContentRequest", {"model": "models/fake-embed",
                                                           "content": {"parts": [{"text": "Paris"}]}})
    wire.conforms("gemini", "EmbedContentResponse", wire.status(
        wire.call("POST", "/v1beta/models/fake-embed:embedContent", embed, GOOGLE_HEADERS), 200, "embed"), "embed")
    batch = wire.accepted("gemini", "BatchEmbedContentsRequest", {"requests": [
        {"model": "models/fake-embed", "content": {"parts": [{"text": city}]}} for city in ("Paris", "Rome")]})
    wire.answers(Reply({"object": "list", "model": "fake-embed", "usage": {"prompt_tokens": 2, "total_tokens": 2},
                        "data": [{"object": "embedding", "index": i, "embedding": [0.5, i]} for i in (0, 1)]}))
    wire.conforms("gemini", "BatchEmbedContentsResponse", wire.status(
        wire.call("POST", "/v1beta/models/fake-embed:batchEmbedContents", batch, GOOGLE_HEADERS), 200, "batch"),
        "batchEmbedContents")
    wire.conforms("gemini", "ListModelsResponse",
                  wire.status(wire.call("GET", "/v1beta/models", headers=GOOGLE_HEADERS), 200, "models"), "models")
    wire.conforms("gemini", "Model", wire.status(wire.call("GET", GOOGLE, headers=GOOGLE_HEADERS), 200, "model"),
                  "model")
    wire.done()


def test_google_errors(wire):
    body = {"contents": "Hi"}
    assert spec("gemini").problems("GenerateContentRequest", body)
    wire.conforms("gemini", GOOGLE_ERROR, wire.status(
        wire.call("POST", f"{GOOGLE}:generateContent", body, GOOGLE_HEADERS), 400, "contents a string"), "400")
    wire.answers(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    answer = wire.call("POST", f"{GOOGLE}:generateContent", google_request(), GOOGLE_HEADERS)
    wire.conforms("gemini", GOOGLE_ERROR, answer.json(), f"upstream 500 -> {answer.status_code}")
    wire.done()


# ================================================================== Ollama

def ollama_chat(stream: bool) -> dict[str, Any]:
    return {"model": MODEL, "stream": stream, "think": True, "tools": [weather_function()],
            "messages": [{"role": "system", "content": "Answer briefly."},
                         {"role": "user", "content": "Weather in Paris and Rome?", "images": [capable.PNG]}]}


def test_ollama_chat(wire):
    wire.capable(False)
    body = wire.accepted("ollama", "ChatRequest", ollama_chat(False))
    wire.conforms("ollama", "ChatResponse", wire.status(wire.call("POST", "/api/chat", body), 200, "chat"), "chat")
    wire.capable(True)
    events = ndjson(wire.call("POST", "/api/chat", wire.accepted("ollama", "ChatRequest", ollama_chat(True)),
                              stream=True))
    assert len(events) > 2 and events[-1]["done"] is True
    for i, event in enumerate(events):
        wire.conforms("ollama", "ChatStreamEvent", event, f"chat line {i}")
    wire.done()


def test_ollama_generate_and_embed(wire):
    wire.capable(False, calls=False)
    body = wire.accepted("ollama", "GenerateRequest", {"model": MODEL, "prompt": "Weather in Paris?", "think": True,
                                                        "images": [capable.PNG], "stream": False})
    wire.conforms("ollama", "GenerateResponse", wire.status(wire.call("POST", "/api/generate", body), 200,
                                                            "generate"), "generate")
    wire.capable(True, calls=False)
    events = ndjson(wire.call("POST", "/api/generate", {**body, "stream": True}, stream=True))
    for i, event in enumerate(events):
        wire.conforms("ollama", "GenerateStreamEvent", event, f"generate line {i}")
    embed = wire.accepted("ollama", "EmbedRequest", {"model": "fake-embed", "input": ["Paris", "Rome"]})
    wire.conforms("ollama", "EmbedResponse", wire.status(wire.call("POST", "/api/embed", embed), 200, "embed"),
                  "embed")
    wire.done()


def test_ollama_models(wire):
    wire.conforms("ollama", "ListResponse", wire.status(wire.call("GET", "/api/tags"), 200, "tags"), "tags")
    wire.conforms("ollama", "PsResponse", wire.status(wire.call("GET", "/api/ps"), 200, "ps"), "ps")
    show = wire.accepted("ollama", "ShowRequest", {"model": MODEL})
    wire.conforms("ollama", "ShowResponse", wire.status(wire.call("POST", "/api/show", show), 200, "show"), "show")
    wire.conforms("ollama", "VersionResponse", wire.status(wire.call("GET", "/api/version"), 200, "version"),
                  "version")
    wire.done()


def test_ollama_errors(wire):
    body = {"messages": [{"role": "user", "content": "Hi"}]}
    assert spec("ollama").problems("ChatRequest", body)
    wire.conforms("ollama", "ErrorResponse", wire.status(wire.call("POST", "/api/chat", body), 400, "no model"),
                  "no model")
    wire.answers(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    answer = wire.call("POST", "/api/chat", ollama_chat(False))
    wire.conforms("ollama", "ErrorResponse", answer.json(), f"upstream 500 -> {answer.status_code}")
    wire.done()
