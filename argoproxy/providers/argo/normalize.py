"""The message normalisations the ARGO gateway needs, family by family, in one place.

ARGO's legacy chat routes put provider-specific demands on the request (reference sections 2.2, 3.4
and 5.5). `normalize_chat` applies all of them to an ARGO-shaped chat body:

- `user` is forced to the configured (or passed-through) ANL username; `model` to the internal id;
- the `developer` role becomes `system` (the gateway documents only system/user/assistant, and its
  older SDK turns `developer` into a bogus `messages[0].tool_calls`, issue #107);
- `prompt` becomes a one-item list holding the deduplicated, "\n\n"-joined prompt strings, and
  `system` a deduplicated, "\n\n"-joined string;
- o1-preview / o1-mini take only the user role: system messages become user messages and the
  `system` field is merged into the prompt (or, for messages-style requests, into a leading user message);
- Claude and Gemini need a user message: "[continue]" is appended when there is none;
- Gemini needs system content as a string: content-part lists of system messages are flattened;
- Claude answers non-streamed requests only up to 21000 max tokens (v2.8 cap).

Content arrays of user/assistant messages are left alone: the gateway accepts them (images too).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from argoproxy.providers.argo.models import accepts_system_messages, model_family

CONTINUE_PLACEHOLDER = "[continue]"
CLAUDE_NON_STREAMING_MAX_TOKENS = 21000


def normalize_chat(
    body: Mapping[str, Any], *, model_id: str, user: str, upstream_stream: bool = False
) -> dict[str, Any]:
    """A normalised copy of an ARGO chat body (messages style, prompt style, or both); `body` is not modified.

    `upstream_stream` says whether the body goes to /streamchat/ (the Claude cap applies only when not).
    """
    data = copy.deepcopy(dict(body))
    data["user"] = user
    data["model"] = model_id
    family = model_family(model_id)
    if isinstance(data.get("messages"), list):
        data["messages"] = [_developer_as_system(m) for m in data["messages"]]
    _coerce_prompt_and_system(data)
    if not accepts_system_messages(model_id):
        _move_system_to_user(data)
    if family in ("anthropic", "google"):
        _ensure_user_message(data)
    if family == "google":
        _flatten_system_content(data)
    if family == "anthropic" and not upstream_stream:
        _cap_max_tokens(data, CLAUDE_NON_STREAMING_MAX_TOKENS)
    return data


def join_unique(items: list[str]) -> str:
    """Order-preserving deduplication, joined by blank lines and stripped (argo-proxy's prompt merge)."""
    return "\n\n".join(dict.fromkeys(items)).strip()


def text_parts(content: list[Any]) -> list[str]:
    """The texts of a content-part list (plain strings and parts with a text field; images are skipped)."""
    return [part if isinstance(part, str) else part["text"] for part in content
            if isinstance(part, str) or (isinstance(part, Mapping) and isinstance(part.get("text"), str))]


def flatten_text_parts(content: Any) -> Any:
    """A content-part list as one string of its text parts joined by blank lines; other values unchanged."""
    if not isinstance(content, list):
        return content
    return "\n\n".join(text_parts(content))


def _developer_as_system(message: Any) -> Any:
    if isinstance(message, dict) and message.get("role") == "developer":
        return {**message, "role": "system"}
    return message


def _as_strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)]


def _coerce_prompt_and_system(data: dict[str, Any]) -> None:
    if "prompt" in data:
        if data["prompt"] is None:
            del data["prompt"]
        else:
            prompts = _as_strings(data["prompt"])
            if prompts or not data.get("messages"):
                data["prompt"] = [join_unique(prompts)]
            else:
                del data["prompt"]  # an empty prompt list next to messages adds nothing
    if "system" in data:
        if data["system"] is None or data["system"] == []:
            del data["system"]
        else:
            data["system"] = join_unique(_as_strings(data["system"]))


def _move_system_to_user(data: dict[str, Any]) -> None:
    messages = data.get("messages")
    if isinstance(messages, list):
        data["messages"] = [
            {**m, "role": "user"} if isinstance(m, dict) and m.get("role") == "system" else m for m in messages
        ]
    system = data.pop("system", None)
    if not system:
        return
    if "prompt" in data:
        data["prompt"] = [join_unique([system, *data["prompt"]])]
    else:
        data["messages"] = [{"role": "user", "content": system}, *(data.get("messages") or [])]


def _has_user_content(data: Mapping[str, Any]) -> bool:
    messages = data.get("messages") or []
    if any(isinstance(m, Mapping) and m.get("role") == "user" for m in messages):
        return True
    return any(p.strip() for p in data.get("prompt") or [])


def _ensure_user_message(data: dict[str, Any]) -> None:
    if _has_user_content(data):
        return
    if "prompt" in data and not data.get("messages"):
        data["prompt"] = [CONTINUE_PLACEHOLDER]
        return
    data["messages"] = [*(data.get("messages") or []), {"role": "user", "content": CONTINUE_PLACEHOLDER}]


def _flatten_system_content(data: dict[str, Any]) -> None:
    messages = data.get("messages")
    if not isinstance(messages, list):
        return
    data["messages"] = [
        {**m, "content": flatten_text_parts(m.get("content"))}
        if isinstance(m, dict) and m.get("role") == "system"
        else m
        for m in messages
    ]


def _cap_max_tokens(data: dict[str, Any], cap: int) -> None:
    for key in over_cap(data, cap):
        data[key] = cap


def over_cap(data: Mapping[str, Any], cap: int = CLAUDE_NON_STREAMING_MAX_TOKENS) -> list[str]:
    """The output limits of a body above `cap` (max_tokens, max_completion_tokens)."""
    return [key for key in ("max_tokens", "max_completion_tokens")
            if type(data.get(key)) is int and data[key] > cap]
