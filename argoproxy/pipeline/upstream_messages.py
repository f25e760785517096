"""Chat messages as every chat upstream takes them, whichever door the request came through.

OpenAI's own API defined two things many OpenAI-compatible servers refuse (llama.cpp's server answers both
with a 500; docs/decisions.md, "Messages every chat server takes"):

- the `developer` role (Codex sends it on every request): it becomes `system`, unless the upstream takes it
  (Backend.keeps_developer: OpenAI's own API, or DEVELOPER_ROLE / a `models:` entry's `developer_role`);
- an assistant turn with `content: null` (the SDKs replay tool round trips this way): it carries
  `content: ""`, which OpenAI and every server tried accept, unless the backend is known to want null
  (Backend.tool_turn_content is None: ARGO, whose reference client sends null beside tool calls);
- a replayed tool call whose arguments are not a JSON object (a small model's broken call, which Codex answers
  and then replays as it was): llama.cpp's server answers 500 "Failed to parse tool call arguments as JSON"
  for the whole conversation, so it goes as `{"input": <the text>}` (as the Google door sends such a call),
  `{}` when empty.

And one thing the front doors' own translations must not write (`joined_turns`): two user turns, or two
assistant turns, in a row. Chat templates that want roles to alternate (Gemma's, Mistral's: vLLM answers 400
"Conversation roles must alternate") refuse them, and the vendors behind the doors read such turns as one:
Anthropic combines consecutive same-role turns, and Gemini CLI and google-genai replay a streamed answer as one
model Content per chunk. A chat-completions client's own messages are left as it wrote them.
"""

from __future__ import annotations

from typing import Any

from argoproxy.jsonfast import dumps, loads


TURNS = "messages"  # the chat request's member these rewrite


def join_turns(body: dict[str, Any], answer_pieces: bool = False) -> None:
    """joined_turns() over a translated request body's messages, in place (a request without them: nothing)."""
    turns = body.get(TURNS)
    if isinstance(turns, list):
        body[TURNS] = joined_turns(turns, answer_pieces)


def normalize(messages: Any, keep_developer: bool, tool_turn_content: str | None = "") -> bool:
    """Rewrite a chat request's messages in place; True when one changed (the body must be re-encoded)."""
    if not isinstance(messages, list):
        return False
    changed = False
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "developer" and not keep_developer:
            message["role"] = "system"
            changed = True
        elif role == "assistant":
            if message.get("tool_calls") and _objects_as_arguments(message["tool_calls"]):
                changed = True
            content = message.get("content")
            if tool_turn_content is None:  # null wanted beside tool calls
                if content == "" and message.get("tool_calls"):
                    message["content"] = None
                    changed = True
            elif content is None and ("content" in message or message.get("tool_calls")):
                message["content"] = tool_turn_content
                changed = True
    return changed


def _objects_as_arguments(calls: Any) -> bool:
    """Make each call's arguments a JSON object's text; True when one changed."""
    changed = False
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, str) and not _is_object(arguments):
            function["arguments"] = dumps({"input": arguments}).decode() if arguments.strip() else "{}"
            changed = True
    return changed


def _is_object(text: str) -> bool:
    try:
        return isinstance(loads(text), dict)
    except ValueError:
        return False


def joined_turns(messages: list[Any], answer_pieces: bool = False) -> list[Any]:
    """Consecutive user turns, or consecutive assistant turns, as one: texts a blank line apart, an assistant's
    tool calls gathered, users' parts kept in order; `answer_pieces` (the Google door, whose clients replay a
    streamed answer as a model turn per chunk): an assistant's texts joined as written. System, developer and
    tool messages are left where they are."""
    out: list[Any] = []
    for message in messages:
        last = out[-1] if out else None
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("user", "assistant") and isinstance(last, dict) and last.get("role") == role:
            out[-1] = _joined(last, message, "" if answer_pieces and role == "assistant" else "\n\n")
        else:
            out.append(message)
    return out


def _joined(first: dict[str, Any], second: dict[str, Any], apart: str) -> dict[str, Any]:
    joined = dict(first)
    a, b = first.get("content"), second.get("content")
    if first["role"] == "assistant":
        joined["content"] = apart.join(text for text in (_as_text(a), _as_text(b)) if text)
        calls = (first.get("tool_calls") or []) + (second.get("tool_calls") or [])
        if calls:
            joined["tool_calls"] = calls
    elif isinstance(a, str) and isinstance(b, str):
        joined["content"] = apart.join(text for text in (a, b) if text)
    else:
        joined["content"] = _as_parts(a) + _as_parts(b)
    return joined


def _as_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _as_parts(content: Any) -> list[Any]:
    if isinstance(content, list):
        return list(content)
    return [{"type": "text", "text": content}] if isinstance(content, str) and content else []
