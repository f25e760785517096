"""The internal chat answer -> an Interaction (whole), or its chunks -> the Interactions stream's events
(`interaction.created`, `step.start`, `step.delta`, `step.stop`, `interaction.completed`; `error` for a stream cut
short), and the API's error shape (`{"error": {"code", "message"}}`, the code google.rpc's name in lower case).

Reasoning becomes a `thought` step with its summary (unless generation_config.thinking_summaries is none), the
text a `model_output` step, each tool call a `function_call` step (status `requires_action`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import Exchange, StreamState, new_id, whole_answer
from argoproxy.pipeline.answer_shape import bounded_loads

OBJECT = "interaction"
PREFIX = "v1_"  # an interaction's id starts so (Google's do), a stored one's too (state/records.py's response_id)
VERSIONS = ("v1", "v1beta", "v1alpha")  # the API's versions in its paths (google-genai 3.6's default: v1)
# HTTP status -> google.rpc.Code's name, as the Interactions API's errors spell it (lower case).
CODES = {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
         405: "invalid_argument", 408: "deadline_exceeded", 409: "aborted", 413: "invalid_argument",
         415: "invalid_argument", 422: "invalid_argument", 429: "resource_exhausted", 499: "cancelled",
         500: "internal", 501: "unimplemented", 502: "unavailable", 503: "unavailable", 504: "deadline_exceeded"}


NAMED = frozenset(CODES.values()) | {"failed_precondition"}


def error_code(status: int, code: Any = None) -> str:
    """The error's own code where it is one of google.rpc's names (the door's errors say failed_precondition...),
    else the name of its HTTP status."""
    if code in NAMED:
        return str(code)
    return CODES.get(status) or ("internal" if status >= 500 else "failed_precondition")


def error_object(status: int, message: str, code: Any = None) -> dict[str, Any]:
    return {"error": {"code": error_code(status, code), "message": message}}


def iso_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass
class InteractionsExchange(Exchange):
    """The Exchange of an interaction: its id (the store's when it is kept)."""
    interaction_id: str = ""


def interactions(ex: Exchange) -> InteractionsExchange:
    assert isinstance(ex, InteractionsExchange), "an Interactions answer comes from an Interactions request"
    return ex


def usage_of(usage: Any) -> dict[str, Any]:
    """Chat usage as the Interaction's (output tokens leave the thought tokens out, counted apart as Gemini does)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    details = usage.get("completion_tokens_details")
    thoughts = (details.get("reasoning_tokens") or 0) if isinstance(details, dict) else 0
    cached = usage.get("prompt_tokens_details")
    return {"total_input_tokens": prompt, "total_output_tokens": max(completion - thoughts, 0),
            "total_thought_tokens": thoughts,
            "total_cached_tokens": (cached.get("cached_tokens") or 0) if isinstance(cached, dict) else 0,
            "total_tokens": usage.get("total_tokens") or prompt + completion}


def status_of(finish_reason: Any, calls: bool) -> str:
    if calls or finish_reason == "tool_calls":
        return "requires_action"
    return "incomplete" if finish_reason in ("length", "content_filter") else "completed"


def interaction_object(ex: Exchange, status: str, steps: list[dict[str, Any]] | None,
                       usage: dict[str, Any] | None) -> dict[str, Any]:
    """The Interaction resource: its id, the model, its status and times, its steps and usage, and what the request
    set that the resource echoes; a stored one's own fields (ex.state: previous_interaction_id...)."""
    req = ex.request
    now = iso_time(time.time())
    obj: dict[str, Any] = {"id": interactions(ex).interaction_id, "object": OBJECT, "model": ex.model,
                           "status": status, "created": iso_time(ex.created), "updated": now}
    for name in ("system_instruction", "tools", "response_format", "response_mime_type"):
        if req.get(name) is not None:
            obj[name] = req[name]
    if ex.state is not None:
        obj.update(ex.state)
    if steps is not None:
        obj["steps"] = steps
    if usage is not None:
        obj["usage"] = usage
    return obj


def function_call_step(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    try:
        args = bounded_loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        args = {"input": arguments}
    return {"type": "function_call", "id": call_id or new_id("call_"), "name": name,
            "arguments": args if isinstance(args, dict) else {"input": args}}


def thought_step(text: str) -> dict[str, Any]:
    return {"type": "thought", "summary": [{"type": "text", "text": text}]}


def model_output_step(text: str) -> dict[str, Any]:
    return {"type": "model_output", "content": [{"type": "text", "text": text}]}


def chat_to_interaction(completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """A whole chat.completion as an Interaction."""
    answer = whole_answer(completion, ex)
    steps: list[dict[str, Any]] = [thought_step(answer.reasoning)] if answer.reasoning else []
    text = answer.text + (answer.refusal or "")  # no place of its own for a refusal
    if text or not answer.calls:
        steps.append(model_output_step(text))
    for call in answer.calls:
        function = call.get("function") or {}
        steps.append(function_call_step(call.get("id"), function.get("name") or "", function.get("arguments")))
    status = status_of(answer.choice.get("finish_reason"), bool(answer.calls))
    return interaction_object(ex, status, steps, usage_of(ex.usage))


class InteractionsStream(StreamState):
    """Chat chunks -> the Interactions stream's events: a step opened at its first delta and stopped when another
    kind begins; function calls whole at the end (a step.start carries a call's arguments as one object). Each
    event carries its `event_id`, its place in the stream (a background run's follower resumes after it)."""

    def __init__(self, ex: Exchange) -> None:
        super().__init__(ex)
        self.index = -1  # the open step's index
        self.open: str | None = None  # the open step's type
        self.sent = 0  # events made so far (each one's event_id)
        self.kept: list[dict[str, Any]] = []  # the steps, for the final interaction
        self.pieces: list[str] = []  # the open step's text

    def event(self, kind: str, **fields: Any) -> None:
        self.events.append({"event_type": kind, **fields, "event_id": str(self.sent)})
        self.sent += 1

    def start(self) -> None:
        self.event("interaction.created", interaction=interaction_object(self.ex, "in_progress", None, None))

    def step(self, kind: str, step: dict[str, Any]) -> None:
        """Open a step of `kind` (the open one stopped first)."""
        self.stop_step()
        self.index += 1
        self.open = kind
        self.new_item()
        self.event("step.start", index=self.index, step=step)

    def stop_step(self) -> None:
        if self.open is None:
            return
        text = "".join(self.pieces)
        self.kept.append(thought_step(text) if self.open == "thought" else model_output_step(text))
        self.pieces = []
        self.open = None
        self.event("step.stop", index=self.index)

    def keep(self, text: str) -> None:
        """The open step's text, kept for interaction.completed (which repeats every step): past the exchange's
        budget the stream ends early (ex.cut), as the Responses door's does."""
        if self.keeping(len(text)):
            self.pieces.append(text)
        else:
            self.ex.cut = True

    def reasoning(self, text: str) -> None:
        if self.open != "thought":
            self.step("thought", {"type": "thought"})
        self.keep(text)
        self.event("step.delta", index=self.index, delta={"type": "thought_summary",
                                                          "content": {"type": "text", "text": text}})

    def text(self, text: str) -> None:
        if self.open != "model_output":
            self.step("model_output", {"type": "model_output"})
        self.keep(text)
        self.event("step.delta", index=self.index, delta={"type": "text", "text": text})

    def tool_call(self, key: int, fragment: dict[str, Any]) -> None:
        self.wait(key, fragment, fragment.get("function") or {})  # sent whole, at the end

    def finish(self) -> None:
        calls = [function_call_step(call_id, name, args) for _, call_id, name, args in self.waited()]
        if self.open is None and not self.kept and not calls:
            self.text("")  # an answer with nothing in it still has its (empty) output
        self.stop_step()
        for call in calls:
            self.index += 1
            self.event("step.start", index=self.index, step=call)
            self.event("step.stop", index=self.index)
        usage = usage_of(self.ex.usage)
        status = status_of(self.choice.get("finish_reason"), bool(calls))
        self.ex.output = interaction_object(self.ex, status, self.kept + calls, usage)
        self.event("interaction.completed", interaction=self.ex.output)

    def fail(self, err: ProxyError) -> None:
        self.stop_step()
        self.event("error", error=error_object(err.status, err.message, err.code)["error"])
