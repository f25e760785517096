"""What a tool, a prompt and a resource are called at `/mcp`, where every server's appear as one server's:
`server__tool` (at most 64 characters: the longest tool name every model API takes; a longer one keeps its
first characters and ends with a stable hash of the whole), and a resource's URI under its server's name
(`mcp-proxy://server/<the server's URI as it wrote it>`, so URI templates stay templates). Each is read back to (server, its own name) here."""

from __future__ import annotations

import hashlib
from typing import Iterable

from argoproxy.config.mcp_servers import SEPARATOR

MAX_NAME = 64
HASH_CHARS = 8
URI_SCHEME = "mcp-proxy://"


def prefixed(server: str, name: str) -> str:
    """`server__name`, shortened with a hash of the whole when longer than MAX_NAME."""
    full = f"{server}{SEPARATOR}{name}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{full[:MAX_NAME - HASH_CHARS - 1]}_{digest}"


class Names:
    """One listing's names: prefixed -> (server, own name), and the collisions refused (two long names whose
    first characters and hash meet: the second is left out rather than one call reaching the wrong tool)."""

    def __init__(self) -> None:
        self.owners: dict[str, tuple[str, str]] = {}
        self.refused: list[tuple[str, str]] = []

    def add(self, server: str, name: str) -> str | None:
        shown = prefixed(server, name)
        owner = self.owners.get(shown)
        if owner is not None and owner != (server, name):
            self.refused.append((server, name))
            return None
        self.owners[shown] = (server, name)
        return shown


def split_name(shown: str, servers: Iterable[str]) -> tuple[str, str] | None:
    """(server, own name) as the name reads, else None. A name of MAX_NAME characters may be a shortened one: the
    caller finds its owner in the server's listing (Names) before taking this reading."""
    server, sep, name = shown.partition(SEPARATOR)
    if not sep or not name or server not in set(servers):
        return None
    return server, name


def proxied_uri(server: str, uri: str) -> str:
    return f"{URI_SCHEME}{server}/{uri}"


def server_uri(uri: str) -> tuple[str, str] | None:
    """(server, the server's own URI) of a URI proxied_uri wrote; None for any other."""
    if not uri.startswith(URI_SCHEME):
        return None
    server, sep, rest = uri[len(URI_SCHEME):].partition("/")
    if not sep or not server or not rest:
        return None
    return server, rest
