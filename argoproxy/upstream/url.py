"""The URL of an upstream request: a configured base URL plus a path, with the base's own query kept.

A base URL may carry a query (`https://host/v1/?api-version=2024-06-01`, `...?api_key=KEY` for a gateway that
takes its key there). The query belongs to the upstream, not to the path: the path is joined before it and
the client's query is merged after it, so `/v1/chat/completions?x=1` becomes
`https://host/v1/chat/completions?api_key=KEY&x=1`. Where both name a parameter, the base's value wins (the
client's is dropped): a client cannot replace the operator's key or version. Any credential in the query is
a configured secret (argoproxy/redaction.py, `url_credentials`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

_SEPARATORS = re.compile(r"[&;]")


def split_query(url: str) -> tuple[str, str]:
    """(URL without its query, the query without '?'); a fragment is not part of an upstream URL."""
    url = url.split("#", 1)[0]
    head, _, query = url.partition("?")
    return head, query


def join_url(base: str, path: str, query: str = "") -> str:
    """base + path, never doubling a /v1 the base already ends with; the base's query, then the client's."""
    head, own = split_query(base) if "?" in base else (base, "")
    if head.endswith("/v1/") and (path == "v1" or path.startswith("v1/")):
        path = path[3:]
    merged = merge_queries(own, query)
    return f"{head}{path}?{merged}" if merged else head + path


def merge_queries(own: str, client: str) -> str:
    """The base URL's query followed by the client's, without the client's parameters the base sets."""
    if not own or not client:
        return own or client
    taken = {param_name(field) for field in _SEPARATORS.split(own) if field}
    kept = [field for field in _SEPARATORS.split(client) if field and param_name(field) not in taken]
    return "&".join([own, *kept])


def param_name(field: str) -> str:
    """A query parameter's name as lenient servers compare it (decoded, case-folded, no `[]` suffix)."""
    return field_name(unquote_plus(field.partition("=")[0]))


def field_name(name: str) -> str:
    """A parameter or form field name as lenient servers compare it: case-folded, trimmed, no `[...]` suffix."""
    name = name.strip().casefold()
    return name.split("[", 1)[0].rstrip() if "[" in name else name
