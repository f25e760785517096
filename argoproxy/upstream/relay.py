"""Shared helpers for providers that read OpenAI-shaped answers: an
OpenAI SSE stream relayed event by event, and an upstream error as the client's error.
Neutral ground: providers import it; it imports neither providers nor the pipeline."""

from __future__ import annotations

import re
from typing import Any, Iterator

from argoproxy.upstream import sse
from argoproxy.errors import ProxyError, error_type
from argoproxy.redaction import header_value, sanitize_message
from argoproxy.upstream.relayed_headers import FAMILIES, relayed
from argoproxy.upstream.client import READ_ERRORS, parse_retry_after, stream_error
from argoproxy.upstream.request_id import UPSTREAM_ID
from argoproxy.upstream.wire import UpstreamResponse, read_chunks
from argoproxy.jsonfast import loads


def upstream_events(resp: UpstreamResponse, read_timeout: float,
                    max_event: int = sse.DEFAULT_MAX_EVENT) -> Iterator[bytes]:
    """The whole SSE events of an upstream stream. Each must arrive within `read_timeout` of the one before
    and be at most `max_event` bytes; a stall or a broken connection is a ProxyError naming the upstream."""
    try:
        yield from sse.split_events(read_chunks(resp), read_timeout, max_event)
    except READ_ERRORS as exc:
        raise stream_error(exc, resp.url, read_timeout) from None


def relay_sse(resp: UpstreamResponse, read_timeout: float, max_event: int = sse.DEFAULT_MAX_EVENT) -> Iterator[bytes]:
    """An OpenAI SSE stream as raw events (no [DONE]); raises ProxyError when it breaks off, stalls, sends an
    event over `max_event` bytes or ends unfinished (see upstream_events)."""
    last = None
    for event in upstream_events(resp, read_timeout, max_event):
        if event.startswith(b"data:"):  # the usual event: its data line first
            data: bytes | None = event
            done = event.startswith((b"data: [DONE]", b"data:[DONE]")) or (
                event.startswith((b"data:  ", b"data:\t")) and _is_done(sse.block_data(event)))
        else:  # a comment, or an event with `event:`/`id:` lines before its data
            data = sse.block_data(event)
            done = _is_done(data)
        if done:
            resp.drain(DRAIN_SECONDS)
            return
        if data is not None:
            last = event
        elif last is None:
            # An upstream's keepalive comment (llama.cpp's `: ping` while it reads a long prompt) before any
            # data: the proxy keeps its client's connection alive itself, and the stream's first event must be
            # its first data, so a stream that ends before any can still be asked for whole (pipeline.py).
            continue
        yield event
    if not _finished(sse.block_data(last) if last else None):
        raise ProxyError(502, "The upstream server closed the stream before the answer was complete.",
                         code="upstream_stream_incomplete")


def _is_done(data: bytes | None) -> bool:
    """Is this event's data the end marker? One rule wherever the event's lines put it: the data starts with
    `[DONE]` (what the OpenAI SDK checks), blanks before it allowed. (An event with `id:` first whose data was
    `[DONE]` followed by more, or the marker after two spaces, ended the stream or not depending on which line
    came first: the other way round it was relayed as data and the stream ended in a false 502.)"""
    return data is not None and data.lstrip(b" \t").startswith(b"[DONE]")


DRAIN_SECONDS = 1.0  # how long the end of a finished stream may take to arrive, so its connection is reused


def _finished(data: bytes | None) -> bool:
    """Did the last event of a stream end the answer (finish_reason set, or a usage-only chunk)?"""
    if data is None:
        return False
    try:
        obj = loads(data)
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    if "error" in obj or obj.get("usage"):
        return True
    choices = obj.get("choices") or []
    return bool(choices) and all(isinstance(c, dict) and c.get("finish_reason") for c in choices)


# An upstream error's headers that reach the client: what clients read to retry or to back off (the SDKs read
# retry-after-ms before Retry-After, and x-should-retry before either), the rate-limit families OpenAI, Anthropic
# and the IETF draft send, and WWW-Authenticate. The rest of an error's headers describe the upstream's answer,
# not the proxy's.
ERROR_HEADERS = ("www-authenticate", "retry-after-ms", "x-should-retry")
MAX_ERROR_HEADERS = 32  # lines, each at most MAX_ERROR_HEADER characters: the rest are left out
MAX_ERROR_HEADER = 256


def error_headers(resp: UpstreamResponse) -> dict[str, str]:
    """The headers an upstream error relays, and `x-should-retry: false` when the proxy has retried it already
    (the SDKs retry a 429 or 5xx again, each try the proxy's retries over: 9 upstream calls for one)."""
    headers: dict[str, str] = {}
    for name, value in resp.headers.items():
        low = name.lower()
        if len(headers) < MAX_ERROR_HEADERS and len(value) <= MAX_ERROR_HEADER and (
                low in ERROR_HEADERS or (low.startswith(FAMILIES) and relayed(low))):
            headers[name] = header_value(value)  # a realm or a debug header may name a host inside
    retry_after = resp.headers.get("Retry-After")
    if retry_after is not None and len(retry_after) > 64:  # relayed, and read by routing's cooldown: a long
        seconds = parse_retry_after(retry_after)  # one as the seconds it means, or not at all
        retry_after = str(int(seconds)) if seconds is not None else None
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    upstream_id = resp.headers.get("x-request-id") or resp.headers.get("request-id")  # OpenAI's, Anthropic's
    if upstream_id and len(upstream_id) <= MAX_ERROR_HEADER:
        headers[UPSTREAM_ID] = header_value(upstream_id)
    if resp.retried:  # the upstream's own word on it was heeded by those retries
        headers = {k: v for k, v in headers.items() if k.lower() != "x-should-retry"}
        headers["x-should-retry"] = "false"
    return headers


def upstream_error(resp: UpstreamResponse) -> ProxyError:
    """An upstream 4xx/5xx with its status and OpenAI-shaped message; non-OpenAI bodies are wrapped."""
    status = resp.status_code
    headers = error_headers(resp)
    try:
        body = resp.content[:65536]
        obj = loads(body) if body else None
    except (ValueError, *READ_ERRORS):  # an error's body broken off or stalled: its status alone is said
        obj = None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        kind, code = err.get("type") or error_type(status), _code(err.get("code"))
        if status == 400 and context_exceeded(err):
            kind, code = "invalid_request_error", CONTEXT_CODE
        return ProxyError(status, sanitize_message(err["message"]), type=kind, param=err.get("param"), code=code,
                          headers=headers)
    if isinstance(err, str):
        return ProxyError(status, sanitize_message(err), headers=headers)
    said = (obj.get("message") or obj.get("detail")) if isinstance(obj, dict) else None
    if isinstance(said, str):
        return ProxyError(status, sanitize_message(said), headers=headers)
    reason = sanitize_message(resp.reason or "error")[:100]
    return ProxyError(status, f"The upstream server answered {status} {reason}.", code=f"upstream_{status}",
                      headers=headers)


def redirect_error(resp: UpstreamResponse) -> ProxyError:
    """An upstream 3xx on an API route: not followed (the request's key would go wherever it points), said as
    it is (it read as "not a JSON object (an empty body)"). Usually a base URL one step off: http for https, a
    missing /v1."""
    status, where = resp.status_code, resp.headers.get("Location")
    to = f" to {sanitize_message(where)[:200]}" if where else ""
    reason = sanitize_message(resp.reason or "Redirect")[:100]
    return ProxyError(502, f"The upstream server answered {status} {reason}{to}; the proxy does not follow "
                           "redirects: set the upstream's base URL to the address it names.", code="upstream_redirect")


def _code(code: Any) -> str | None:
    """An error's code as OpenAI writes one: a string (llama.cpp's server repeats the HTTP status as an integer,
    which reached clients as the code "400")."""
    return code if isinstance(code, str) else None


# A prompt over the model's context, as each server words it: OpenAI and vLLM ("maximum context length",
# context_length_exceeded), llama.cpp's server ("exceeds the available context size", exceed_context_size_error),
# Anthropic ("prompt is too long"). Said with OpenAI's code, which the agents act on (Codex and Aider shrink or
# report their context) and routing's fallbacks look for.
CONTEXT_CODE = "context_length_exceeded"
CONTEXT_CODES = frozenset({CONTEXT_CODE, "string_above_max_length", "exceed_context_size_error"})
CONTEXT_TEXT = re.compile(r"context[ _]length|maximum context|too many tokens|prompt is too long|context size",
                          re.IGNORECASE)


def context_exceeded(err: dict[str, Any]) -> bool:
    """Does this OpenAI-shaped error object say the prompt is over the model's context?"""
    return err.get("code") in CONTEXT_CODES or err.get("type") in CONTEXT_CODES or bool(
        CONTEXT_TEXT.search(err.get("message") or ""))
