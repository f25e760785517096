"""The tokens a chat template adds around a request's texts, by model family: what the estimate
(meter/tokens.py counts only the texts) adds for count_tokens / countTokens when the upstream cannot count
itself (pipeline/upstream_count.py).

A template wraps each message in role markers, may open with a default system prompt, and writes tool
definitions into the prompt with a preamble of its own (how to call them) and indented JSON. Per family:
a fixed part per request, a part per message, a fixed part when tools are declared and a part per tool.
Families not listed take DEFAULT, measured against llama.cpp's server's generic template. The figures and their
error against llama.cpp's server are in docs/client-apis.md (tests/real/test_counts.py measures them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from argoproxy.meter.tokens import count_request_tokens


@dataclass(frozen=True)
class Overhead:
    request: int  # the template's opening and the generation prompt (and a default system prompt)
    message: int  # role markers around each message
    tools: int  # the tool preamble, once when any tool is declared
    tool: int  # each tool's framing (and the indentation the JSON is written with)
    renders_tools: bool = True  # False: the template leaves tool definitions out of the prompt (Gemma 3's)


# Substring of the model name (lower case) -> its template's overhead; the first that matches wins.
FAMILIES: tuple[tuple[str, Overhead], ...] = (
    # Anthropic: its tool-use system prompt is 346 tokens (Claude 4 models, tool_choice auto; Anthropic's docs)
    ("claude", Overhead(request=4, message=4, tools=346, tool=6)),
    # OpenAI: 3 per message and 3 for the reply's priming (OpenAI's cookbook); functions as a namespace
    ("gpt", Overhead(request=3, message=3, tools=12, tool=8)),
    ("o1", Overhead(request=3, message=3, tools=12, tool=8)),
    ("o3", Overhead(request=3, message=3, tools=12, tool=8)),
    ("o4", Overhead(request=3, message=3, tools=12, tool=8)),
    # Gemma 3's Jinja template under llama.cpp's server (measured, tests/real/test_counts.py): 11 around the
    # request, 13 per message, and no tool definitions in the prompt at all
    ("gemma", Overhead(request=11, message=13, tools=0, tool=0, renders_tools=False)),
)
# Not measured here: role markers as most templates write them, tools as indented JSON with a short preamble.
DEFAULT = Overhead(request=3, message=5, tools=20, tool=8)


def overhead_for(model: Any) -> Overhead:
    name = model.lower() if isinstance(model, str) else ""
    return next((o for family, o in FAMILIES if family in name), DEFAULT)


def template_tokens(body: Mapping[str, Any]) -> int:
    """The tokens the model's chat template adds to this chat request's texts (none without messages: a
    forwarded read, an embedding's input, a completion's prompt go through no chat template)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 0
    o = overhead_for(body.get("model"))
    tools = body.get("tools")
    count = o.request + o.message * len(messages)
    if isinstance(tools, list) and tools and o.renders_tools:
        count += o.tools + o.tool * len(tools)
    return count


def estimated_prompt(body: Mapping[str, Any]) -> int:
    """The estimate of a chat request's prompt as its model reads it: its texts and the template around them
    (without the tool definitions where the template leaves them out)."""
    if not overhead_for(body.get("model")).renders_tools and body.get("tools"):
        body = {k: v for k, v in body.items() if k != "tools"}
    return count_request_tokens(body) + template_tokens(body)
