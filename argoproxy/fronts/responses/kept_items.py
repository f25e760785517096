"""The Responses door's items as stored: the fields of a request only the store reads, a request's own `input` as
items with ids (each ending with its response's digits, so an item_reference finds it), and the request the
stateless door is handed."""

from __future__ import annotations

from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.fronts.responses.tools import output_item_id
from argoproxy.state import chain

# Fields of a request only the store reads: the stateless door never sees them.
STATE_FIELDS = frozenset(("previous_response_id", "conversation", "store", "background", "truncation"))
# Item id prefixes by item type, as OpenAI writes them.
ID_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_",
             "custom_tool_call": "ctc_", "custom_tool_call_output": "ctco_", "compaction": "cmp_"}


def stateless_body(body: dict[str, Any], items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The request as the stateless door takes it: the whole history in `input` (None: its own input as it
    came), the store's fields gone."""
    return chain.stateless_body(body, items, STATE_FIELDS)


def too_long(limit: int) -> ProxyError:
    return ProxyError(400, f"The stored history before this request holds more than {limit} bytes (MAX_BODY_BYTES, "
                      "the most a request may send); send `truncation: \"auto\"` to leave out its oldest turns.",
                      param="input", code="context_length_exceeded")


def own_input(body: dict[str, Any], resp_id: str | None = None) -> list[dict[str, Any]]:
    value = body.get("input")
    if value is None:
        return []
    if not isinstance(value, (str, list)):
        raise ProxyError(400, "`input` must be a string or a list of items.", param="input")
    return input_items(value, resp_id)


def with_id(item: dict[str, Any], resp_id: str | None = None) -> dict[str, Any]:
    """An input item as stored and listed: its type written, an id given when it has none (ending with its
    response's digits, `resp_id`: an item_reference finds it by them), a message's text content as a part (as
    OpenAI lists input items)."""
    kind = item.get("type") or ("message" if "role" in item else None)
    if not isinstance(kind, str):
        return item  # not an item (a `type` that is no string): left for the door to refuse, naming it
    item = dict(item)
    item["type"] = kind
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": content}] if part == "input_text" else \
                [{"type": part, "text": content, "annotations": []}]
        item.setdefault("status", "completed")
    if kind != "item_reference" and (not isinstance(item.get("id"), str) or not item["id"]):  # its id is the client's
        item["id"] = output_item_id(ID_PREFIX.get(kind, "item_"), resp_id)
    return item


def input_items(value: Any, resp_id: str | None = None) -> list[dict[str, Any]]:
    """A request's `input` as items with ids (a string is one user message)."""
    if isinstance(value, str):  # with_id's message, written out (most requests)
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}],
                 "status": "completed", "id": output_item_id("msg_", resp_id)}]
    if isinstance(value, list):
        return [with_id(item, resp_id) if isinstance(item, dict) else item for item in value]
    return []


