"""The fast path: every trick the proxy plays on its libraries' internals to save system calls and CPU per
request, fenced here behind one switch (FAST_PATH, default on) and one explicit `install()`.

With FAST_PATH=off nothing here is imported but `server_reach` (below): Gunicorn runs its stock workers and responses, and upstream
calls go through a stock requests Session (`Session.request(stream=True)`, bodies read with `iter_content`),
the reference shape (argoproxy/upstream/client.py), where the `responses` library can mock the upstream.

With FAST_PATH=on:
- `install()` (process-wide; in the Gunicorn master before workers fork, and again in each app, idempotent):
  http.client parses response heads with `headers.parse_headers`; Gunicorn builds
  `gunicorn_response.CoalescingResponse` objects, which send a response's head with its first body bytes.
- `transport.FastTransport`, the upstream client's transport: `pool.DirectPools` uses the Session's own urllib3
  pools directly (skipping requests' per-call preparation), with the lean connection classes of `connections`
  (a request in one send, an idle connection checked with one poll), and reads bodies through http.client
  directly; hosts behind a proxy and requests that want a connection of their own go through the stock one.
- `balanced_worker.BalancedGeventWorker`: Gunicorn's gevent worker, spreading connections between workers.
- `tune_worker` (Gunicorn's post_worker_init): each worker freezes what it built at start-up out of the garbage
  collector's sight (`tune_worker_gc`) and keeps large freed blocks for reuse (`allocator.keep_large_blocks`).
- `gunicorn_body.direct_body`: a whole request body of known length read from the socket into one buffer
  (edge.client_input.DeadlineBody).
- `otlp.lean_batching` (TRACING on): the tracer's span records batched as they are (`LeanBatch`), written in
  OTLP's protobuf wire format directly and sent through the OTLP/HTTP exporter's own client, over a requests
  Session that reads the environment once (tracing/tracer.py is handed it by serve/build.py).

In both modes, `server_reach` (the one module here imported with FAST_PATH=off) gives the edge the client's
socket and limits chunk sizes: reaches below Gunicorn's public API that the product needs either way, kept
inside the fence so that one folder holds them all.

PRIVATE_SYMBOLS names every private name of another library these modules use (their part of the register in
argoproxy/private_names.py; none is used outside the fence); VERIFIED_WITH the library
versions they were checked against. tests/unit/test_fastpath_contract.py asserts that each still exists and
that each patch is active when on and absent when off; a library upgrade that breaks one fails there first.

May import: the shared modules, upstream.
"""

from __future__ import annotations

import gc
import http.client

from argoproxy.private_names import fast_path_names

# The library versions the fast path was verified against (requirements.txt pins them).
VERIFIED_WITH = {"urllib3": "2.8.0", "requests": "2.34.2", "gunicorn": "27.0.1", "gevent": "26.9.0",
                 "opentelemetry-exporter-otlp-proto-http": "1.45.2"}

# (module, dotted name) of every private symbol the fast path reads, calls, overrides or replaces: its part of
# the one register, argoproxy/private_names.py.
PRIVATE_SYMBOLS = fast_path_names()

BALANCED_GEVENT_WORKER = "argoproxy.fastpath.balanced_worker.BalancedGeventWorker"
GC_YOUNG_THRESHOLD = 10_000  # allocations between young-generation collections (Python's default: 700)

_STOCK_PARSE_HEADERS = http.client.parse_headers


def install() -> None:
    """Install the process-wide patches (idempotent). Imports neither urllib3 nor requests: in the Gunicorn
    master they must wait for gevent to patch each worker first."""
    from argoproxy.fastpath.gunicorn_response import install_gunicorn_response
    from argoproxy.fastpath.headers import parse_headers

    http.client.parse_headers = parse_headers
    install_gunicorn_response()


def active() -> dict[str, bool]:
    """Which process-wide patches are in place now (for the contract test and --show-like diagnostics)."""
    from gunicorn.http import wsgi

    from argoproxy.fastpath.headers import parse_headers
    return {"http.client.parse_headers": http.client.parse_headers is parse_headers,
            "gunicorn.http.wsgi.Response": wsgi.Response.__module__ == "argoproxy.fastpath.gunicorn_response"}


def tune_worker(worker: object = None) -> None:
    """Gunicorn's post_worker_init: the app is loaded; tune the collector and the allocator for serving."""
    from argoproxy.fastpath.allocator import keep_large_blocks

    tune_worker_gc()
    keep_large_blocks()


def tune_worker_gc(worker: object = None) -> None:
    """Gunicorn's post_worker_init: a worker has loaded the app, so move what it built (modules, app,
    settings) out of the garbage collector's sight, and collect young objects less often. Nearly all garbage
    a request leaves is freed by reference counting; full passes over the app's objects and a collection
    every 700 allocations cost 5-10 % of the CPU of a small request."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
