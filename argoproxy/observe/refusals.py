"""Why a request was answered with an error: its cause, one of CAUSES, for /metrics (cot_proxy_refusals_total)
and the status page.

The proxy's own decisions (DECIDED) are not failures of a model: a key over its rate or budget, a request that
would wait (or waited) too long in admission's queue for a busy server, a missing or wrong key, a model the key or
the allow-list does not allow, a request the proxy cannot take. A queue refusal has a cause of its own, not
`rate`: it says the servers were full, not that the key went past its limits. Failures
(FAILED) are the upstream's (it answered an error, could not be reached or answered nonsense) or the proxy's
own (a bug, a store it cannot reach). A client that left (499) is neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argoproxy.pipeline.call_records import CallEnd

CAUSES = ("rate", "budget", "queue", "auth", "model", "request", "upstream", "proxy")
DECIDED = frozenset(("rate", "budget", "queue", "auth", "model", "request"))
FAILED = frozenset(("upstream", "proxy"))

_BY_CODE = {
    "model_not_allowed": "model", "model_not_found": "model",
    # the admin's routes and pages, and browsers from origins or hosts the proxy does not serve
    "admin_key_required": "auth", "operator_route": "auth", "host_not_allowed": "auth",
    "origin_not_allowed": "auth",
    "argo_auth_error": "upstream", "unhealthy": "upstream",  # ARGO refused the user; no upstream answers
    "queue_full": "queue", "queue_timeout": "queue",  # admission (admission/queue.py)
    "internal_error": "proxy", "key_store_unavailable": "proxy", "store_unavailable": "proxy",
}
# An upstream's errors, relayed (upstream_NNN) or found (upstream_timeout, ...), and the network proxy's on the
# way to it (HTTPS_PROXY: proxy_connect_timeout, proxy_auth_required, ...).
_UPSTREAM_PREFIXES = ("upstream_", "proxy_")


def error_cause(status: int, code: str | None, cause: str | None = None) -> str:
    """The cause of an error answer the proxy gives (a ProxyError's status, code and, where it knows better
    than both, its own cause)."""
    if cause in CAUSES:
        return cause
    if code:
        found = _BY_CODE.get(code)
        if found is not None:
            return found
        if code.startswith(_UPSTREAM_PREFIXES):
            return "upstream"
    if status == 401:
        return "auth"
    if status == 429:
        return "rate"
    if status >= 500:
        return "upstream"  # a gateway's 502, 503 and 504 without a code of the proxy's own
    return "request"


def refusal_cause(out: CallEnd) -> str | None:
    """The cause of a finished call's error answer (its end record); None for an answer that is not an error (or a
    client that left)."""
    status = out.status
    if status < 400 or status == 499:
        return None
    if out.refused is not None:
        return out.refused
    if (out.upstream_status or 0) >= 400:
        return "upstream"  # the upstream's own error, relayed as it came
    return error_cause(status, None)
