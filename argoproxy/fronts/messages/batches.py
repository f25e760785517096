"""Anthropic's message batches (`POST /v1/messages/batches`, forwarded as they come): each request's params name a
model and ask for an answer. The door declares the route (MessagesFront.batch_routes); the one guard checks every
model it names, and a token limit reserves for every request."""

from __future__ import annotations

from typing import Any, Iterator

from argoproxy.edge.model_readers import Named, check_models
from argoproxy.edge.request_body import parse_object
from argoproxy.errors import ProxyError


class MessageBatches:
    """The reader of a message batch's body: `requests`, each {custom_id, params}."""

    def models(self, body: bytes, named: Named) -> None:
        """The model of every request's params; a malformed list is the client's 400."""
        requests = parse_object(body).get("requests")
        if not isinstance(requests, list):
            raise ProxyError(400, "`requests` must be a list of {custom_id, params}.", param="requests",
                             code="invalid_value")
        for i, item in enumerate(requests):
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(params, dict):
                raise ProxyError(400, f"`requests[{i}].params` must be an object.", param=f"requests[{i}].params",
                                 code="invalid_value")
            check_models(params, f"requests[{i}].params", named)

    def requests(self, body: bytes) -> Iterator[tuple[str, Any]]:
        """Each request as a Messages create sent to /v1/messages (an unreadable one: None, left to the upstream)."""
        listed = parse_object(body).get("requests")
        for item in listed if isinstance(listed, list) else ():
            yield "/v1/messages", item.get("params") if isinstance(item, dict) else None
