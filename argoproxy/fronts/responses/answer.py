"""The internal chat answer -> a whole `response` object's output items: reasoning (its summary or its content,
sealed when asked), the message, the tool calls."""

from __future__ import annotations

from typing import Any

from argoproxy.fronts.front import Exchange, new_id, whole_answer
from argoproxy.fronts.responses import compact
from argoproxy.fronts.responses.request import included, summary_asked
from argoproxy.fronts.responses.response import response_object, status_of, usage_to_responses
from argoproxy.fronts.responses.tools import ChatTools, output_item_id


NO_TOOLS = ChatTools()  # a request without tools: every call is a plain function call


def sealed_reasoning(item: dict[str, Any], text: str, ex: Exchange) -> dict[str, Any]:
    """A reasoning item with its `encrypted_content` when the request included reasoning.encrypted_content: the
    reasoning sealed by the proxy (compact.Seal), which a stateless client sends back whole."""
    if "reasoning.encrypted_content" in included(ex.request):
        item["encrypted_content"] = compact.SEAL.seal("reasoning", text)
    return item


def message_output(text: str, status: str = "completed", item_id: str | None = None,
                   refusal: str | None = None, logprobs: list[Any] | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or refusal is None:
        content.append(output_text(text, logprobs))
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": item_id or new_id("msg_"), "status": status, "role": "assistant",
            "content": content}


def output_text(text: str, logprobs: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def logprobs_of(choice: dict[str, Any]) -> list[Any]:
    """A chat choice's token logprobs (`logprobs.content`): the same entries Responses carries (token, logprob,
    bytes, top_logprobs)."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return content if isinstance(content, list) else []


def reasoning_output(text: str, item_id: str | None = None, summary: bool = False) -> dict[str, Any]:
    """A reasoning item: the text as its summary (the client set reasoning.summary), else as its content."""
    if summary:
        return {"type": "reasoning", "id": item_id or new_id("rs_"), "summary": [summary_text(text)],
                "status": "completed"}
    return {"type": "reasoning", "id": item_id or new_id("rs_"), "summary": [],
            "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}


def summary_text(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def function_output(call: dict[str, Any], tools: ChatTools | None = None, resp_id: str | None = None) -> dict[str, Any]:
    """A whole chat tool call as its output item (function_call, or custom_tool_call for a custom tool)."""
    function = call.get("function") or {}
    return (tools or NO_TOOLS).output_item(function.get("name") or "", call.get("id") or new_id("call_"),
                                           function.get("arguments") or "", resp_id=resp_id)


def response_id_of(ex: Exchange) -> str:
    """The response's id: the store's (a stored response), else one of the door's own."""
    return (ex.state or {}).get("id") or new_id("resp_")


def chat_to_response(completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """A whole chat.completion as a `response` object."""
    answer = whole_answer(completion, ex)
    status, incomplete = status_of(answer.choice.get("finish_reason"))
    resp_id = response_id_of(ex)
    output = [sealed_reasoning(reasoning_output(answer.reasoning, output_item_id("rs_", resp_id),
                                                summary=summary_asked(ex.request) is not None), answer.reasoning, ex)
              ] if answer.reasoning else []
    if answer.text or answer.refusal is not None or not answer.calls:
        output.append(message_output(answer.text, item_id=output_item_id("msg_", resp_id), refusal=answer.refusal,
                                     logprobs=logprobs_of(answer.choice)))
    output.extend(function_output(call, ex.tools, resp_id) for call in answer.calls)
    if status != "completed":  # the last item is the one a token limit cut short, as a stream marks it
        output[-1] = {**output[-1], "status": "incomplete"}
    return response_object(ex, resp_id, status, output, usage_to_responses(ex.usage), incomplete)
