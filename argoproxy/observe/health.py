"""/health: is the upstream reachable? Probes are cached briefly so monitors cannot hammer the upstream."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from argoproxy.redaction import mask_url
from argoproxy.upstream.probe import probe
from argoproxy.upstream.wire import describe_host

def without_credentials(url: str) -> str:
    """A URL safe to show: any user:password@ part removed, credential query values (`?api_key=`) masked."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return mask_url(url)


class HealthCheck:
    def __init__(self, session: requests.Session, url: str, ttl: float) -> None:
        self.session = session
        self.url = url
        self.shown_url = without_credentials(url)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._error: str | None = None

    def status(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for /health."""
        with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl:
                self._error = probe(self.session, self.url)
                self._checked_at = time.monotonic()
            error = self._error
        if error is None:
            return 200, {"status": "healthy", "target_url": self.shown_url}
        return 503, {"status": "unhealthy", "target_url": self.shown_url, "error": f"Health check failed: {error}",
                     "target": describe_host(self.url)}
