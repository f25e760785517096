"""The response object: every field both documents (OpenAI's and Open Responses') require, the request's
settings echoed, its status, usage and error."""

from __future__ import annotations

import time
from typing import Any

from argoproxy.fronts.front import Exchange
from argoproxy.fronts.responses.request import summary_asked


# Request fields echoed in the response object as they came (null when absent).
ECHOED = ("instructions", "max_output_tokens", "max_tool_calls", "metadata", "prompt_cache_key", "safety_identifier")
# Sampling settings a response object reports, with what it says when the request left one out: the API's
# defaults (Open Responses requires each as a number; OpenAI's documents them so).
SAMPLING = (("temperature", 1.0), ("top_p", 1.0), ("presence_penalty", 0.0), ("frequency_penalty", 0.0),
            ("top_logprobs", 0))
# The fields a function tool is echoed with (Open Responses requires each, null when not given).
FUNCTION_TOOL = {"description": None, "parameters": None, "strict": None}
# The error codes a response object's `error` may carry (OpenAI's ResponseErrorCode); any other is a server_error
# (the event that ended the stream keeps the precise one).
ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt", "invalid_image",
                         "invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large",
                         "image_too_small", "image_parse_error", "unsupported_image_media_type",
                         "failed_to_download_image"})


def usage_to_responses(usage: Any) -> dict[str, Any]:
    """Chat usage in the Responses shape; none yet (a response still in progress) counts zeros: neither document
    has a null there that the other takes (OpenAI's has no null, Open Responses requires the field)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    details = usage.get("prompt_tokens_details") or {}
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": details.get("cached_tokens") or 0,
                                     "cache_write_tokens": details.get("cache_write_tokens") or 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": usage.get("total_tokens") or prompt + completion}


def response_error(code: str, message: str) -> dict[str, Any]:
    """A response object's `error`: its code one the API lists."""
    return {"code": code if code in ERROR_CODES else "server_error", "message": message}


def status_of(finish_reason: Any) -> tuple[str, dict[str, Any] | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(ex: Exchange, resp_id: str, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None = None, incomplete: dict[str, Any] | None = None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The response object: every field both documents require, the request's settings echoed (the defaults the
    API reports for those it left out)."""
    obj: dict[str, Any] = (ex.echo or echoed(ex)).copy()
    if obj["id"] is None:  # a stored response's id is its store's (echoed)
        obj["id"] = resp_id
    obj["status"] = status
    if status == "completed":
        obj["completed_at"] = int(time.time())
    obj["error"] = error
    obj["incomplete_details"] = incomplete
    obj["output"] = output
    obj["usage"] = usage if usage is not None else usage_to_responses(None)
    return obj


# A response object of a request that sets nothing, in the order the fields are written: echoed() fills it in.
_UNSET = {**{name: None for name in ECHOED}, **dict(SAMPLING)}
_OBJECT: dict[str, Any] = {
    "id": None, "object": "response", "created_at": 0, "status": None, "completed_at": None, "background": False,
    "error": None, "incomplete_details": None, "model": None, "output": None, "previous_response_id": None,
    "store": False, "reasoning": None, "text": None, "truncation": "disabled", "service_tier": "default",
    "tools": None, "tool_choice": "auto", "parallel_tool_calls": True, "usage": None, **_UNSET}


def echoed(ex: Exchange) -> dict[str, Any]:
    """Each response object of an exchange, but for what it says of its answer (status, output, usage...): the
    request's settings echoed, and a stored response's own fields (ex.state, set before the first object is
    made). Made once (ex.echo), each object a copy."""
    req = ex.request
    echo = _OBJECT.copy()
    echo["created_at"], echo["model"] = ex.created, ex.model
    reasoning, text = req.get("reasoning"), req.get("text")
    echo["reasoning"] = {"effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
                         "summary": summary_asked(req)}
    echo["text"] = {"format": {"type": "text"}, **text} if isinstance(text, dict) else {"format": {"type": "text"}}
    echo["tools"] = echoed_tools(req.get("tools"))
    for name in _ECHO_KEYS.intersection(req):  # a setting left null is reported as left out
        if req[name] is not None:
            echo[name] = req[name]
    if req.get("parallel_tool_calls") is False:
        echo["parallel_tool_calls"] = False
    if isinstance(req.get("user"), str):  # deprecated: a string when given, absent otherwise
        echo["user"] = req["user"]
    if ex.state is not None:  # a stored response (argoproxy/state/): its id and stored fields
        echo.update(ex.state)
    ex.echo = echo
    return echo


_ECHO_KEYS = frozenset(_UNSET) | {"tool_choice"}  # echoed as they came, when not null


def echoed_tools(tools: Any) -> list[Any]:
    """The request's tools as a response object lists them: function tools with every field the documents
    require (null when not given), others as they came."""
    if not isinstance(tools, list):
        return []
    return [{**FUNCTION_TOOL, **t} if isinstance(t, dict) and t.get("type") == "function" else t for t in tools]
