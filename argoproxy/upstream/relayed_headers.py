"""Which of an upstream's response headers may reach a client: an allow-list, the same on every route (API
routes, front doors, native relays, forwarded paths), answers and errors alike, and each value cleaned of
internal addresses as an error's text is (redaction.header_value).

Before, every header but a few hop-by-hop ones was relayed: `Set-Cookie` (one upstream's cookie handed to every
user of a shared gateway), `Via`, `Server`, `X-Backend-Host`, `Alt-Svc` (which would send clients to the
upstream itself), and values such as `x-ratelimit-debug-host: db7.corp.internal 10.9.9.9` while the error's
body said `[internal host]`. What a client acts on is short to list (docs/hardening.md); the rest describes the
upstream's own server, not the answer."""

from __future__ import annotations

import re

RELAYED = frozenset({
    # the body: its type, encoding and language; a downloaded file's name, the range of a partial download
    # (forwarded routes such as /v1/files/{id}/content take Range)
    "content-type", "content-encoding", "content-language", "content-disposition", "content-range",
    "accept-ranges",
    # caching what a forwarded route serves (a file's content, a model list)
    "cache-control", "etag", "last-modified", "expires",
    # where a created object lives, or a redirect a forwarded route relays (cleaned when it names a host inside)
    "location",
    # backing off and retrying: what the OpenAI and Anthropic SDKs read, in the order they read it
    "x-should-retry", "retry-after-ms", "retry-after",
    # the upstream's request id, which its vendor's support asks for (x-request-id goes out renamed
    # X-Upstream-Request-ID beside the proxy's own: edge/request_ids.py); Anthropic's
    "x-request-id", "request-id",
    # OpenAI's informative answer headers: how long it worked on the answer, the API version that made it
    # (openai-organization, the operator's organization, is not the client's business)
    "openai-processing-ms", "openai-version",
    # a 401's challenge
    "www-authenticate",
})
# The rate-limit families OpenAI (x-ratelimit-limit-requests ...), Anthropic (anthropic-ratelimit-...) and the
# IETF draft (ratelimit, ratelimit-policy) send; a name of them holds letters, digits and dashes only.
FAMILIES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit")
_FAMILY_NAME = re.compile(r"[a-z0-9-]{1,64}")


def relayed(name: str) -> bool:
    """May a header of this (lower-case) name reach a client?"""
    return name in RELAYED or (name.startswith(FAMILIES) and _FAMILY_NAME.fullmatch(name) is not None)
