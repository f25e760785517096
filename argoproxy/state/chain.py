"""A request's history rebuilt from the store: the items of a chain of stored objects (each one's own input items,
then its output items, oldest first) or of a conversation, with references to stored items replaced by the items
they name. What the chat upstream gets is that history, then the new input. The items are the door's own: where
a turn starts and what a reference is, the door says (its DoorShapes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.state.records import MAX_CHAIN, StoredConversation, StoredResponse

CHAIN_READ = 64  # responses of a chain read at once


@dataclass
class History:
    items: list[dict[str, Any]] = field(default_factory=list)  # what comes before the new input
    new: list[dict[str, Any]] = field(default_factory=list)  # the request's own input items, with ids
    chain: list[str] = field(default_factory=list)  # previous responses' ids, oldest first (the new one's chain)
    conversation: StoredConversation | None = None
    references: bool = False  # the new input held references to stored items (replaced in `new`)

    def sent(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """What the door is sent as `input`: `items` (the history kept) and the new items; None where that is the
        request's own `input` as it came (no history, nothing replaced), which the door reads as fast."""
        return items + self.new if items or self.references else None


def not_found(kind: str, ident: str, param: str | None = None, status: int = 404,
              code: str = "not_found") -> ProxyError:
    """The words for an id no store holds (or another key's: the same words, so ids cannot be probed); `kind`
    names what was looked for ("Response", "Previous response"), `code` the door's code for it."""
    shown = ident if len(ident) <= 200 else ident[:200] + "..."  # an id is the client's: any length
    return ProxyError(status, f"{kind} with id '{shown}' not found.", type="invalid_request_error", param=param,
                      code=code)


def chain_items(records: list[StoredResponse],
                output: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A chain's items, oldest first: each stored object's own input items, then its output (as `output` reads
    the door's object)."""
    items: list[dict[str, Any]] = []
    for rec in records:
        items.extend(rec.input)
        items.extend(output(rec.response))
    return items


def previous_chain(prev: StoredResponse, load: Callable[[list[str]], dict[str, StoredResponse]],
                   limit: int = 1 << 62) -> tuple[list[StoredResponse], bool]:
    """The stored responses of a chain ending at `prev`, oldest first, read newest first (each response keeps its
    ancestors' ids: a read per 64 of them) up to `limit` bytes; and whether that is the whole chain. Deleted or
    expired ones are left out."""
    records, total = [prev], prev.stored_size
    older = prev.chain[::-1]
    for start in range(0, len(older), CHAIN_READ):
        ids = older[start:start + CHAIN_READ]
        found = load(ids)
        for i in ids:
            rec = found.get(i)
            if rec is None:
                continue
            total += rec.stored_size
            if total > limit:
                return records[::-1], False
            records.append(rec)
    return records[::-1], True


def whole_turns(items: list[dict[str, Any]], starts_turn: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """History cut at its oldest end (the bytes bound): what comes before its first turn's start (a user's
    input, as `starts_turn` says) goes too, so a tool output never arrives without its call."""
    groups = turns(items, starts_turn)
    if groups and not starts_turn(groups[0][0]):
        groups = groups[1:]
    return [item for group in groups for item in group]


def resolved_references(items: list[dict[str, Any]], known: list[dict[str, Any]],
                        lookup: Callable[[str], dict[str, Any] | None], is_reference: Callable[[Any], bool],
                        where: str = "input") -> list[dict[str, Any]]:
    """References to stored items (as `is_reference` tells them) replaced by the items they name: in the history
    first, then the store. `where`: the request's member that lists them (errors name `{where}[n].id`)."""
    by_id = {i.get("id"): i for i in known if isinstance(i, dict)}
    out = []
    for n, item in enumerate(items):
        if is_reference(item):
            ref = item.get("id")
            if not isinstance(ref, str) or not ref:
                raise ProxyError(400, "`id` must be a non-empty string.", param=f"{where}[{n}].id",
                                 code="missing_required_parameter")
            found = by_id.get(ref) or lookup(ref)
            if found is None:
                raise not_found("Item", ref, f"{where}[{n}].id", 400)
            out.append(found)
        else:
            out.append(item)
    return out


def new_chain(prev: StoredResponse | None) -> list[str]:
    if prev is None:
        return []
    return (prev.chain + [prev.id])[-MAX_CHAIN:]


def turns(items: list[dict[str, Any]], starts_turn: Callable[[dict[str, Any]], bool]) -> list[list[dict[str, Any]]]:
    """History items cut into turns, each starting where `starts_turn` says (a user's input: truncation drops
    whole turns, so a tool call is never separated from its output)."""
    groups: list[list[dict[str, Any]]] = []
    for item in items:
        if not groups or starts_turn(item):
            groups.append([])
        groups[-1].append(item)
    return groups


def without_oldest_turn(items: list[dict[str, Any]],
                        starts_turn: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]] | None:
    """The history with its oldest turn dropped (a door's automatic truncation); None when nothing is left."""
    groups = turns(items, starts_turn)
    if not groups:
        return None
    return [item for group in groups[1:] for item in group]


def stateless_body(body: dict[str, Any], items: list[dict[str, Any]] | None, fields: frozenset[str],
                   member: str = "input") -> dict[str, Any]:
    """The request as the stateless door takes it: the whole history in `member` (None: its own input as it
    came), the store's `fields` gone."""
    if items is None and not fields.intersection(body):  # nothing to take out or put in: as it came
        return body
    out = {k: v for k, v in body.items() if k not in fields}
    if items is not None:
        out[member] = items
    return out
