"""The scripted model behind the agents in tests/agents: a fake upstream that first asks the agent to run a tool
and then answers with what the tool returned.

The test writes a random token into a file and asks the agent to read that file (its absolute path is in the
prompt; the token is not). The script, reading only the request it is sent:
- no token anywhere in the conversation yet: call a tool the agent declared (a file-reading tool if there is
  one, else a shell tool running `cat`) on that path, arguments filled from the tool's own JSON schema; an
  agent that declares no tools (Aider) is told to add the file to the chat, as a model asks Aider for a file;
- the token in the conversation (so the agent ran the tool and sent its output back): answer with text
  quoting it. The script never knows the token: it can only quote what came back from the agent.

Served two ways: `ScriptedUpstream`, an OpenAI chat-completions and Anthropic Messages server (the openai
backend; ARGO's native OpenAI and Anthropic endpoints), and `argo_reply`, FakeArgo's reply for ARGO's legacy
chat API (standard mode), in the tool shape of the model's family.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream

TOKEN = re.compile(r"TOKEN-[0-9a-f]{32}")
NOTE = re.compile(r"(/[\w.\-/]+/note\.txt)")
QUOTE = "The note says {token}."
ASK_FOR_FILE = "I need to see note.txt to answer: please add note.txt to the chat."
PLAIN = "Nothing to do here."
CALL_ID = "call_note_1"

_PATH_KEYS = ("file_path", "filePath", "absolute_path", "path", "file")
_COMMAND_KEYS = ("command", "cmd")


def conversation_text(body: dict[str, Any]) -> str:
    """Everything the request carries besides its tool declarations, as one text to search."""
    return json.dumps({k: v for k, v in body.items() if k != "tools"}, ensure_ascii=False)


def declared_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, JSON schema) of each tool, in OpenAI chat shape or Anthropic shape (ARGO's Claude family)."""
    out = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        schema = function.get("parameters") or function.get("input_schema") or {}
        if isinstance(function.get("name"), str):
            out.append((function["name"], schema if isinstance(schema, dict) else {}))
    return out


Plan = tuple[str | None, tuple[str, dict[str, Any]] | None]  # (text, None) or (None, (tool name, arguments))


def plan(body: dict[str, Any]) -> Plan:
    """(text, None) or (None, (tool name, arguments)): what the scripted model answers to this request."""
    text = conversation_text(body)
    token = TOKEN.search(text)
    if token:
        return QUOTE.format(token=token.group(0)), None
    path = NOTE.search(text)
    if not path:
        return PLAIN, None
    tools = declared_tools(body)
    if not tools:
        return ASK_FOR_FILE, None
    call = _tool_call(tools, path.group(1))
    return (None, call) if call else (PLAIN, None)


def _tool_call(tools: list[tuple[str, dict[str, Any]]], path: str) -> tuple[str, dict[str, Any]] | None:
    readers = [t for t in tools if "read" in t[0].lower() and _props(t[1]).keys() & set(_PATH_KEYS)]
    shells = [t for t in tools if _props(t[1]).keys() & set(_COMMAND_KEYS)]
    for name, schema in readers + shells:
        return name, _arguments(schema, path)
    return None


def _props(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def _arguments(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """Arguments for a read or shell tool: the path or `cat` on it, and a word for any other string it requires."""
    props, args = _props(schema), {}
    for key in _PATH_KEYS:
        if key in props:
            args[key] = path
            break
    else:
        key = next(k for k in _COMMAND_KEYS if k in props)
        command = f"cat {path}"
        args[key] = ["bash", "-lc", command] if props[key].get("type") == "array" else command
    for key in schema.get("required") or []:
        if key not in args and props.get(key, {}).get("type") == "string":
            args[key] = "Read the note"
    return args


# --------------------------------------------------------------------------- OpenAI chat completions


def chat_answer(body: dict[str, Any], decide: Callable[[dict[str, Any]], Plan] | None = None) -> Reply | Stream:
    text, call = (decide or plan)(body)
    model = body.get("model") or "scripted"
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if call:
        message["tool_calls"] = [{"id": CALL_ID, "type": "function",
                                  "function": {"name": call[0], "arguments": json.dumps(call[1])}}]
    finish = "tool_calls" if call else "stop"
    usage = {"prompt_tokens": max(1, len(conversation_text(body)) // 4), "completion_tokens": 12,
             "total_tokens": max(1, len(conversation_text(body)) // 4) + 12}
    base = {"id": "chatcmpl-scripted", "created": 1700000000, "model": model}
    if not body.get("stream"):
        return Reply({**base, "object": "chat.completion", "usage": usage,
                      "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]})
    chunk = {**base, "object": "chat.completion.chunk"}
    delta: dict[str, Any] = {"role": "assistant", "content": text or ""}
    if call:
        delta["tool_calls"] = [{"index": 0, **message["tool_calls"][0]}]
    events: list[Any] = [{**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                         {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}]
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    return Stream(events + ["[DONE]"])


# --------------------------------------------------------------------------- Anthropic Messages (ARGO native)


def messages_answer(body: dict[str, Any], decide: Callable[[dict[str, Any]], Plan] | None = None) -> Reply | Stream:
    text, call = (decide or plan)(body)
    block = ({"type": "tool_use", "id": "toolu_note_1", "name": call[0], "input": call[1]} if call
             else {"type": "text", "text": text})
    stop = "tool_use" if call else "end_turn"
    usage = {"input_tokens": max(1, len(conversation_text(body)) // 4), "output_tokens": 12}
    message = {"id": "msg_scripted", "type": "message", "role": "assistant", "model": body.get("model"),
               "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        return Reply(message)
    start = {**block, "input": {}} if call else {**block, "text": ""}
    delta = ({"type": "input_json_delta", "partial_json": json.dumps(call[1])} if call
             else {"type": "text_delta", "text": text})
    events = [("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                              "usage": {**usage, "output_tokens": 1}}}),
              ("content_block_start", {"index": 0, "content_block": start}),
              ("content_block_delta", {"index": 0, "delta": delta}),
              ("content_block_stop", {"index": 0}),
              ("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                 "usage": {"output_tokens": 12}}),
              ("message_stop", {})]
    return Stream([f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()
                   for name, data in events])


class ScriptedUpstream(FakeOpenAI):
    """FakeOpenAI (as strict as llama.cpp's server) whose chat and Messages answers follow the script."""

    def default_answer(self, method: str, path: str, body: bytes) -> Reply | Stream:
        if method == "POST" and path.endswith("/chat/completions"):
            return chat_answer(json.loads(body or b"{}"))
        if method == "POST" and path.endswith("/messages"):
            return messages_answer(json.loads(body or b"{}"))
        return super().default_answer(method, path, body)

    def bodies(self) -> list[dict[str, Any]]:
        """The model requests received: chat completions and Anthropic Messages."""
        return [r.json() for r in self.received
                if r.method == "POST" and r.path.endswith(("/chat/completions", "/messages"))]


# --------------------------------------------------------------------------- ARGO's legacy chat API


def argo_reply(body: dict[str, Any]) -> str | dict[str, Any]:
    """FakeArgo's `response` for this request: text, or a tool call in the shape of the model's family."""
    text, call = plan(body)
    if not call:
        return text or ""
    name, args = call
    model = str(body.get("model") or "")
    if model.startswith("claude"):
        return {"content": [{"type": "tool_use", "id": "toolu_note_1", "name": name, "input": args}]}
    if model.startswith("gemini"):
        return {"content": "", "tool_calls": [{"id": None, "name": name, "args": args}]}
    return {"content": None, "tool_calls": [{"id": CALL_ID, "type": "function",
                                             "function": {"name": name, "arguments": json.dumps(args)}}]}


def tool_results(body: dict[str, Any]) -> list[str]:
    """The texts of the tool results in a chat request: OpenAI `role: tool` messages and Anthropic
    `tool_result` blocks (ARGO's Claude family)."""
    out = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            out.append(json.dumps(message.get("content"), ensure_ascii=False))
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                out.append(json.dumps(block.get("content"), ensure_ascii=False))
    return out


def user_texts(body: dict[str, Any]) -> list[str]:
    return [json.dumps(m.get("content"), ensure_ascii=False) for m in body.get("messages") or []
            if isinstance(m, dict) and m.get("role") == "user"]


# --------------------------------------------------------------------------- a real server behind the script


@dataclass
class Forwarded:
    body: dict[str, Any]
    status: int
    text: str  # the answer's content, from its JSON or its stream


class ReplayToReal(FakeOpenAI):
    """For a real server whose small model will not call a tool by itself: the first turn of the round trip
    (the model asking for the note, which is all the script decides) is answered by the script, every other
    request goes to the real server as it came and its answer comes back as it went. So the real server gets
    the conversation with the tool call and the agent's tool result in its history, and writes the answer."""

    def __init__(self, real_base_url: str, timeout: float, stop: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.real = real_base_url.rstrip("/")
        self.timeout = timeout
        self.stop = stop  # stop sequences added to each request sent on: where a small model's answer ends
        self.forwarded: list[Forwarded] = []
        self.replayed: list[dict[str, Any]] = []
        self.server_log: Path | None = None

    def refusal(self, method: str, path: str, body: bytes) -> None:
        return None  # the real server behind decides what it refuses

    def default_answer(self, method: str, path: str, body: bytes) -> Reply | Stream:
        request = json.loads(body or b"{}") if method == "POST" else {}
        if method == "POST" and path.endswith("/chat/completions"):
            text, call = plan(request)
            if call or text == ASK_FOR_FILE:
                self.replayed.append(request)
                return chat_answer(request)
            if request.get("tools") and tool_results(request):
                # After the tool's result, the model is asked for text: so small a model may otherwise call
                # tools turn after turn (Codex runs every call), and the run never ends. The server still gets
                # the whole history with the call and its result, the shape under test.
                request["tool_choice"] = "none"
            if self.stop:
                request["stop"] = list(self.stop)
            body = json.dumps(request).encode()
        url = self.real + "/" + path.split("/v1/", 1)[-1]
        answer = requests.request(method, url, data=body or None, timeout=self.timeout, stream=True,
                                  headers={"Content-Type": "application/json"})
        kind = answer.headers.get("Content-Type", "application/json")
        if "event-stream" in kind:  # relayed as it comes: an agent gives up on a stream silent for minutes
            return Stream(self._relay(answer, request, kind), headers={"Content-Type": kind})
        self._record(request, answer.status_code, answer.content, kind, path)
        return Reply(answer.content, status=answer.status_code, headers={"Content-Type": kind})

    def _relay(self, answer: requests.Response, request: dict[str, Any], kind: str) -> Iterator[bytes]:
        seen = bytearray()
        with answer:
            for piece in answer.iter_content(chunk_size=None):
                seen += piece
                yield piece
        self._record(request, answer.status_code, bytes(seen), kind, "/chat/completions")

    def _record(self, request: dict[str, Any], status: int, raw: bytes, kind: str, path: str) -> None:
        if path.endswith("/chat/completions"):
            self.forwarded.append(Forwarded(request, status, answer_text(raw, kind)))


def answer_text(raw: bytes, content_type: str) -> str:
    """The assistant text of a chat completion, whole or streamed."""
    if "event-stream" not in content_type:
        try:
            return json.loads(raw)["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError):
            return ""
    pieces = []
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            for choice in json.loads(line[5:]).get("choices") or []:
                pieces.append((choice.get("delta") or {}).get("content") or "")
    return "".join(pieces)
