"""Reasoning as a local server's chat template reads it. vLLM and llama.cpp's server render the model's chat
template with the request's `chat_template_kwargs`; a template with a reasoning switch (Qwen3's, GLM's:
`enable_thinking`) reasons by its own default whatever `reasoning_effort` says. So a chat request with a
`reasoning_effort` to either server also carries `chat_template_kwargs.enable_thinking`: false for "none", true
for any other effort (docs/client-apis.md's table). llama.cpp's server reads that key itself too, and wants a JSON
boolean there. The client's own `chat_template_kwargs` keys win; no other upstream gets the field (OpenAI's API
refuses members it does not know).
"""

from __future__ import annotations

from typing import Any, Mapping

SWITCHED = frozenset({"vLLM", "llama.cpp"})  # servers that pass chat_template_kwargs to the template
SWITCH = "enable_thinking"
KWARGS = "chat_template_kwargs"


def template_kwargs(body: Mapping[str, Any], server: str | None) -> dict[str, Any] | None:
    """The chat_template_kwargs a chat request to `server` (local_server's Said.name) goes with: the switch its
    reasoning_effort means, under the client's own keys; None: the body goes as it is (no effort, another
    server, the client's own switch already there, or a chat_template_kwargs that is not an object: the
    server judges it)."""
    effort = body.get("reasoning_effort")
    if server not in SWITCHED or not isinstance(effort, str):
        return None
    sent = body.get(KWARGS)
    if sent is None:
        sent = {}
    if not isinstance(sent, dict) or SWITCH in sent:
        return None
    return {SWITCH: effort != "none", **sent}
