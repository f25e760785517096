"""Every private name of another library the proxy uses, in one register.

A private name (a leading underscore, a public name the library does not offer for replacing, or a key it
puts in the WSGI environ beyond PEP 3333's) can change in any release. Each one is listed here with the module
that uses it and why; tests/unit/test_private_names.py checks that each still exists in the installed library
(an environ key: in the source of the module that sets it), that none here is stale, and (by reading the
source) that no module uses an unlisted underscore name, replaces a library's name by assignment, or reads an
unlisted server key from the environ. Those in argoproxy/fastpath/ sit behind FAST_PATH (its contract test,
tests/unit/test_fastpath_contract.py, also checks each patch is on only when asked), but those of
fastpath/server_reach.py, which the product needs in both modes; none is used outside the fence.
"""

from __future__ import annotations

from typing import NamedTuple


class PrivateName(NamedTuple):
    module: str  # the library module it lives in
    name: str  # dotted, from that module
    used_in: str  # the argoproxy module that uses it
    why: str


PRIVATE_NAMES: tuple[PrivateName, ...] = (
    # ---- metrics
    PrivateName("prometheus_client.values", "ValueClass", "argoproxy.observe.metrics",
                "replaced once per worker by MultiProcessValue(process_identifier=per_process.pid), the library's "
                "seam for the pid: one getpid a process, not one a value update"),
    # ---- the fast path (FAST_PATH=on only)
    PrivateName("http.client", "_read_headers", "argoproxy.fastpath.headers", "reads response heads in one pass"),
    PrivateName("http.client", "parse_headers", "argoproxy.fastpath", "replaced by the one-pass head parser"),
    PrivateName("http.client", "HTTPResponse._read_status", "argoproxy.fastpath.connections",
                "overridden: interim 1xx answers read past as begin() reads past a 100"),
    PrivateName("urllib3.util.connection", "_set_socket_options", "argoproxy.fastpath.connections",
                "a socket connected without the resolver gets urllib3's options"),
    PrivateName("urllib3.util.timeout", "_DEFAULT_TIMEOUT", "argoproxy.fastpath.connections",
                "tells 'no timeout given' from None"),
    PrivateName("urllib3.connection", "HTTPConnection._new_conn", "argoproxy.fastpath.connections",
                "overridden: an IP literal connects without getaddrinfo"),
    PrivateName("urllib3.connection", "HTTPConnection._dns_host", "argoproxy.fastpath.connections",
                "the host the connection resolves"),
    PrivateName("urllib3.connection", "HTTPConnection.is_connected", "argoproxy.fastpath.connections",
                "overridden: an idle connection checked with one poll(2)"),
    PrivateName("urllib3.connection", "HTTPConnection.getresponse", "argoproxy.fastpath.connections",
                "overridden: the answer's head read whole within the read timeout (fastpath/head_deadline.py)"),
    PrivateName("urllib3.connection", "_get_default_user_agent", "argoproxy.fastpath.connections",
                "the User-Agent a lean head adds when the request has none, as urllib3's request() does"),
    PrivateName("urllib3.connection", "_ResponseOptions", "argoproxy.fastpath.connections",
                "what a lean head leaves for urllib3's getresponse, as its request() does"),
    PrivateName("urllib3.connection", "HTTPConnection._response_options", "argoproxy.fastpath.connections",
                "set by a lean head: urllib3's getresponse reads it"),
    PrivateName("urllib3.util.request", "_METHODS_NOT_EXPECTING_BODY", "argoproxy.fastpath.connections",
                "which bodiless requests get no Content-Length: 0, as urllib3 decides"),
    PrivateName("http.client", "HTTPConnection._HTTPConnection__state", "argoproxy.fastpath.connections",
                "a lean head checks the connection is idle and marks its request sent, as putrequest/endheaders do"),
    PrivateName("http.client", "HTTPConnection._HTTPConnection__response", "argoproxy.fastpath.connections",
                "a lean head is written only on a connection with no unread answer, as putrequest requires"),
    PrivateName("http.client", "HTTPConnection._method", "argoproxy.fastpath.connections",
                "set by a lean head: getresponse reads it"),
    PrivateName("http.client", "HTTPConnection._tunnel_host", "argoproxy.fastpath.connections",
                "a tunnelled connection's head is left to http.client (its Host names the tunnel's end)"),
    PrivateName("http.client", "_CS_IDLE", "argoproxy.fastpath.connections", "http.client's idle state"),
    PrivateName("http.client", "_CS_REQ_SENT", "argoproxy.fastpath.connections",
                "http.client's request-sent state, which its getresponse requires"),
    PrivateName("requests.adapters", "HTTPAdapter.get_connection_with_tls_context", "argoproxy.fastpath.pool",
                "the Session's own pool for a URL"),
    PrivateName("urllib3.connectionpool", "HTTPConnectionPool.ConnectionCls", "argoproxy.fastpath.pool",
                "the lean connection class set on the pool"),
    PrivateName("urllib3.connectionpool", "HTTPConnectionPool.pool", "argoproxy.fastpath.pool",
                "None once the pool is closed"),
    PrivateName("urllib3.response", "HTTPResponse._fp", "argoproxy.fastpath.pool",
                "bodies read through http.client directly"),
    PrivateName("urllib3.response", "HTTPResponse._connection", "argoproxy.fastpath.pool",
                "a finished stream's socket gets a short timeout while it drains"),
    PrivateName("http.client", "HTTPResponse.length", "argoproxy.fastpath.pool",
                "a body that ends before its Content-Length is an error"),
    PrivateName("urllib3.response", "HTTPResponse._fp", "argoproxy.fastpath.chunked",
                "a chunked body decoded from the socket's reads directly"),
    PrivateName("urllib3.response", "HTTPResponse._connection", "argoproxy.fastpath.chunked",
                "the socket a chunked body is read from after the buffered bytes"),
    PrivateName("urllib3.response", "HTTPResponse._error_catcher", "argoproxy.fastpath.chunked",
                "urllib3's own errors and connection clean-up around a chunked body read directly"),
    PrivateName("gevent._socketcommon", "SocketMixin._read_event", "argoproxy.fastpath.chunked",
                "the socket's own read watcher: waited on before a read that would find nothing"),
    PrivateName("gevent._socketcommon", "SocketMixin._wait", "argoproxy.fastpath.chunked",
                "waits on the socket's read watcher, as its recv does after EAGAIN"),
    PrivateName("gunicorn.http.wsgi", "Response", "argoproxy.fastpath.gunicorn_response",
                "replaced: a response's head goes with its first body bytes"),
    PrivateName("gunicorn.http.wsgi", "Response.send_headers", "argoproxy.fastpath.gunicorn_response", "overridden"),
    PrivateName("gunicorn.http.wsgi", "Response._emit_body", "argoproxy.fastpath.gunicorn_response", "overridden"),
    PrivateName("gunicorn.http.wsgi", "Response.sendfile", "argoproxy.fastpath.gunicorn_response", "overridden"),
    PrivateName("gunicorn.http.wsgi", "Response.process_headers", "argoproxy.fastpath.gunicorn_response",
                "overridden: the proxy's own `Connection: close` on an error answer closes the connection"),
    PrivateName("gunicorn.http.wsgi", "Response.headers_sent", "argoproxy.fastpath.gunicorn_response",
                "whether the head was sent"),
    PrivateName("gunicorn.http.body", "Body.reader", "argoproxy.fastpath.gunicorn_body",
                "a request body's reader: a whole body of known length is read from its socket directly"),
    PrivateName("gunicorn.http.body", "Body.buf", "argoproxy.fastpath.gunicorn_body",
                "empty: nothing of the body was read through the Body yet"),
    PrivateName("gunicorn.http.body", "Body.failed", "argoproxy.fastpath.gunicorn_body",
                "set when a read failed, so the connection is not reused"),
    PrivateName("gunicorn.http.body", "LengthReader.length", "argoproxy.fastpath.gunicorn_body",
                "what is left of the body, counted down as it is read"),
    PrivateName("gunicorn.http.body", "LengthReader.unreader", "argoproxy.fastpath.gunicorn_body",
                "the connection's buffer of bytes read past the head"),
    PrivateName("gunicorn.http.unreader", "SocketUnreader.sock", "argoproxy.fastpath.gunicorn_body",
                "the client socket the body is read from"),
    PrivateName("gunicorn.http.unreader", "Unreader.take_buffered", "argoproxy.fastpath.gunicorn_body",
                "the body's first bytes, read with the head"),
    PrivateName("gunicorn.http.unreader", "Unreader.unread", "argoproxy.fastpath.gunicorn_body",
                "bytes past the body (a pipelined request) handed back"),
    PrivateName("gunicorn.workers.ggevent", "StreamServer", "argoproxy.fastpath.balanced_worker",
                "the server class Gunicorn's gevent worker builds, replaced"),
    PrivateName("gevent.baseserver", "BaseServer._do_read", "argoproxy.fastpath.balanced_worker",
                "overridden: a busy worker leaves a connection to an idle one"),
    PrivateName("gevent.baseserver", "BaseServer._watcher", "argoproxy.fastpath.balanced_worker",
                "None once the server stopped accepting"),
    PrivateName("gevent.baseserver", "BaseServer._timer", "argoproxy.fastpath.balanced_worker",
                "the re-check timer of a paused accept"),
    PrivateName("gevent.baseserver", "BaseServer._start_accepting_if_started", "argoproxy.fastpath.balanced_worker",
                "resumes accepting"),
    PrivateName("gevent.monkey", "get_original", "argoproxy.fastpath.sockets",
                "the unpatched select.poll in a gevent worker"),
    PrivateName("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter.export",
                "argoproxy.fastpath.otlp", "overridden (TRACING on): the spans sent are written by the lean encoder"),
    PrivateName("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter._client",
                "argoproxy.fastpath.otlp", "the exporter's HTTP client (the OTEL_* endpoint, headers, timeout, "
                "compression and certificates, its retries): the lean encoder's bytes go through it"),
    PrivateName("opentelemetry.exporter.otlp.common.http", "_OTLPHTTPClient.export", "argoproxy.fastpath.otlp",
                "sends one export request's bytes, as the exporter's own export does"),
    # ---- inside the fence, used in both modes (argoproxy.fastpath.server_reach)
    PrivateName("gunicorn.http.body", "ChunkedReader.parse_chunk_size", "argoproxy.fastpath.server_reach",
                "replaced (wrapped), in both modes: a chunk size over 2^64 - 1 is refused; both of Gunicorn's "
                "request parsers and every worker class read chunked bodies through it "
                "(tests/unit/test_gunicorn_errors.py)"),
    PrivateName("gunicorn.http.wsgi", 'environ["gunicorn.socket"]', "argoproxy.fastpath.server_reach",
                "the client's socket, in both modes: a request body's read deadline is set on it, and a kept-alive "
                "stream watches it for the client leaving (edge/client_input.py, edge/request_ids.py)"),
    PrivateName("gunicorn.http.message", "Request.parse", "argoproxy.fastpath.server_reach",
                "its frame's local `buf` (the head's bytes read so far) and the Request's `uri`, read in both modes "
                "from the traceback of a parse error: the target of a refused request, whose answer takes its "
                "door's error shape; Gunicorn hands its error writer none (tests/unit/test_gunicorn_errors.py)"),
    PrivateName("gunicorn.util", "write_error", "argoproxy.fastpath.server_reach",
                "replaced, in both modes: Gunicorn's own error pages (bad request line, headers too large...) in the "
                "API's JSON shape (serve/gunicorn_errors.py); Gunicorn offers no hook for them"),
)


def fast_path_names() -> tuple[tuple[str, str], ...]:
    """(module, name) of the fast path's private names (argoproxy.fastpath.PRIVATE_SYMBOLS)."""
    return tuple((p.module, p.name) for p in PRIVATE_NAMES if p.used_in.startswith("argoproxy.fastpath"))
