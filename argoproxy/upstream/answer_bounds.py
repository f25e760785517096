"""How much the proxy reads of an answer from a server it chose itself, where no client's request set the bound:
an OpenTelemetry collector's answer to an export, llama-server's /props and /slots, a model list read for the
models' contexts. Each is read up to its bound, then dropped with its connection (not drained): a server that
answers with an endless body costs a worker at most that much memory. docs/hardening.md lists every bound; an
answer relayed to a client is bounded by MAX_RESPONSE_BYTES instead (wire.py), and a reachability probe
(probe.py) reads no body at all."""

from __future__ import annotations

import io
import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter

MAX_COLLECTOR_ANSWER = 64 * 1024  # an export's answer: an ExportTraceServiceResponse, a few bytes (a partial
# success's message at most); the exporters read its status, not its body
MAX_PROBE_ANSWER = 1 << 20  # /props, /slots, a model list read for contexts: a few KB where they are sane
PIECE = 16 * 1024  # read at a time: a piece past the bound is all that is read past it


class AnswerTooLong(ValueError):
    """An answer longer than the bound it is read up to."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is longer than {limit} bytes")


def read_capped(response: requests.Response, limit: int, whole: bool = True) -> bytes:
    """The body of a response asked with stream=True (decoded as requests decodes it), read up to `limit` bytes,
    then closed. Past the bound the connection is dropped, not drained, and the read ends: `whole` raises
    AnswerTooLong (what is read must be whole to mean anything: JSON), else the first `limit` bytes are kept."""
    parts, size = [], 0
    try:  # (urllib3's stream, not iter_content: that would leave the response unreadable as `content`)
        for data in response.raw.stream(PIECE, decode_content=True):
            size += len(data)
            if size > limit:
                if whole:
                    raise AnswerTooLong(limit)
                parts.append(data[:limit - size])
                break
            parts.append(data)
    finally:
        response.close()  # at its end: back to the pool; cut short: the connection closed
    return b"".join(parts)


class CappedAdapter(HTTPAdapter):
    """requests' transport, whose answers a caller reads whole (stream=False, as the OpenTelemetry exporters ask)
    are read up to `limit` bytes, the rest dropped with the connection. requests reads an answer whole itself,
    however long, unless asked to stream: this streams every answer and hands requests the bounded prefix, as the
    response's `raw` (the file requests reads a body from)."""

    def __init__(self, limit: int, **options: Any) -> None:
        super().__init__(**options)
        self.limit = limit

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None, verify: bool | str = True,
             cert: str | tuple[str, str] | None = None, proxies: dict[str, str] | None = None) -> requests.Response:
        response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        if not stream:
            response.raw = io.BytesIO(read_capped(response, self.limit, whole=False))
        return response


# The OTLP/HTTP exporter's own ways to be given a Session (a credential provider's): then that one is used
CREDENTIAL_PROVIDERS = ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
                        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER")


def collector_session(session: requests.Session) -> dict[str, requests.Session]:
    """The `session` option of an OTLP/HTTP exporter: `session`, its answers read up to MAX_COLLECTOR_ANSWER;
    none where a credential provider is named (the exporter then takes the provider's, unbounded)."""
    if any(os.environ.get(name) for name in CREDENTIAL_PROVIDERS):
        return {}
    return {"session": capped(session, MAX_COLLECTOR_ANSWER)}


def capped(session: requests.Session, limit: int) -> requests.Session:
    """`session` with every answer it reads whole bounded to `limit` bytes (CappedAdapter, for http and https)."""
    adapter = CappedAdapter(limit)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
