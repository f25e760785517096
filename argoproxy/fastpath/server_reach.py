"""What the proxy needs of Gunicorn below its public API in both transport modes, fenced here with the fast
path's other reaches so that one folder holds every one of them (argoproxy/private_names.py lists each):

- `client_socket`: the client's socket, which Gunicorn puts in the environ as `gunicorn.socket` (PEP 3333 has
  no such key). A request body's read deadline is set on it (edge/client_input.py), and a kept-alive stream
  watches it for the client leaving (edge/request_ids.py, edge/keepalive.py).
- `limit_chunk_sizes`: Gunicorn's chunked-body reader refuses a chunk size over 2^64 - 1, the largest a 64-bit
  HTTP parser (llhttp, nginx...) holds, so a front proxy and Gunicorn never read the same body two ways.
- `parsed_target`: the request target of a head Gunicorn refused (too many or too large headers, a request line
  too long, bad framing), read from the parser's frames in the error's traceback, so that its answer comes in
  the shape of the door the client called (serve/gunicorn_errors.py). Gunicorn hands its error writer none.
- `write_errors_with`: Gunicorn's own error pages (a bad request line, headers too large...) written as the
  bytes a function gives instead of HTML. Every worker class's handle_error writes them through
  `gunicorn.util.write_error`, which is replaced: Gunicorn offers no hook for them.

Light: the Gunicorn master imports edge/request_ids.py before gevent patches a worker, so this imports nothing
at module level."""

from __future__ import annotations

from typing import Any, Callable

MAX_CHUNK_SIZE = 2**64 - 1
MAX_TARGET = 8192  # characters of a refused request's target kept (Gunicorn reads request lines of 8190 at most)


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


def parsed_target(exc: BaseException) -> str | None:
    """The request target Gunicorn's parser had read when it raised `exc`, as a str (latin-1, as Gunicorn decodes
    it), or None. Both parsers (Python and gunicorn_h1c) raise from inside the Request being built: its `uri` is
    set once the request line is parsed; until then (the C parser reads the whole head first, and a request line
    too long has no end), the bytes `Request.parse` has read are in its local `buf`, which begins with the
    request line. Only frames of the traceback are read, on the error's way (tests/unit/test_gunicorn_errors.py
    checks every refusal, both parsers)."""
    try:
        from gunicorn.http.message import Request
    except ImportError:  # pragma: no cover - not served by Gunicorn
        return None
    tb, head = exc.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        me = frame.f_locals.get("self")
        if isinstance(me, Request):
            if me.uri:
                return str(me.uri[:MAX_TARGET])
            if frame.f_code is Request.parse.__code__:
                head = frame.f_locals.get("buf")
        tb = tb.tb_next
    return _target_in(bytes(head[:MAX_TARGET + 64])) if isinstance(head, (bytes, bytearray)) else None


def _target_in(head: bytes) -> str | None:
    """The target in a request line (METHOD SP TARGET SP VERSION), cut where the bytes end."""
    if head.startswith(b"\r\n"):  # RFC 9112 2.2: one empty line before the request line is read past
        head = head[2:]
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    return parts[1][:MAX_TARGET].decode("latin-1") if len(parts) > 1 and parts[1] else None


def write_errors_with(answer: Callable[[int, str, str], bytes]) -> None:
    """Gunicorn's own errors answered with `answer(status, reason, Gunicorn's description)`'s bytes, written as
    Gunicorn writes its page (non-blocking), in every worker forked after this runs (idempotent)."""
    from gunicorn import util

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        util.write_nonblock(sock, answer(status_int, reason, mesg))

    write_error.answer = answer  # type: ignore[attr-defined]  # what error_writer_of reads
    util.write_error = write_error


def error_writer() -> Callable[[int, str, str], bytes] | None:
    """The function Gunicorn's errors are answered with, None while they are Gunicorn's own pages."""
    from gunicorn import util
    answer: Callable[[int, str, str], bytes] | None = getattr(util.write_error, "answer", None)
    return answer
