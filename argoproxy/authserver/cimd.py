"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25): a client_id that is
an https URL names the document describing the client, fetched from there. The fetch is bounded (MOST_REGISTRATION
bytes, FETCH_SECONDS, no redirect followed) and reaches public addresses only: a host that resolves to a private,
loopback, link-local or otherwise non-global address is refused, before the request and again by the address the
connection reached (a name that changes its answer in between). Documents are kept KEEP_SECONDS per process.
Anyone may name a URL at /oauth/authorize before signing in, so the fetches are bounded per worker too (FETCHES a
second, a burst of FETCH_BURST, FETCHES_AT_ONCE under way: signin/introspection.py's OutboundBudget) and a refused URL
is answered from memory for REFUSED_SECONDS: the proxy cannot be made to fetch for whoever asks."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

import requests

from argoproxy.authserver.clients import MOST_REGISTRATION, McpClient, client_of, metadata_problem
from argoproxy.signin.introspection import OutboundBudget
from argoproxy.teamkeys.lookup_cache import LRU

FETCH_SECONDS = 5.0
KEEP_SECONDS = 300.0
MOST_KEPT = 1024
REFUSED_SECONDS = 60.0
FETCHES, FETCH_BURST, FETCHES_AT_ONCE = 2.0, 10, 4


class DocumentRefused(ValueError):
    """A document that names no client the proxy takes: the message says why (no URL's secrets in it)."""


def is_document_url(client_id: str) -> bool:
    return client_id.startswith("https://")


def resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


def public(address: str) -> bool:
    return ipaddress.ip_address(address.split("%")[0]).is_global


class Documents:
    def __init__(self, scope: str, resolver: Callable[[str, int], list[str]] = resolve,
                 session: requests.Session | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.scope, self.resolver, self.clock = scope, resolver, clock
        self.session = session or requests.Session()
        self.session.trust_env = False  # the document's host is reached directly: no environment proxy between
        self._kept: LRU[tuple[McpClient, float]] = LRU(MOST_KEPT)
        self._refused: LRU[tuple[str, float]] = LRU(MOST_KEPT)  # apart: refusals cannot push out a client in use
        self._lock = threading.Lock()
        self.budget = OutboundBudget(FETCHES, FETCH_BURST, FETCHES_AT_ONCE, clock, over=lambda: DocumentRefused(
            "too many new client metadata documents to fetch now: try again in a few seconds"))

    def client(self, url: str) -> McpClient:
        held, refused = self._kept.get(url), self._refused.get(url)
        if held is not None and self.clock() - held[1] < KEEP_SECONDS:
            return held[0]
        if refused is not None and self.clock() - refused[1] < REFUSED_SECONDS:
            raise DocumentRefused(refused[0])
        with self.budget.call():  # over it: refused now, not remembered (the URL may be good)
            try:
                client = self.fetched(url)
            except DocumentRefused as exc:
                with self._lock:
                    self._refused.put(url, (str(exc), self.clock()))
                raise
        with self._lock:
            self._kept.put(url, (client, self.clock()))
        return client

    def fetched(self, url: str) -> McpClient:
        self.checked_url(url)
        try:
            with self.session.get(url, timeout=FETCH_SECONDS, stream=True, allow_redirects=False,
                                  headers={"Accept": "application/json"}) as got:
                peer = peer_address(got)
                if peer is not None and not public(peer):
                    raise DocumentRefused("its host reached a non-public address")
                if got.status_code != 200:
                    raise DocumentRefused(f"fetching it answered {got.status_code} (redirects are not followed)")
                body = self.read_within(got, self.clock() + FETCH_SECONDS)
        except requests.RequestException as exc:
            raise DocumentRefused(f"it could not be fetched ({type(exc).__name__})") from None
        if len(body) > MOST_REGISTRATION:
            raise DocumentRefused(f"it is larger than {MOST_REGISTRATION} bytes")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            raise DocumentRefused("it is no JSON") from None
        if not isinstance(document, dict) or document.get("client_id") != url:
            raise DocumentRefused("its client_id is not the URL it was fetched from")
        document.setdefault("token_endpoint_auth_method", "none")
        if document["token_endpoint_auth_method"] != "none":
            raise DocumentRefused("token_endpoint_auth_method must be none (no secret can be shared with a document)")
        problem = metadata_problem(document)
        if problem:
            raise DocumentRefused(problem)
        return client_of(url, document, self.scope)

    def read_within(self, got: requests.Response, deadline: float) -> bytes:
        """Up to MOST_REGISTRATION + 1 bytes of the body, whatever has arrived at each read, by `deadline` (give or
        take one read's timeout): the per-read timeout alone lets a host that drips a byte a second hold it for
        hours."""
        parts: list[bytes] = []
        size = 0
        while size <= MOST_REGISTRATION:
            piece = got.raw.read1(MOST_REGISTRATION + 1 - size, decode_content=True)
            if not piece:
                break
            parts.append(piece)
            size += len(piece)
            if self.clock() > deadline:
                raise DocumentRefused(f"it was not sent within {FETCH_SECONDS:g} seconds")
        return b"".join(parts)

    def checked_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port or 443
        except ValueError:
            raise DocumentRefused("its client_id is no URL") from None
        if (len(url) > 2048 or parts.scheme != "https" or not parts.hostname or parts.username is not None
                or parts.fragment or parts.path in ("", "/")):
            raise DocumentRefused("a client_id URL is https, with a path, without user info or fragment")
        try:
            addresses = self.resolver(parts.hostname, port)
        except (OSError, UnicodeError):
            raise DocumentRefused("its host does not resolve") from None
        if not addresses or not all(public(a) for a in addresses):
            raise DocumentRefused("its host is not a public address (private, loopback and link-local ones are refused)")


def peer_address(got: requests.Response) -> str | None:
    """The address the connection reached, where urllib3 shows it (None: not seen)."""
    try:
        return str(got.raw.connection.sock.getpeername()[0])
    except (AttributeError, OSError, TypeError, IndexError):
        return None
