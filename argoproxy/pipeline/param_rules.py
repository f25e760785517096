"""LLM_PARAMS applied to a request body: a model's rule (parsed once at start-up: argoproxy/config/llm_params.py)
overrides what the client sent, in place. Gateway.params is the one place it is applied."""

from __future__ import annotations

import dataclasses
from typing import Any, Collection

from argoproxy.config.llm_params import ModelRule


def apply_rule(body: dict[str, Any], rule: ModelRule) -> dict[str, Any]:
    """Apply a rule's overrides to a request body (in place): params replace what the client sent."""
    body.update(rule.params)
    if rule.upstream_model_name:
        body["model"] = rule.upstream_model_name
    if rule.append_to_last_user_message:
        append_to_last_user_message(body, rule.append_to_last_user_message)
    return body


def without_params(rule: ModelRule, names: Collection[str]) -> tuple[ModelRule, list[str]]:
    """The rule with these parameters left out, and the ones it had (sorted): what a client's API version
    refuses is not added to its request."""
    held = sorted(name for name in rule.params if name in names)
    if not held:
        return rule, held
    return dataclasses.replace(rule, params={k: v for k, v in rule.params.items() if k not in names}), held


def append_to_last_user_message(body: dict[str, Any], text: str) -> None:
    """Append text to the last message when it is the user's, else add a user message (cot_proxy's rules)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        if "prompt" in body and isinstance(body["prompt"], str):
            body["prompt"] += text
        return
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "user":
        messages.append({"role": "user", "content": text})
        return
    content = last.get("content")
    if isinstance(content, str):
        last["content"] = content + text
    elif isinstance(content, list):
        for part in reversed(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                part["text"] += text
                return
        content.append({"type": "text", "text": text})
    else:
        last["content"] = text
