"""Chat messages as every chat upstream takes them, whichever door the request came through.

OpenAI's own API defined two things many OpenAI-compatible servers refuse (llama.cpp's server answers both
with a 500; docs/decisions.md, "Messages every chat server takes"):

- the `developer` role (Codex sends it on every request): it becomes `system`, unless the upstream takes it
  (Backend.keeps_developer: OpenAI's own API, or DEVELOPER_ROLE / a `models:` entry's `developer_role`);
- an assistant turn with `content: null` (the SDKs replay tool round trips this way): it carries
  `content: ""`, which OpenAI and every server tried accept, unless the backend is known to want null
  (Backend.tool_turn_content is None: ARGO, whose reference client sends null beside tool calls).
"""

from __future__ import annotations

from typing import Any


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
            content = message.get("content")
            if tool_turn_content is None:  # null wanted beside tool calls
                if content == "" and message.get("tool_calls"):
                    message["content"] = None
                    changed = True
            elif content is None and ("content" in message or message.get("tool_calls")):
                message["content"] = tool_turn_content
                changed = True
    return changed
