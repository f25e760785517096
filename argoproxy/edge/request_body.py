"""A client's JSON request body as an object, or a 400 in words saying what is wrong with it. Neutral ground:
the pipeline and providers' own routes (ARGO's raw /v1/chat) both parse bodies with it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from argoproxy.edge.body_members import MEMBERS_FROM, Members
from argoproxy.edge.byte_counts import brackets
from argoproxy.edge.json_scan import scan
from argoproxy.edge.msgspec_body import UNREAD, decoded, members_and_depth, read_body
from argoproxy.errors import ProxyError
from argoproxy.turns import turn

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Request

# Deepest nesting of arrays and objects a request may have (serde_json's default limit too). The proxy's own
# recursive steps (the journal's redaction, JSON encoding of answers that echo the request) failed at 480 and
# 950 levels, after the request had been sent; real requests (tool schemas included) stay under 40.
MAX_DEPTH = 128
# Most arrays and objects a request may hold. Parsing costs per container, not per byte (json.loads builds a
# Python object for each, and the duplicate-key check runs per object): 32 MB of `[{},{},...]` is 10 million
# of them and seconds of a worker's CPU, where 32 MB of text parses in 0.2 s. The largest real requests
# (an agent's long history with its tool schemas) hold a few tens of thousands.
MAX_CONTAINERS = 200_000
# Most values (and keys) a request may hold: parsing builds an object for each (msgspec about 50 ns, the json
# module twice that on the loaded test machine), in one piece of C code that lets no other request run, so
# this bounds how long /health can wait behind one body (about 0.05 s). A 31 MB body of 8 million strings
# `"["` took 0.4 s to parse alone. The largest real requests (an agent's long history with its tool schemas;
# embeddings of token arrays, which OpenAI caps at 300,000 tokens a request) hold a few hundred thousand.
MAX_VALUES = 1_000_000
SCAN_FROM = 64 * 1024  # shorter bodies hold fewer values and containers than the budgets: not counted first
TURN_FROM = 1024 * 1024  # bodies this long let other requests run between the steps of their checks


def read_api_body(req: "Request | None", max_bytes: int) -> tuple[bytes, Any, Members | None]:
    """An API request's body as it goes on (UTF-8: as_utf8), its JSON object and, for a long one, its top-level
    members as written (parse_with_members); a 400 or 413 in words when it is not one."""
    raw = as_utf8(read_request_body(req, max_bytes))
    body, members = parse_with_members(raw)
    return raw, body, members


def parse_object(raw: bytes, must_be_object: bool = True) -> Any:
    """The request body as a JSON object, or a 400 saying what is wrong with it. A key given twice in one
    object is refused: the proxy and the upstream could read different values (first wins or last wins)."""
    return parse_with_members(raw, must_be_object)[0]


def parse_with_members(raw: bytes, must_be_object: bool = True) -> tuple[Any, Members | None]:
    """parse_object, and for a long body its top-level members as written (body_members.py). msgspec reads
    the body where its reading is the json module's (msgspec_body.py); the json module reads the rest and words
    the errors. A body of SCAN_FROM bytes or more is counted first (json_scan.py) and refused over the budgets
    of values and containers before anything is parsed."""
    if not raw:
        raise ProxyError(400, "The request body is empty; expected a JSON object.", code="invalid_json")
    if len(raw) >= SCAN_FROM:
        body, opened = _long_body(raw)
    else:
        opened = brackets(raw)  # fewer than MAX_CONTAINERS and MAX_VALUES: the text is shorter than either
        body = read_body(raw)
    members = None
    try:
        if body is UNREAD:
            body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float,
                              object_pairs_hook=_unique_keys)
        elif len(raw) >= MEMBERS_FROM and type(body) is dict:
            members = Members(raw, tuple(body))
    except DuplicateKey as dup:
        raise ProxyError(400, f"The request body gives the key `{dup.key}` more than once in one object.",
                         param=dup.key, code="duplicate_key") from None
    except UnicodeDecodeError:
        raise ProxyError(400, "The request body is not valid UTF-8.", code="invalid_json") from None
    except RecursionError:  # hundreds of levels, past MAX_DEPTH: the same answer however deep the stack stood
        raise ProxyError(400, f"The request body is nested more than {MAX_DEPTH} levels deep.",
                         code="invalid_json") from None
    except ValueError as exc:
        raise ProxyError(400, f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if opened > MAX_DEPTH and members_and_depth(body, opened)[1] > MAX_DEPTH:
        raise ProxyError(400, f"The request body is nested more than {MAX_DEPTH} levels deep.",
                         code="invalid_json")
    if must_be_object and not isinstance(body, dict):
        raise ProxyError(400, f"The request body must be a JSON object, not {type(body).__name__}.",
                         code="invalid_json")
    for obj in body if isinstance(body, list) else (body,):
        if isinstance(obj, dict):
            _no_case_variants(obj)
    return body, members


def _long_body(raw: bytes) -> tuple[Any, int]:
    """A long body's msgspec reading (UNREAD: the json module decides), after its counts were checked against
    the budgets, and how many arrays and objects the json module's reading may hold (0: its nesting was checked
    here, on msgspec's reading).
    Each step is bounded per byte (bench/hostile_bodies.py), and a body of a megabyte or more lets the worker's
    other requests run between them: the parse itself (C code) cannot yield, and the budgets bound it."""
    pause = turn if len(raw) >= TURN_FROM else None
    counts = scan(raw, strings_over=MAX_VALUES, turn=pause)
    if counts.containers > MAX_CONTAINERS:
        raise ProxyError(400, f"The request body holds more than {MAX_CONTAINERS:,} arrays and objects.",
                         code="invalid_json")
    if counts.values > MAX_VALUES:
        raise ProxyError(400, f"The request body holds more than {MAX_VALUES:,} values (keys, strings, numbers, "
                              "arrays and objects).", code="invalid_json")
    if pause:
        pause()
    body = decoded(raw)
    if body is UNREAD:
        return body, counts.containers
    if pause:
        pause()
    members, depth = members_and_depth(body, counts.containers)
    if depth > MAX_DEPTH:
        raise ProxyError(400, f"The request body is nested more than {MAX_DEPTH} levels deep.", code="invalid_json")
    if members != counts.colons:  # a key given twice leaves fewer keys than the text wrote
        return UNREAD, counts.containers  # the json module finds it and names it
    return body, 0


def as_utf8(raw: bytes) -> bytes:
    """The body as UTF-8 without a byte-order mark: the client's bytes when they are (nearly every body: two
    byte tests), else the text re-encoded. JSON on the wire is UTF-8 (RFC 8259), but Python's reader, and so
    the proxy's checks, also read UTF-16 and UTF-32 and a BOM; sent on as they came, such bodies reached the
    upstream in a form llama.cpp or OpenAI cannot read, after the proxy had accepted them."""
    if raw[:1] not in _NOT_UTF8_STARTS and raw[1:2] != b"\x00":
        return raw
    encoding = json.detect_encoding(raw)
    if encoding == "utf-8":
        return raw
    try:
        return raw.decode(encoding).encode()
    except UnicodeDecodeError:
        raise ProxyError(400, f"The request body is not valid {encoding.upper().removesuffix('-SIG')}.",
                         code="invalid_json") from None


_NOT_UTF8_STARTS = (b"\x00", b"\xef", b"\xfe", b"\xff")  # a NUL (UTF-16/32 without a BOM), or a BOM's first byte


def containers(raw: bytes, over: int, opened: int | None = None) -> int:
    """How many arrays and objects a JSON text holds, without parsing it: its `{` and `[` (`opened`, when the
    caller counted them already), less those inside strings. The strings are skipped only when the plain count
    is above `over` (a code listing in a message holds many braces): json_scan.scan, at most a few ms per MB."""
    count = brackets(raw) if opened is None else opened
    if count <= over:
        return count
    return scan(raw).containers


def _no_case_variants(body: dict[str, Any]) -> None:
    """Top-level keys that differ only in case are refused: Go's encoding/json (Ollama, LocalAI...) matches keys
    case-insensitively, last one winning, so `{"model": "a", "Model": "b"}` is `b` there. Only the top level:
    deeper objects (tool schemas' properties) may hold such keys on purpose."""
    if len(set(map(str.casefold, body))) != len(body):  # C loops: a body of 500,000 keys runs no Python per key
        seen: dict[str, str] = {}
        for key in body:
            if key.casefold() in seen:
                raise ProxyError(400, f"The request body gives the key `{seen[key.casefold()][:100]}` more than "
                                 f"once in one object (as `{key[:100]}`).", param=key[:100], code="duplicate_key")
            seen[key.casefold()] = key


def strict_decoder() -> json.JSONDecoder:
    """The parser of parse_object as one object, for many small documents (a batch file's lines: json.loads
    builds a decoder and detects the encoding on every call). Its errors are plain; parse_object words them."""
    return json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys)


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:100]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return number


def read_request_body(req: "Request | None", max_bytes: int) -> bytes:
    """The client's request body, refusing more than max_bytes with a 413 (from its Content-Length, before
    reading it). Read from the server's input directly (Werkzeug's stream wrappers cost more than the read); a
    chunked body has no length and is cut and refused at the limit rather than forwarded truncated."""
    if req is None:  # a call the proxy made itself
        return b""
    stream = req.input
    length = req.content_length
    if length:
        if not length.isdigit():
            raise ProxyError(400, "The Content-Length header is not a number.", code="invalid_request")
        size = int(length)
        if size > max_bytes:
            raise _too_large(max_bytes)
        data = stream.read(size)
        if len(data) < size:
            raise ProxyError(400, "The request body ended before its Content-Length.", code="invalid_request")
        return data
    if not req.chunked:
        return b""  # no length and not chunked: HTTP/1.1 says there is no body
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        parts.append(chunk)


def _too_large(max_bytes: int) -> ProxyError:
    return ProxyError(413, f"The request body is larger than the proxy accepts ({max_bytes} bytes).",
                      code="request_too_large")

