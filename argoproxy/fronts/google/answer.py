"""The internal chat answer -> a GenerateContentResponse (whole), and Google's error shape (google.rpc.Status).
Reasoning becomes thought parts; a tool call a functionCall part that keeps its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argoproxy.fronts.front import Exchange, new_id, whole_answer
from argoproxy.pipeline.answer_shape import bounded_loads


# HTTP status -> google.rpc.Code name (https://cloud.google.com/apis/design/errors#handling_errors).
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                405: "INVALID_ARGUMENT", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT",
                415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "function_call": "STOP",
                  "content_filter": "SAFETY"}


def status_name(status: int) -> str:
    if status in STATUS_NAMES:
        return STATUS_NAMES[status]
    return "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"


def error_object(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Google's error shape (google.rpc.Status over HTTP); the request id as a RequestInfo detail."""
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name(status)}
    if request_id:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id}]
    return {"error": error}


@dataclass
class GoogleExchange(Exchange):
    """The Exchange of a Google request: how its stream is framed, which method it called."""
    sse: bool = True
    method: str = "generate_content"


def usage_metadata(usage: Any) -> dict[str, Any]:
    """Chat usage as usageMetadata (candidates exclude the reasoning tokens, which Gemini counts apart). The
    shared answer side estimates a usage the upstream did not send (argoproxy/pipeline/stream_usage.py)."""
    if not isinstance(usage, dict):
        return {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    details = usage.get("completion_tokens_details")
    thoughts = (details.get("reasoning_tokens") or 0) if isinstance(details, dict) else 0
    out = {"promptTokenCount": prompt, "candidatesTokenCount": max(completion - thoughts, 0),
           "totalTokenCount": usage.get("total_tokens") or prompt + completion}
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    cached = usage.get("prompt_tokens_details")
    if isinstance(cached, dict) and cached.get("cached_tokens"):
        out["cachedContentTokenCount"] = cached["cached_tokens"]
    return out


def function_call_part(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """A chat tool call as a functionCall part; its id is kept, so a client that sends it back is matched by it."""
    try:
        args = bounded_loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        args = {"input": arguments}
    call: dict[str, Any] = {"name": name, "args": args if isinstance(args, dict) else {"input": args}}
    if call_id:
        call["id"] = call_id
    return {"functionCall": call}


def response_object(parts: list[dict[str, Any]], ex: Exchange, finish: str | None,
                    usage: dict[str, Any] | None, response_id: str) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        out["usageMetadata"] = usage
    out["modelVersion"] = ex.model
    out["responseId"] = response_id
    return out


def chat_to_response(completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """A whole chat.completion as a GenerateContentResponse."""
    answer = whole_answer(completion, ex)
    parts: list[dict[str, Any]] = [{"text": answer.reasoning, "thought": True}] if answer.reasoning else []
    text = answer.text + (answer.refusal or "")  # Gemini has no place of its own for a refusal
    if text or not answer.calls:
        parts.append({"text": text})
    for call in answer.calls:
        function = call.get("function") or {}
        parts.append(function_call_part(call.get("id"), function.get("name") or "", function.get("arguments")))
    finish = FINISH_REASONS.get(answer.choice.get("finish_reason") or "", "STOP")
    return response_object(parts, ex, finish, usage_metadata(ex.usage), new_id("resp_"))
