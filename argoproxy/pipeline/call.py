"""Call: everything the pipeline knows about one client request, filled in as it moves through."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from argoproxy.jsonfast import dumps
from argoproxy.config.llm_params import ModelRule
from argoproxy.pipeline.think import ThinkConfig

# Routes whose bodies the proxy understands, by the path after /v1/.
API_KINDS = {"chat/completions": "chat", "completions": "completions", "embeddings": "embeddings"}


@dataclass
class Call:
    kind: str  # chat | completions | embeddings | models | passthrough | backend-specific
    method: str
    path: str  # as the client sent it, without the leading '/'
    query: str
    headers: dict[str, str]  # the client's headers that may go upstream
    raw_body: bytes = b""
    body: dict[str, Any] | None = None
    body_changed: bool = False
    model: str | None = None  # as the client named it
    upstream_model: str | None = None
    rule: ModelRule | None = None
    client_stream: bool = False
    upstream_stream: bool = False
    include_usage: bool = False
    think: ThinkConfig | None = None
    timeout: float | None = None
    request_id: str = ""
    client_key: str | None = None
    request: Any = None  # the client's exchange.Request (its body is read from it once the route is known)
    front: str = "openai"  # the API the client speaks: openai (chat, completions, embeddings), responses, messages
    exchange: Any = None  # a front door's fronts.Exchange while its answer is translated back
    started: float = field(default_factory=time.perf_counter)
    # Filled while the answer is produced; observers (metrics, journals) read them at the end.
    upstream_request: Any = None  # the UpstreamRequest sent
    upstream_status: int | None = None
    upstream_output: Any = None  # the upstream's answer before the proxy's transforms (journals only)
    upstream_tap: Any = None  # journals: a body_tap.BodyTap of the upstream's answer bytes
    output_tap: Any = None  # journals: a BodyTap of the answer bytes sent to the client
    observed: bool = False
    status: int = 0
    first_byte_at: float | None = None
    bytes_out: int = 0
    usage: dict[str, Any] | None = None
    output: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        """The body to send upstream: the client's bytes unless something changed the parsed body."""
        if self.body is not None and self.body_changed:
            return dumps(self.body)
        return self.raw_body

    @property
    def send_mode(self) -> str:
        return "stream" if self.upstream_stream else "non_stream"

    @property
    def return_mode(self) -> str:
        return "stream" if self.client_stream else "non_stream"
