"""Keyset paging: PAGE rows after a cursor (the last row's key on the page before), never an offset, so a page
costs the same however deep it is and a row added meanwhile is neither skipped nor seen twice."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, TypeVar
from urllib.parse import parse_qsl

from argoproxy.errors import ProxyError

T = TypeVar("T")
PAGE = 50
CURSOR_MAX = 200


def page(rows: Iterable[T], key: Callable[[T], str], cursor: str, descending: bool = False,
         limit: int = PAGE) -> tuple[list[T], str | None]:
    """The rows (in key order) after `cursor`, at most `limit`, and the cursor of the next page (None: the last)."""
    after = [r for r in rows if not cursor or (key(r) < cursor if descending else key(r) > cursor)]
    shown = after[:limit]
    return shown, key(shown[-1]) if len(after) > limit else None


def listed(rows: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"data": rows, "next": next_cursor}


def query_of(query: str, allowed: frozenset[str]) -> dict[str, str]:
    """The query's parameters (each once, each known), refused otherwise: a 400 naming the parameter."""
    found: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=20)
    except ValueError:
        raise ProxyError(400, "The query string cannot be read.", code="invalid_query") from None
    for name, value in pairs:
        if name not in allowed or name in found:
            raise ProxyError(400, f"Unknown or repeated query parameter `{name[:100]}`; this list takes "
                                  f"{', '.join(sorted(allowed)) or 'none'}.", param=name[:100], code="unknown_parameter")
        found[name] = value
    if len(found.get("cursor", "")) > CURSOR_MAX:
        raise ProxyError(400, "cursor: not one this list gave.", param="cursor", code="invalid_cursor")
    return found
