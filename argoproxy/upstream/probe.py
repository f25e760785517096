"""Is an upstream URL reachable? One bounded request, its failure said in words (/health, routing's health
probes, ARGO's model list check)."""

from __future__ import annotations

import requests

from argoproxy.upstream.client import transport_error
from argoproxy.upstream.proxy_env import proxy_for
from argoproxy.upstream.stock import failure_from_requests

PROBE_TIMEOUT = (2.0, 3.0)  # connect, read: a probe never hangs a monitor


def probe(session: requests.Session, url: str) -> str | None:
    """None when the URL answers at all (any HTTP status means reachable), else the reason it does not.
    The session reads the environment as requests does: a proxy (NO_PROXY honoured) is used as for calls."""
    try:
        response = session.get(url, timeout=PROBE_TIMEOUT, stream=True, allow_redirects=False)
    except requests.RequestException as exc:
        return transport_error(failure_from_requests(exc, url), url, PROBE_TIMEOUT, proxy_for(url)).message
    response.close()
    proxy = proxy_for(url)
    if response.status_code == 407 and proxy.url:  # the proxy's answer for a plain-http upstream
        return f"The proxy {proxy.shown} refused the request: 407 Proxy Authentication Required."
    return None
