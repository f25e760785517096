"""The OpenID provider as discovery describes it: its endpoints and its signing keys, fetched with requests and
cached; a document whose `issuer` is not OIDC_ISSUER is refused (a look-alike provider's)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests

from argoproxy.errors import ProxyError

DISCOVERY_PATH = "/.well-known/openid-configuration"
DOCUMENT_SECONDS = 3600.0  # the discovery document is read again after this (or when a read with it fails)
KEYS_AGAIN_SECONDS = 60.0  # an unknown key id fetches the JWKS again, at most this often (key rotation)
TIMEOUT = 10.0
MOST_BYTES = 1 << 20  # a discovery document or a JWKS larger than this is no provider's


class OpenIdProvider:
    def __init__(self, issuer: str, session: requests.Session | None = None) -> None:
        self.issuer = issuer
        self.session = session or requests.Session()
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None
        self._read_at = 0.0
        self._keys: dict[str, Any] | None = None
        self._keys_at = 0.0

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None or time.monotonic() - self._read_at > DOCUMENT_SECONDS:
                document = self._fetch(self.issuer.rstrip("/") + DISCOVERY_PATH)
                # its issuer as OIDC_ISSUER says it, or with a final '/' (Auth0's): ID tokens carry the document's
                said = document.get("issuer")
                if not isinstance(said, str) or said.rstrip("/") != self.issuer.rstrip("/"):
                    raise unavailable(f"its discovery document names issuer {str(document.get('issuer'))[:200]!r}, "
                                      f"not OIDC_ISSUER {self.issuer!r}")
                for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(name), str):
                        raise unavailable(f"its discovery document has no {name}")
                self._document, self._read_at = document, time.monotonic()
            return self._document

    def endpoint(self, name: str) -> str | None:
        value = self.document().get(name)
        return value if isinstance(value, str) else None

    def keys(self, fresh: bool = False) -> dict[str, Any]:
        """The provider's JWKS; `fresh`: read again (an ID token signed by a key not in it), at most once a minute."""
        with self._lock:
            due = fresh and time.monotonic() - self._keys_at > KEYS_AGAIN_SECONDS
            if self._keys is None or due:
                self._keys, self._keys_at = None, time.monotonic()
        if self._keys is None:
            keys = self._fetch(self.document()["jwks_uri"])
            if not isinstance(keys.get("keys"), list):
                raise unavailable("its JWKS lists no keys")
            self._keys = keys
        return self._keys

    def forget(self) -> None:
        """A read with the cached document failed: read it again next time."""
        with self._lock:
            self._document = None

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            with self.session.get(url, timeout=TIMEOUT, stream=True, headers={"Accept": "application/json"}) as got:
                data = got.raw.read(MOST_BYTES + 1, decode_content=True)
                status = got.status_code
        except requests.RequestException as exc:
            raise unavailable(unreachable(exc)) from None
        if status != 200 or len(data) > MOST_BYTES:
            raise unavailable(f"answered {status} for {url}" if status != 200 else f"sent over {MOST_BYTES} bytes")
        try:
            document = json.loads(data)
        except ValueError:
            raise unavailable(f"sent no JSON at {url}") from None
        if not isinstance(document, dict):
            raise unavailable(f"sent no JSON object at {url}")
        return document


def unreachable(exc: requests.RequestException, what: str = "") -> str:
    """Why the provider (or `what` of it) was not reached: the environment's proxy named when it was the one that
    failed (HTTPS_PROXY set, the provider not in NO_PROXY), not the provider blamed for it."""
    if isinstance(exc, requests.exceptions.ProxyError):
        return (f"{what}cannot be reached through the proxy the environment names (HTTPS_PROXY/HTTP_PROXY; NO_PROXY "
                f"lists hosts reached directly)")
    return f"{what}cannot be reached ({type(exc).__name__})"


def unavailable(why: str) -> ProxyError:
    return ProxyError(502, f"The sign-in provider (OIDC_ISSUER) {why}; try again later.", type="server_error",
                      code="signin_provider_unavailable")
