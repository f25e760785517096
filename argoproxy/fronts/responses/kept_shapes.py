"""What the Responses door tells the state package of its API (state/shapes.py's DoorShapes): `resp_` ids, a turn
starting at a user message, item_reference items, the stream's terminal and progress events, a failed response and
the `response.failed` event, its events as SSE."""

from __future__ import annotations

from typing import Any, Callable

from argoproxy.fronts.responses.response import response_error
from argoproxy.fronts.responses.shapes import is_item_reference

TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))


class ResponsesShapes:
    prefix = "resp_"

    def __init__(self, encode_event: Callable[[dict[str, Any]], bytes]) -> None:
        self.encode_event = encode_event  # the door's own (named SSE events)

    @staticmethod
    def starts_turn(item: dict[str, Any]) -> bool:
        return item.get("type") == "message" and item.get("role") == "user"

    @staticmethod
    def is_reference(item: Any) -> bool:
        return is_item_reference(item)

    @staticmethod
    def terminal(event: dict[str, Any]) -> dict[str, Any] | None:
        if event.get("type") in TERMINAL:
            final: dict[str, Any] = event["response"]
            return final
        return None

    @staticmethod
    def in_progress(event: dict[str, Any]) -> dict[str, Any] | None:
        return event.get("response") if event.get("type") == "response.in_progress" else None

    @staticmethod
    def sequence(event: dict[str, Any]) -> int:
        number: int = event["sequence_number"]
        return number

    @staticmethod
    def failed(base: dict[str, Any], code: str, message: str) -> dict[str, Any]:
        base = base if "object" in base else {**base, "object": "response"}
        return {**base, "status": "failed", "error": response_error(code, message)}

    @staticmethod
    def failed_event(after: int, obj: dict[str, Any]) -> dict[str, Any]:
        return {"type": "response.failed", "sequence_number": after + 1, "response": obj}

    @staticmethod
    def output(obj: dict[str, Any]) -> list[dict[str, Any]]:
        out = obj.get("output")
        return out if isinstance(out, list) else []
