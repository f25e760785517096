"""What a door that keeps state hands this package of its own API (DoorShapes): the prefix of its objects' ids,
its items' turns and references, its stream's terminal events, a failed object and the event that says so, its
events as they go on the wire. The package reads nothing else of a door and names none: the Responses door's are
fronts/responses/kept_shapes.py, the Interactions door's fronts/interactions/kept.py."""

from __future__ import annotations

from typing import Any, Protocol


class DoorShapes(Protocol):
    #: the door's stored objects' ids start so ("resp_"); a door reads only its own (another's is not found)
    prefix: str

    def starts_turn(self, item: dict[str, Any]) -> bool:
        """Does this history item start a turn (a user's input)? Truncation drops whole turns."""

    def is_reference(self, item: Any) -> bool:
        """Is this input item a reference to a stored item (replaced by the item it names)?"""

    def terminal(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The final object a stream event carries when it ends the stream; None for any other event."""

    def in_progress(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The object an event carries that says the answer is under way (kept as a background run's progress);
        None for any other event."""

    def sequence(self, event: dict[str, Any]) -> int:
        """A kept event's place in its stream (0, 1, ...)."""

    def failed(self, base: dict[str, Any], code: str, message: str) -> dict[str, Any]:
        """The door's object `base` (the stored one) as failed with this error."""

    def failed_event(self, after: int, obj: dict[str, Any]) -> dict[str, Any]:
        """The event that ends a followed stream whose run failed without its own terminal event."""

    def encode_event(self, event: dict[str, Any]) -> bytes:
        """One event as the door's stream writes it."""

    def output(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """The items a stored object answered with (its history's part after its input)."""
