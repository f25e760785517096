"""What real ARGO refuses, per model, for the fakes that stand for it (facts: ../shared/reference/argo-capabilities.md,
from a public probe of ARGO's production gateway): `refusal(endpoint, body)` is None, or the (status, JSON body)
ARGO answers with.

Endpoints: "anthropic" (ARGO's native /v1/messages), "openai" (its OpenAI-compatible /v1/chat/completions) and
"standard" (the legacy /api/v1/resource/chat/ and streamchat/). The native endpoints refuse exactly what the probe
saw refused, in ARGO's shapes: the provider's own error quoted in the message ("Error code: 400 - {...}"). The
legacy API carries no `thinking` or effort and was not probed: it refuses what the models themselves refuse
(sampling parameters), in the OpenAI-compatible endpoint's shape.

The Anthropic endpoint relays the client's `anthropic-version`: from 2026-10-21 (Anthropic's SDK 2.x default) it
refuses `temperature`, `top_p` and `top_k` at any value, a `document` block in an assistant message and
`citations` on a user's text block, on every Claude model and on count_tokens too.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

CLAUDE_ADAPTIVE = {"claudeopus47", "claudeopus46", "claudesonnet46"}
CLAUDE_NO_THINKING = {"claudeopus45", "claudesonnet45", "claudehaiku45", "claudeopus41"}
CLAUDE_PROBED = CLAUDE_ADAPTIVE | CLAUDE_NO_THINKING
CLAUDE_NO_SAMPLING = {"claudeopus47"}  # temperature and top_p each refused
CLAUDE_ONE_SAMPLING = {"claudeopus46", "claudesonnet46", "claudeopus45", "claudesonnet45", "claudehaiku45"}
EFFORTS = {"claudeopus47": ("low", "medium", "high", "xhigh", "max")}
OTHER_EFFORTS = ("low", "medium", "high", "none", "minimal")
GPT5 = {"gpt5", "gpt5mini", "gpt55"}  # temperature only 1, no top_p
GEMINI_ONE_LIMIT = {"gemini25pro", "gemini25flash"}
STRICT_VERSION = date(2026, 10, 21)  # this Anthropic API version and every later one
NO_SAMPLING_FIELDS = ("temperature", "top_p", "top_k")


INTERNAL_ID = re.compile(r"[a-z][a-z0-9]*")  # how ARGO names its models (gpt4o, claudeopus46): never an alias


def model_refusal(endpoint: str, model: Any) -> tuple[int, dict[str, Any]] | None:
    """ARGO's native endpoints serve their own model ids only: an alias, or a name ARGO does not have, is
    `model_not_found` on the OpenAI-compatible endpoint; the Anthropic one serves Claude models only (argo-proxy
    issue #67: "Model 'gpt4o' is not supported on the /v1/messages endpoint")."""
    model = model if isinstance(model, str) else ""
    if endpoint == "openai" and not INTERNAL_ID.fullmatch(model):
        return 404, {"error": {"message": f"The model `{model}` does not exist.", "type": "invalid_request_error",
                               "code": "model_not_found"}}
    if endpoint == "anthropic" and not (INTERNAL_ID.fullmatch(model) and model.startswith("claude")):
        return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                "message": f"Model '{model}' is not supported on the /v1/messages endpoint."}}
    return None


def native_refusal(path: str, raw: bytes) -> tuple[int, dict[str, Any]] | None:
    """For a fake standing for ARGO's native APIs by path (FakeOpenAI(refuse=native_refusal))."""
    endpoint = "openai" if path.endswith("/chat/completions") else "anthropic" if path.endswith("/messages") else None
    if endpoint is None:
        return None
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return None
    return refusal(endpoint, body)


def refusal(endpoint: str, body: Any, version: str | None = None) -> tuple[int, dict[str, Any]] | None:
    """`version`: the Anthropic endpoint's `anthropic-version` header."""
    if not isinstance(body, dict):
        return None
    model = str(body.get("model") or "")
    if endpoint == "anthropic":
        return version_refusal(body, version) or _claude(model, body)
    if endpoint == "openai" and _too_long_whole(model, body) is not None:
        return _too_long_whole(model, body)
    message = _sampling(model, body)
    if message is None and endpoint == "openai" and model in GEMINI_ONE_LIMIT \
            and body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        return 500, {"error": {"message": "'NoneType' object is not iterable", "type": "TypeError",
                               "code": "internal_error"}}
    if message is None:
        return None
    if model.startswith("claude") and endpoint == "standard":
        return 400, _anthropic_error(message)
    return 400, {"error": {"message": f"Error code: 400 - {message}", "type": "BadRequestError",
                           "code": "internal_error"}}


def _sampling(model: str, body: dict[str, Any]) -> str | None:
    """A model's own refusal of temperature/top_p, as its provider words it (OpenAI's error object, quoted)."""
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if model in GPT5:
        if temperature is not None and float(temperature) != 1:
            return _openai_quoted(f"Unsupported value: 'temperature' does not support {float(temperature)} with this "
                                  "model. Only the default (1) value is supported.", "temperature", "unsupported_value")
        if top_p is not None:
            return _openai_quoted("Unsupported parameter: 'top_p' is not supported with this model.", "top_p",
                                  "unsupported_parameter")
    if model in CLAUDE_NO_SAMPLING:
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                return f"`{name}` is deprecated for this model."
    if model in CLAUDE_ONE_SAMPLING and temperature is not None and top_p is not None:
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    return None


# Anthropic's SDK, which ARGO calls Claude with, refuses a request answered whole that may take over 10 minutes
# (an hour per 128000 output tokens): argo-proxy #107, and its 21000 cap.
LONGEST_WHOLE = 600 * 128000 // 3600


def _too_long_whole(model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if model.startswith("claude") and body.get("stream") is not True and type(limit) is int and limit > LONGEST_WHOLE:
        return 500, {"error": {"message": "Streaming is required for operations that may take longer than 10 "
                                          "minutes.", "type": "ValueError", "code": "internal_error"}}
    return None


def version_refusal(body: dict[str, Any], version: str | None) -> tuple[int, dict[str, Any]] | None:
    """What Anthropic's API refuses under `anthropic-version` 2026-10-21 or later (a version that is no date is
    an older one here), on messages and count_tokens alike."""
    try:
        strict = date.fromisoformat(version or "") >= STRICT_VERSION
    except ValueError:
        strict = False
    message = _strict_version_problem(body) if strict else None
    return None if message is None else (400, _anthropic_error(message))


def _strict_version_problem(body: dict[str, Any]) -> str | None:
    for name in NO_SAMPLING_FIELDS:
        if name in body:
            return f"{name}: this parameter is not supported in API version {STRICT_VERSION.isoformat()}"
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            kind = block.get("type") if isinstance(block, dict) else None
            if role == "assistant" and kind == "document":
                return f"messages.{i}.content.{j}: document blocks are not accepted in assistant messages"
            if role == "user" and kind == "text" and "citations" in block:
                return f"messages.{i}.content.{j}.citations: Extra inputs are not permitted"
    return None


def _claude(model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    if not model.startswith("claude"):
        return None
    if body.get("max_tokens") is None:
        return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens is required"}}
    too_long = _too_long_whole(model, body)
    if too_long is not None:
        return too_long
    message = _thinking(model, body) or _sampling(model, body)
    return None if message is None else (400, _anthropic_error(message))


def _thinking(model: str, body: dict[str, Any]) -> str | None:
    """The reference: `enabled` and `budget_tokens` rejected on every model; the 4.6 and 4.7 models take
    `adaptive` only, the 4.5 models and Opus 4.1 no thinking at all (`disabled` included)."""
    thinking = body.get("thinking")
    effort = (body.get("output_config") or {}).get("effort") if isinstance(body.get("output_config"), dict) else None
    if isinstance(thinking, dict):
        kind = thinking.get("type")
        if kind == "enabled":
            return ('"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
                    '"output_config.effort" to control thinking behavior.')
        if "budget_tokens" in thinking:
            return f"thinking.{kind}.budget_tokens: Extra inputs are not permitted"
        if (model in CLAUDE_ADAPTIVE and kind != "adaptive") or model in CLAUDE_NO_THINKING:
            return f'"thinking.type.{kind}" is not supported for this model.'
    if effort is not None and model in CLAUDE_PROBED:
        taken = EFFORTS.get(model, OTHER_EFFORTS)
        if effort not in taken:
            listed = ", ".join(f"'{e}'" for e in taken[:-1]) + f" or '{taken[-1]}'"
            return f"output_config.effort: Input should be {listed}"
    return None


def _anthropic_error(message: str) -> dict[str, Any]:
    quoted = {"type": "error", "error": {"type": "invalid_request_error", "message": message},
              "request_id": "req_vrtx_fake"}
    return {"type": "error", "error": {"type": "invalid_request_error", "message": f"Error code: 400 - {quoted!r}"}}


def _openai_quoted(message: str, param: str, code: str) -> str:
    return repr({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
