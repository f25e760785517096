"""A real OTLP/HTTP trace receiver on loopback for tests: what an OpenTelemetry Collector's otlp receiver does with
`POST /v1/traces`, decoding the protocol's protobuf (opentelemetry-proto's ExportTraceServiceRequest) span by span.

As strict as the collector: only POST to /v1/traces (404 elsewhere, 405 for another method), only
`application/x-protobuf` bodies (415 otherwise; this proxy's exporter sends no JSON), gzip or identity encoding
(415 otherwise), a body that does not decode is a 400; an accepted export gets 200 with an
ExportTraceServiceResponse. Every span received is kept (`spans`), with its resource's and scope's names; `wait`
polls until the spans a test expects have arrived.

`endless` (bytes, 0: off) makes it a hostile collector: an accepted export gets 200 and a chunked body that never
ends, `endless` bytes of it sent as fast as the client reads them, then nothing more while the connection stays
open; `left` counts the answers whose client hung up before the end it never reached."""

from __future__ import annotations

import gzip
import select
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan, Status

from tests.fakes.quiet_server import QuietServer
from tests.polling import poll

KINDS = {ProtoSpan.SPAN_KIND_SERVER: "SERVER", ProtoSpan.SPAN_KIND_CLIENT: "CLIENT",
         ProtoSpan.SPAN_KIND_INTERNAL: "INTERNAL", ProtoSpan.SPAN_KIND_PRODUCER: "PRODUCER",
         ProtoSpan.SPAN_KIND_CONSUMER: "CONSUMER", ProtoSpan.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED"}
STATUSES = {Status.STATUS_CODE_UNSET: "UNSET", Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}


@dataclass
class Span:
    name: str
    kind: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str  # "" for a root span
    attributes: dict[str, Any]
    status: str
    start_ns: int
    end_ns: int
    service: str = ""
    scope: str = ""
    trace_state: str = ""
    flags: int = 0

    def named_by(self, traceparent: str) -> bool:
        """Does this W3C traceparent name this span, sampled? (Its other flags are not in the export: the SDK
        sets the random-trace-id flag, 0x02, of Trace Context level 2 on the traces it starts.)"""
        version, trace_id, span_id, flags = traceparent.split("-")
        return (version, trace_id, span_id) == ("00", self.trace_id, self.span_id) and bool(int(flags, 16) & 1)


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if which is None:
        return None
    return getattr(v, which)


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(s.name, KINDS[s.kind], s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                                {kv.key: value(kv.value) for kv in s.attributes}, STATUSES[s.status.code],
                                s.start_time_unix_nano, s.end_time_unix_nano, resource.get("service.name", ""),
                                ss.scope.name, s.trace_state, s.flags))
    return out


@dataclass
class Export:
    """One export request as it arrived (its headers, for the tests of what the exporter sends)."""
    headers: dict[str, str]
    spans: list[Span] = field(default_factory=list)


class _Server(QuietServer):
    daemon_threads = True


class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` -> receiver.endpoint (http://127.0.0.1:PORT), receiver.spans."""

    def __init__(self) -> None:
        self.exports: list[Export] = []
        self.refused: list[tuple[int, str]] = []  # (status, why) of requests it did not take
        self.lock = threading.Lock()
        self.server: _Server | None = None
        self.endless = 0
        self.left = 0  # endless answers whose client hung up
        self.stopping = threading.Event()

    @property
    def spans(self) -> list[Span]:
        with self.lock:
            return [span for export in self.exports for span in export.spans]

    def wait(self, check: Callable[[list[Span]], Any], timeout: float = 20.0) -> list[Span]:
        """Poll until check(spans) is truthy; the spans then (a failed wait's last, for the assertion)."""
        found = poll(lambda: check(self.spans), timeout)
        assert found, f"spans never satisfied the check; received: {[(s.kind, s.name) for s in self.spans]}"
        return self.spans

    def wait_count(self, count: int, timeout: float = 20.0) -> list[Span]:
        return self.wait(lambda spans: len(spans) >= count, timeout)

    def clear(self) -> None:
        with self.lock:
            self.exports.clear()

    def __enter__(self) -> "OtlpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def refuse(self, status: int, why: str) -> None:
                receiver.refused.append((status, why))
                # the collector's error body: a google.rpc.Status (INVALID_ARGUMENT for a body it cannot read)
                body = RpcStatus(code=3 if status == 400 else 12, message=why).SerializeToString()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.refuse(405 if self.path == "/v1/traces" else 404, "POST /v1/traces only")

            do_PUT = do_DELETE = do_GET

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    return self.refuse(404, f"no route {self.path}")
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-protobuf":
                    return self.refuse(415, f"unsupported content type {self.headers.get('Content-Type')!r}")
                encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("identity", "", "gzip"):
                    return self.refuse(415, f"unsupported content encoding {encoding!r}")
                try:
                    spans = decode(gzip.decompress(body) if encoding == "gzip" else body)
                except (DecodeError, OSError, KeyError) as exc:
                    return self.refuse(400, f"undecodable export: {exc}")
                with receiver.lock:
                    receiver.exports.append(Export(dict(self.headers.items()), spans))
                if receiver.endless:
                    return self.endless_answer(receiver.endless)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def endless_answer(self, most: int) -> None:
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                piece = b"%x\r\n" % (1 << 20) + b"\0" * (1 << 20) + b"\r\n"
                try:
                    for _ in range(most >> 20):
                        self.wfile.write(piece)
                    self.wfile.flush()
                    while not receiver.stopping.is_set():  # the body's end never comes: wait for the client to go
                        if select.select([self.connection], [], [], 0.1)[0] and not self.connection.recv(1 << 16):
                            break
                    else:
                        return
                except OSError:  # reset, or a broken pipe: the client cut the answer short
                    pass
                with receiver.lock:
                    receiver.left += 1

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
