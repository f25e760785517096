"""What the proxy needs of Gunicorn below its public API in both transport modes, fenced here with the fast
path's other reaches so that one folder holds every one of them (argoproxy/private_names.py lists each):

- `client_socket`: the client's socket, which Gunicorn puts in the environ as `gunicorn.socket` (PEP 3333 has
  no such key). A request body's read deadline is set on it (edge/client_input.py), and a kept-alive stream
  watches it for the client leaving (edge/request_ids.py, edge/keepalive.py).
- `limit_chunk_sizes`: Gunicorn's chunked-body reader refuses a chunk size over 2^64 - 1, the largest a 64-bit
  HTTP parser (llhttp, nginx...) holds, so a front proxy and Gunicorn never read the same body two ways.

Light: the Gunicorn master imports edge/request_ids.py before gevent patches a worker, so this imports nothing
at module level."""

from __future__ import annotations

from typing import Any

MAX_CHUNK_SIZE = 2**64 - 1


def client_socket(environ: dict[str, Any]) -> Any:
    """The client's socket under Gunicorn, or None under another server."""
    return environ.get("gunicorn.socket")


def limit_chunk_sizes() -> None:
    """Make Gunicorn's chunked-body reader refuse a chunk size over MAX_CHUNK_SIZE (idempotent). Every worker
    class and both of Gunicorn's request parsers read chunked bodies through `ChunkedReader.parse_chunk_size`
    (checked in tests/unit/test_gunicorn_errors.py); its InvalidChunkSize becomes the 400 of
    edge.client_input.DeadlineBody."""
    try:
        from gunicorn.http.body import ChunkedReader
        from gunicorn.http.errors import InvalidChunkSize
    except ImportError:  # pragma: no cover - not served by Gunicorn
        return
    parse = ChunkedReader.parse_chunk_size
    if getattr(parse, "limited", False):
        return

    def parse_chunk_size(self: Any, unreader: Any, data: bytes | None = None) -> tuple[int, bytes | None]:
        size, rest = parse(self, unreader, data)
        if size > MAX_CHUNK_SIZE:
            raise InvalidChunkSize(b"over 2^64 - 1")
        return size, rest

    parse_chunk_size.limited = True  # type: ignore[attr-defined]
    ChunkedReader.parse_chunk_size = parse_chunk_size
