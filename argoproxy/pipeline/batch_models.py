"""The models named inside batch work: the batch routes' reader for the one guard (argoproxy/pipeline/guard.py),
which checks each name against ALLOWED_MODELS and the team key's globs (forwarded routes, while they are set).

A batch names its models where a body's top-level `model` does not say them (each route with or without `/v1`,
and in Azure OpenAI's spellings, `/openai/files`, `/openai/batches?api-version=...`):

* `POST /v1/files` (multipart, `purpose` `batch`): a JSONL file whose every line is a request, its model in
  `body.model`. Each line is checked as the upload is read.
* `POST /v1/batches`: `input_file_id` names a file already upstream, uploaded through the proxy or not (before
  the allow-list was set, or in parts through the Uploads API, which no line-by-line check can follow). The
  proxy reads that file from the upstream (`GET /v1/files/{id}/content`, with its own credential) line by line
  and checks every line before it forwards the batch.
* a door's own batch route whose body lists its requests (Anthropic's `POST /v1/messages/batches`,
  `requests[].params.model`): the door declares it (`Front.batch_routes`) with its reader, a DoorBatch; nothing
  here knows a door's API.

Every line or request must name an allowed model (a request naming none would get the upstream's default,
which no list allows). Bounded: the proxy holds one line at a time, and reads at most MAX_BODY_BYTES of an
input file (the largest file that could be uploaded through it) within the read timeout; a larger file is a
400 `batch_input_too_large`. Other requests run between the 64 KB pieces of a long check (gevent). The answer keeps
the door's error shape (the door's on its own batch route).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Iterable, Iterator, Protocol

from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.edge.model_readers import Named, check_models
from argoproxy.edge.request_body import containers, parse_object, strict_decoder
from argoproxy.edge.request_models import field_name, multipart_form
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, read_chunks
from argoproxy.turns import turn

PIECE = 64 * 1024
_FILE_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")  # what goes into the content URL: no '/', no '..' on its own
_STRICT = strict_decoder()
# Bounds on one file's check, so that it costs well under a second of a worker's CPU however the file is made:
MAX_LINES = 50_000  # requests in one batch (OpenAI's own limit for an input file)
MAX_TRAILING_BLANKS = 1000  # blank lines read past MAX_LINES before the file is refused
MAX_CONTAINERS = 1_000_000  # arrays and objects in the whole file; a line that needs the strict parser
STRICT_COST = 4  # (it might repeat a key the check reads) counts its containers four times: it parses 4x slower
_READ_KEYS = re.compile(rb'"(?i:model|body)"')  # the keys the check reads, as a line may spell them
_BATCH_PATHS = {"files": "upload", "batches": "batch"}  # OpenAI's API, which every forwarding upstream speaks
_API_PREFIXES = ("openai/v1/", "openai/", "v1/")  # OpenAI's, Azure OpenAI's (with and without its v1)

Fetch = Callable[[str], UpstreamResponse]  # a path (as the client spelled the prefix) -> the upstream's answer


class DoorBatch(Protocol):
    """A door's batch route whose body lists its requests (Front.batch_routes): the models they name, and each
    request as (the path it would be sent to, its body) for a token limit's reservation."""

    def models(self, body: bytes, named: Named) -> None: ...

    def requests(self, body: bytes) -> Iterator[tuple[str, Any]]: ...


DoorBatches = tuple[tuple[str, DoorBatch], ...]  # (route after the API prefix, lower case; its reader)


def api_route(path: str) -> str:
    """A forwarded path without its API prefix (with or without /v1, and in Azure OpenAI's spellings), lower case."""
    lowered = path.lower()
    for prefix in _API_PREFIXES:
        if lowered.startswith(prefix):
            return lowered[len(prefix):]
    return lowered


def batch_kind(method: str, path: str) -> str | None:
    """upload or batch for OpenAI's POST routes that carry batch work (with or without /v1, and in Azure
    OpenAI's spellings)."""
    return _BATCH_PATHS.get(api_route(path)) if method == "POST" else None


class BatchModels:
    """The reader of the models batch work names: `read(call, named, fetch)` calls `named` for each (one line,
    one request at a time); a malformed input is the 400 the client gets."""

    def __init__(self, max_bytes: int, read_timeout: float, doors: DoorBatches = ()) -> None:
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.doors = dict(doors)  # the doors' own batch routes

    def door_batch(self, method: str, path: str) -> DoorBatch | None:
        return self.doors.get(api_route(path)) if method == "POST" and self.doors else None

    def lists_requests(self, method: str, path: str) -> bool:
        """Does the route's work name requests the upstream will answer (a batch, a door's batch route)?"""
        return batch_kind(method, path) == "batch" or self.door_batch(method, path) is not None

    def read(self, call: Call, named: Named, fetch: Fetch) -> bool:
        """The models a forwarded call names inside its batch work; False on a route that carries none."""
        kind = batch_kind(call.client.method, call.plan.path)
        door = self.door_batch(call.client.method, call.plan.path)
        body = call.plan.raw_body
        if kind == "upload":
            self.check_upload(body, call.plan.headers.get("Content-Type", ""), named)
        elif kind == "batch" and body:
            self.check_batch(call.plan.path, body, fetch, named)
        elif door is not None and body:
            door.models(body, named)
        return kind is not None or door is not None

    # ------------------------------------------------------------ OpenAI's two routes
    def check_upload(self, body: bytes, content_type: str, named: Named) -> None:
        """A multipart upload whose purpose is `batch`: every line of every file part."""
        if not body or not content_type.lower().lstrip().startswith("multipart/"):
            return
        purposes, files = _form_parts(body, content_type)
        if not any(p.strip().casefold() == "batch" for p in purposes):
            return
        for part in files:
            self.check_lines(_lines(iter(lambda: part.read(PIECE), b""), self.max_bytes), "uploaded file", named)

    def check_batch(self, path: str, body: bytes, fetch: Fetch, named: Named) -> None:
        """The batch's input file, read from the upstream line by line."""
        file_id, lines = self.input_file(path, body, fetch)
        self.check_lines(lines, f"input file {file_id}", named)

    def input_file(self, path: str, body: bytes, fetch: Fetch) -> tuple[str, Iterator[bytes]]:
        """The id of a batch's input file and its lines, read from the upstream as they are taken."""
        request = parse_object(body)
        file_id = request.get("input_file_id")
        if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id) or file_id in (".", ".."):
            raise ProxyError(400, "`input_file_id` must be a file id (letters, digits, `-`, `_`, `.`).",
                             param="input_file_id", code="invalid_value")
        prefix = path[: len(path) - len("batches")]
        return file_id, self._file_lines(fetch(f"{prefix}files/{file_id}/content"), file_id)

    def _file_lines(self, resp: UpstreamResponse, file_id: str) -> Iterator[bytes]:
        with resp:
            if resp.status_code >= 400:
                raise _unreadable(file_id, resp.status_code)
            deadline = time.monotonic() + self.read_timeout
            yield from _lines(_until(read_chunks(resp), deadline, self.read_timeout), self.max_bytes)

    def requests(self, call: Call, fetch: Fetch) -> Iterator[tuple[str, Any]]:
        """(url, body) of each request batch work asks the upstream to answer (what a token limit reserves for
        it): each line of a batch's input file (its `url`, else the batch's `endpoint`), each request of a
        door's batch route. A line that cannot be read is left out (the upstream answers it with an error)."""
        kind = batch_kind(call.client.method, call.plan.path)
        door = self.door_batch(call.client.method, call.plan.path)
        body = call.plan.raw_body
        if door is not None and body:
            yield from door.requests(body)
        if kind != "batch" or not body:
            return
        endpoint = parse_object(body).get("endpoint")
        budget = MAX_CONTAINERS
        for number, line in enumerate(self.input_file(call.plan.path, body, fetch)[1], 1):
            if number > MAX_LINES:
                return
            try:
                request, cost = _request_of(line, budget) if line.strip() else ({}, 0)
            except ProxyError:
                continue
            budget -= cost
            url = request.get("url") or endpoint
            if request:
                yield (url if isinstance(url, str) else ""), request.get("body")

    # ------------------------------------------------------------ lines and models
    def check_lines(self, lines: Iterable[bytes], where: str, named: Named) -> None:
        """Each JSONL line of a batch file: a request object whose `body` names an allowed model."""
        passed: set[str] = set()  # the names already allowed in this file (a file names a few, many times)
        budget = MAX_CONTAINERS
        for number, line in enumerate(lines, 1):
            if number > MAX_LINES + MAX_TRAILING_BLANKS:  # 32 MB of newlines cost seconds of CPU uncounted
                raise ProxyError(400, f"Line {number} of the batch {where}: a batch holds at most {MAX_LINES:,} "
                                 "requests.", code="batch_too_large")
            if not line.strip():
                continue
            try:
                if number > MAX_LINES:
                    raise ProxyError(400, f"A batch holds at most {MAX_LINES:,} requests.", code="batch_too_large")
                request, cost = _request_of(line, budget)
                budget -= cost
                # `body` in every spelling a lenient server reads, like `model` below
                bodies = [key for key in request if key.casefold() == "body"] or ["body"]
                for key in bodies:
                    if not isinstance(request.get(key), dict):
                        raise ProxyError(400, f"`{key}` must be an object.", param=key, code="invalid_value")
                    check_models(request[key], key, named, passed)
            except ProxyError as err:
                err.message = f"Line {number} of the batch {where}: {err.message}"
                raise


def _request_of(line: bytes, budget: int) -> tuple[dict[str, Any], int]:
    """One JSONL line as an object, and what it cost of the file's container budget. A line that names `model`
    and `body` once at most, unescaped, is parsed by the plain parser: no key the check reads can be given
    twice there. Any other is parsed as strictly as a request body (a key given twice is a 400)."""
    strict = b"\\u" in line or len(_READ_KEYS.findall(line)) > 2
    cost = containers(line, budget) * (STRICT_COST if strict else 1)
    if cost > budget:
        raise ProxyError(400, f"The batch input holds more than {MAX_CONTAINERS:,} arrays and objects.",
                         code="batch_too_large")
    try:
        text = line.decode("utf-8")
        request = _STRICT.decode(text) if strict else json.loads(text)
    except (ValueError, RecursionError):
        request = parse_object(line)  # raises the 400 that says what is wrong
    if not isinstance(request, dict):
        raise ProxyError(400, "A line must be a JSON object.", code="invalid_json")
    return request, cost


def _form_parts(body: bytes, content_type: str) -> tuple[list[str], list[Any]]:
    """The `purpose` values and the file parts of a multipart body."""
    form, files = multipart_form(body, content_type)
    purposes = [value for name, value in form.items(multi=True) if field_name(name) == "purpose"]
    return purposes, [part.stream for _, part in files.items(multi=True)]


def _lines(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The lines of a file read in chunks (one line held at a time, pieces joined once); a 400 past `limit`."""
    parts: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise ProxyError(400, f"The batch input is larger than MAX_BODY_BYTES ({limit} bytes), the most the "
                             "proxy reads to check the models it names.", code="batch_input_too_large")
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            parts.append(chunk[start:end])
            yield b"".join(parts)
            parts = []
            start = end + 1
        if start < len(chunk):
            parts.append(chunk[start:])
        turn()  # other requests (/health) run between chunks of a long check
    if parts:
        yield b"".join(parts)


def _until(chunks: Iterable[bytes], deadline: float, limit: float) -> Iterator[bytes]:
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise ProxyError(504, f"The upstream did not send the batch input file within {limit:g}s.",
                             code="upstream_timeout")
        yield chunk


def _unreadable(file_id: str, status: int) -> ProxyError:
    if status == 404:
        return ProxyError(404, f"No file {file_id} upstream: the batch's input file must exist.",
                          param="input_file_id", code="file_not_found")
    return ProxyError(502, f"The upstream answered {status} when asked for the batch's input file, so the models it "
                      "names cannot be checked.", param="input_file_id", code="upstream_error")


def upstream_fetch(send: Callable[[UpstreamRequest], UpstreamResponse], url: Callable[[str, str], str],
                   headers: dict[str, str], query: str = "") -> Fetch:
    """A Fetch that GETs a path from the forwarding backend's upstream with the proxy's credential; with the
    batch request's `api-version` (Azure OpenAI asks for it on every call)."""
    kept = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-encoding")}
    version = "&".join(p for p in query.split("&") if p.lower().startswith("api-version="))
    return lambda path: send(UpstreamRequest("GET", url(path, version), kept, None))
