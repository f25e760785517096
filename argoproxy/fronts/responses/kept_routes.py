"""The Responses door's state routes, in OpenAI's shapes: a stored response (GET, DELETE), its input items, its cancel; the
conversations and their items. Another key's object is a 404 in the same words as an unknown id (the admin key
too, unless RESPONSES_ADMIN_READS)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from argoproxy.edge.classify import Route
from argoproxy.edge.http_objects import Answer
from argoproxy.edge.paths import encode_path
from argoproxy.edge.request_models import query_values
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.fronts.responses.kept_items import input_items
from argoproxy.fronts.responses.shapes import is_item_reference
from argoproxy.ids import new_id
from argoproxy.state.background import follow_answer
from argoproxy.state.records import StoredConversation, page

if TYPE_CHECKING:
    from argoproxy.pipeline.call import Call

JSON = "application/json"
MAX_ITEMS_ADDED = 20  # items one POST /v1/conversations(/{id}/items) may add, as OpenAI's API allows


# The path's fixed words, with '*' for an id, -> (kind, methods); matched with and without the leading v1/.
STATE_ROUTES = {
    ("responses", "*"): ("response", {"GET", "DELETE"}),
    ("responses", "*", "input_items"): ("response_input_items", {"GET"}),
    ("responses", "*", "cancel"): ("response_cancel", {"POST"}),
    ("conversations",): ("conversations", {"POST"}),
    ("conversations", "*"): ("conversation", {"GET", "POST", "DELETE"}),
    ("conversations", "*", "items"): ("conversation_items", {"GET", "POST"}),
    ("conversations", "*", "items", "*"): ("conversation_item", {"GET", "DELETE"}),
}


def state_route(parts: tuple[str, ...]) -> Route | None:
    """The route table's claim on the stored-response and conversation paths (ids keep their case; errors in
    the Responses door's shape)."""
    key = tuple(p.lower() for p in parts)
    start = 1 if key[:1] == ("v1",) else 0
    shape = tuple("*" if i % 2 else k for i, k in enumerate(key[start:]))
    found = STATE_ROUTES.get(shape)
    if found is None or any(not p for p in parts[start:]):
        return None
    kind, methods = found
    spelling = ("v1",) + tuple(p if i % 2 else p.lower() for i, p in enumerate(parts[start:]))
    return Route(kind, "state", encode_path(spelling), frozenset(methods), front="responses")


def json_answer(obj: Any) -> Answer:
    return Answer(dumps(obj), 200, content_type=JSON)


class StateRoutes:
    """`kept`: the door's KeptResponses (kept.py, which makes this: named, not imported, to keep no circle)."""

    def __init__(self, kept: Any) -> None:
        self.kept = kept
        self.state = kept.state

    def answer(self, call: Call, kind: str, ids: list[str], query: str, body: dict[str, Any] | None,
               admin: bool) -> Answer:
        """One state route (`ids`: the path's ids in order); `admin`: the admin key may reach others' objects."""
        owner = self.state.owner(call)
        admin = admin and self.state.settings.responses_admin_reads
        method = call.client.method
        if kind.startswith("response"):
            return self.response_route(kind, method, ids[0], query, owner, admin)
        return self.conversation_route(kind, method, ids, query, body or {}, owner, admin)

    # ---------------------------------------------------------------- /v1/responses/{id}
    def response_route(self, kind: str, method: str, resp_id: str, query: str, owner: str, admin: bool) -> Answer:
        state = self.state
        rec = self.kept.owned_response(owner, resp_id, admin=admin)
        if kind == "response_input_items":
            after, limit, order = paging(query)
            return json_answer(page(rec.input, after, limit, order))
        if kind == "response_cancel":
            if not rec.background:
                raise ProxyError(400, "Only responses created with `background: true` can be cancelled.",
                                 param=None, code="invalid_request")
            if rec.status in ("queued", "in_progress"):  # read as cancelled from now on (records.as_it_stands)
                state.io(state.store.set_cancelled, resp_id)
                rec.response = {**rec.response, "status": "cancelled"}
            return json_answer(rec.response)
        if method == "DELETE":  # a running background one stops too: its run sees it gone, and writes nothing back
            state.delete(resp_id)
            return json_answer({"id": resp_id, "object": "response.deleted", "deleted": True})
        if one(query, "stream") == "true":
            if not rec.background:
                raise ProxyError(400, "Only a response created with `background: true` and `stream: true` can be "
                                 "streamed again.", param="stream", code="invalid_request")
            after = one(query, "starting_after")
            try:
                start = int(after) if after is not None else -1
            except ValueError:
                raise ProxyError(400, "`starting_after` must be an integer.", param="starting_after",
                                 code="invalid_value") from None
            return follow_answer(state, self.kept.shapes, resp_id, start)
        return json_answer(rec.response)

    # ---------------------------------------------------------------- /v1/conversations...
    def added_items(self, body: dict[str, Any], owner: str, required: bool) -> list[dict[str, Any]]:
        """The items a request adds to a conversation, an item reference replaced by the item it names (one of
        the key's stored items): a conversation holds items, which a later request sends as its history."""
        return input_items(self.kept.resolved(owner, checked_items(body, required), [], "items"))

    def conversation_route(self, kind: str, method: str, ids: list[str], query: str, body: dict[str, Any],
                           owner: str, admin: bool) -> Answer:
        state = self.state
        if kind == "conversations":  # POST /v1/conversations
            conv = StoredConversation(new_id("conv_"), owner, time.time(), metadata_of(body))
            items = self.added_items(body, owner, required=False)
            state.io(state.store.put_conversation, conv, items)
            return json_answer(conv.as_object())
        conv = self.kept.owned_conversation(owner, ids[0], admin=admin)
        if kind == "conversation":
            if method == "DELETE":
                state.io(state.store.delete_conversation, conv.id)
                return json_answer({"id": conv.id, "object": "conversation.deleted", "deleted": True})
            if method == "POST":
                if "metadata" not in body:
                    raise ProxyError(400, "Missing required parameter: 'metadata'.", param="metadata",
                                     code="missing_required_parameter")
                conv.metadata = metadata_of(body)
                state.io(state.store.put_conversation, conv, [])
            return json_answer(conv.as_object())
        if kind == "conversation_items":
            if method == "POST":
                items = self.added_items(body, owner, required=True)
                state.append(conv, items)
                return json_answer({"object": "list", "data": items, "first_id": items[0]["id"],
                                    "last_id": items[-1]["id"], "has_more": False})
            after, limit, order = paging(query)
            return json_answer(page(state.io(state.store.items, conv.id), after, limit, order))
        item_id = ids[1]  # conversation_item
        item = next((i for i in state.io(state.store.items, conv.id) if i.get("id") == item_id), None)
        if item is None:
            raise ProxyError(404, f"Item with id '{item_id}' not found.", type="invalid_request_error",
                             code="not_found")
        if method == "DELETE":
            state.io(state.store.delete_item, conv.id, item_id)
            return json_answer(conv.as_object())
        return json_answer(item)


def one(query: str, name: str) -> str | None:
    values = query_values(query, name) if query else []
    return values[-1] if values else None


def paging(query: str) -> tuple[str | None, int, str]:
    """after, limit (1-100, default 20) and order (asc or desc, default desc), as OpenAI's list routes take."""
    limit_text, order = one(query, "limit"), one(query, "order") or "desc"
    try:
        limit = int(limit_text) if limit_text is not None else 20
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ProxyError(400, "`limit` must be an integer between 1 and 100.", param="limit", code="invalid_value")
    if order not in ("asc", "desc"):
        raise ProxyError(400, "`order` must be asc or desc.", param="order", code="invalid_value")
    return one(query, "after"), limit, order


def metadata_of(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in metadata.items()):
        raise ProxyError(400, "`metadata` must be an object of at most 16 string values (keys up to 64 characters, "
                         "values up to 512).", param="metadata", code="invalid_value")
    return metadata


def checked_items(body: dict[str, Any], required: bool) -> list[dict[str, Any]]:
    """The items a request adds to a conversation, each checked, item references as they came."""
    items = body.get("items")
    if items is None and not required:
        return []
    if not isinstance(items, list) or (required and not items):
        raise ProxyError(400, "`items` must be a non-empty list of items.", param="items", code="invalid_value")
    if len(items) > MAX_ITEMS_ADDED:
        raise ProxyError(400, f"At most {MAX_ITEMS_ADDED} items can be added at once.", param="items",
                         code="invalid_value")
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ProxyError(400, "Each item must be an object.", param=f"items[{n}]", code="invalid_type")
        kind = item.get("type") or ("message" if "role" in item else None)
        if not isinstance(kind, str) and not is_item_reference(item):
            raise ProxyError(400, "Each item needs a `type` (a string), or a `role` for a message.",
                             param=f"items[{n}].type", code="invalid_type")
    return items
