"""The upstream's own request id (its x-request-id, or Anthropic's request-id on an error), as the client gets
it beside the proxy's X-Request-ID: what the vendor's support asks for. Light: the Gunicorn master imports it
(edge/request_ids.py) before gevent patches a worker, so it imports nothing."""

UPSTREAM_ID = "X-Upstream-Request-ID"
