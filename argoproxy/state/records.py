"""What is stored: a door's answer object (a response, an interaction: the object as the client got it, and the
input items of its own request), a conversation (its object and its items, in order); who owns them; ids; the size
each counts for. The objects and items are the door's own shapes: nothing here reads inside them but their
`status` and `output` (the door's DoorShapes say where an object keeps its output)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from argoproxy.errors import ProxyError
from argoproxy.ids import random_hex
from argoproxy.jsonfast import dumps

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Request

ANONYMOUS = "anonymous"  # the owner of everything stored while auth is off
MAX_CHAIN = 4096  # responses a previous_response_id chain keeps (the oldest are dropped past it)


def owner_of(req: Request | None, auth_on: bool) -> str:
    """The key a stored object belongs to: a team key (by its digest, so a new key of a revoked one's name sees
    nothing of it), the client key auth accepted (its SHA-256; never a key it did not accept), or ANONYMOUS when
    auth is off."""
    if not auth_on or req is None:
        return ANONYMOUS
    if req.team_key is not None:
        return "team:" + req.team_key.digest[:32]
    if req.presented_keys:
        return "key:" + hashlib.sha256(req.presented_keys[0].encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return ANONYMOUS


def response_id(prefix: str) -> str:
    """A stored object's id: the door's prefix ("resp_"), its second (8 hex digits), then 16 random ones; a reader
    that misses a fresh one knows it may still be on its way to the file (write_behind.py)."""
    return f"{prefix}{int(time.time()):08x}{random_hex(8)}"


def response_of(item_id: str, prefix: str) -> str | None:
    """The id of the stored object (of the door whose ids start with `prefix`) whose digits end an item's id, as
    a door's item ids end with their object's last 24 digits, if the item's id has that shape."""
    head, _, digits = item_id.partition("_")
    if not head or len(digits) != 32 or not all(c in "0123456789abcdef" for c in digits):
        return None
    return prefix + digits[8:]


def made_within(resp_id: str, seconds: float) -> bool:
    """Was this stored object's id made in the last `seconds` (by response_id, whatever its door's prefix)?"""
    _, sep, digits = resp_id.partition("_")
    if not sep or len(digits) != 24:
        return False
    try:
        made = int(digits[:8], 16)
    except ValueError:
        return False
    return 0 <= time.time() - made < seconds + 1


@dataclass
class StoredResponse:
    id: str
    owner: str
    created: float
    response: dict[str, Any]  # the response object as returned (its final state; a background run's latest)
    input: list[dict[str, Any]]  # the input items of its own request (ids added), item_reference resolved
    chain: list[str] = field(default_factory=list)  # the previous responses' ids, oldest first
    background: bool = False
    cancelled: bool = False  # a cancel was asked (a background run stops at its next step)
    heartbeat: float = 0.0  # a background run's last sign of life (its events are kept apart: add_events)
    stored_size: int = 0  # bytes of its stored JSON, as read (not stored itself)
    # its response object's JSON when it was made already (a whole answer, encoded once for its client too)
    response_json: bytes | None = None

    def size(self) -> int:
        """Bytes it counts for against the bounds: its JSON as stored."""
        return len(dumps(self.as_json()))

    def as_json(self) -> dict[str, Any]:
        return {**self.head(), "response": self.response}

    def head(self) -> dict[str, Any]:
        """What is stored but its response object (encoded writes that object's JSON after it)."""
        return {"id": self.id, "owner": self.owner, "created": self.created, "input": self.input,
                "chain": self.chain, "background": self.background, "cancelled": self.cancelled,
                "heartbeat": self.heartbeat}

    @classmethod
    def of(cls, data: dict[str, Any]) -> "StoredResponse":
        return cls(data["id"], data["owner"], data["created"], data["response"], data["input"], data["chain"],
                   data["background"], data["cancelled"], data["heartbeat"])

    @property
    def status(self) -> str:
        return self.response.get("status") or "completed"


@dataclass
class StoredConversation:
    id: str
    owner: str
    created: float
    metadata: dict[str, Any]

    def as_object(self) -> dict[str, Any]:
        return {"id": self.id, "object": "conversation", "created_at": int(self.created), "metadata": self.metadata}


STALE_SECONDS = 30.0  # a background run whose worker wrote nothing for this long has died with it


def as_it_stands(rec: StoredResponse) -> StoredResponse:
    """A background run as it stands, whatever its runner wrote last: one whose cancel was asked reads
    `cancelled` at once (its runner, on whichever worker or replica, stops within a moment); one whose worker
    stopped (restarted, killed) reads as failed, not in progress for ever."""
    if not (rec.background and rec.status in ("queued", "in_progress")):
        return rec
    if rec.cancelled:
        rec.response = {**rec.response, "status": "cancelled"}
    elif time.time() - rec.heartbeat > STALE_SECONDS:
        rec.response = {**rec.response, "status": "failed",
                        "error": {"code": "server_error", "message": "The proxy worker running this background "
                                  "response stopped before it finished."}}
    return rec


class StoreFull(ProxyError):
    """Storing would pass a bound (per key or per instance): refused, never grown past it."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message, param="store", code="storage_limit_exceeded")


MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # one stored response's JSON: a chain's turn, not a bulk answer


def encoded(rec: StoredResponse) -> bytes:
    """A response's JSON as stored, refused (StoreFull) past MAX_RESPONSE_BYTES before the store copies it: an
    answer of tens of MB held three more copies in the worker while it was written."""
    if rec.response_json is None:
        data = dumps(rec.as_json())
    else:  # the response's own JSON spliced in, last (read back by name)
        data = b"".join((dumps(rec.head())[:-1], b',"response":', rec.response_json, b"}"))
    if len(data) > MAX_RESPONSE_BYTES:
        raise StoreFull(f"This response is {len(data)} bytes as stored, more than one stored response may be "
                        f"({MAX_RESPONSE_BYTES}); send `store: false` (with the conversation in `input`).")
    return data


def page(items: list[dict[str, Any]], after: str | None, limit: int, order: str) -> dict[str, Any]:
    """A cursor page of items in OpenAI's list shape (`after` an item id; `order` asc or desc)."""
    ordered = items if order == "asc" else items[::-1]
    start = 0
    if after:
        ids = [i.get("id") for i in ordered]
        start = ids.index(after) + 1 if after in ids else len(ordered)
    data = ordered[start:start + limit]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": start + limit < len(ordered)}
