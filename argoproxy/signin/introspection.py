"""Opaque access tokens asked of the issuer (RFC 7662, docs/mcp-auth.md), bounded per worker so that a client
cannot make the proxy hammer the provider: each distinct junk token would cost one introspection call.

- Answers are kept by the token's digest until min(their exp, INTROSPECTED_SECONDS): active ones and refused ones
  apart, each with LRU eviction, so a flood of junk pushes out only other junk, never a token in use (as the team
  keys' cache does, teamkeys/lookup_cache.py). A refused token sent again is answered from its entry.
- Calls to the issuer: at most RATE a second (a burst of BURST: a token bucket) and IN_FLIGHT at once. A token over
  that gets 503 with Retry-After, not 401: it may be good, and a client that took a 401 for a bad token would
  drop it and send its person through sign-in again; a cached token is never held back by the bound."""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import requests
from authlib.integrations.requests_client import OAuth2Session

from argoproxy.errors import ProxyError
from argoproxy.signin.provider import TIMEOUT, OpenIdProvider, unavailable, unreachable
from argoproxy.teamkeys.lookup_cache import LRU

INTROSPECTED_SECONDS = 60.0  # an answer is kept this long at most (a revoked token: accepted so long)
ACTIVE_ENTRIES, REFUSED_ENTRIES = 4096, 1024
RATE, BURST, IN_FLIGHT = 10.0, 20, 8  # introspection calls a second, at once after a pause, at the same time
MOST_ANSWER = 64 * 1024


class OutboundBudget:
    """The outside calls this worker may make for what clients send (the issuer's introspections here; the client
    metadata documents of authserver/cimd.py): a token bucket of `rate` a second holding at most `burst`, and at most
    `in_flight` under way; past them `over()` is raised."""

    def __init__(self, rate: float = RATE, burst: int = BURST, in_flight: int = IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic, over: Callable[[], Exception] | None = None) -> None:
        self.rate, self.burst, self.in_flight, self.clock = rate, burst, in_flight, clock
        self.over = over or busy
        self._tokens, self._at, self._running = float(burst), clock(), 0
        self._lock = threading.Lock()

    @contextmanager
    def call(self) -> Iterator[None]:
        """One call's share, or `over()` (the 503 that answers the token) instead."""
        with self._lock:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1 or self._running >= self.in_flight:
                raise self.over()
            self._tokens -= 1
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1


def busy() -> ProxyError:
    return ProxyError(503, "Too many new access tokens to check at the issuer now (each is introspected once): try "
                           "again in a second.", type="server_error", code="introspection_busy",
                      headers={"Retry-After": "1"})


class Introspection:
    """The issuer's answers for opaque tokens, kept and bounded as the module says."""

    def __init__(self, provider: OpenIdProvider, client: tuple[str, str], clock: Callable[[], float] = time.time,
                 budget: OutboundBudget | None = None) -> None:
        self.provider, self.client, self.clock = provider, client, clock
        self.budget = budget or OutboundBudget()
        self._active: LRU[tuple[dict[str, Any], float]] = LRU(ACTIVE_ENTRIES)
        self._refused: LRU[tuple[dict[str, Any], float]] = LRU(REFUSED_ENTRIES)
        self._lock = threading.Lock()
        self.calls = 0  # answers asked of the issuer (tests count them)

    def answer(self, token: str) -> dict[str, Any]:
        """The issuer's answer for `token` (kept, or asked now within the budget)."""
        key, now = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest(), self.clock()
        held = self._active.get(key) or self._refused.get(key)
        if held is not None and held[1] > now:
            return held[0]
        with self.budget.call():
            answer = self.ask(token)
        kept = (answer, min(expiry(answer), now + INTROSPECTED_SECONDS))
        with self._lock:
            (self._active if answer.get("active") is True else self._refused).put(key, kept)
            (self._refused if answer.get("active") is True else self._active).pop(key)
        return answer

    def ask(self, token: str) -> dict[str, Any]:
        endpoint = self.provider.endpoint("introspection_endpoint")
        if endpoint is None:
            raise unavailable("offers no introspection_endpoint for tokens that are not JWTs")
        client_id, secret = self.client
        self.calls += 1
        try:
            with OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic") as session:
                got = session.introspect_token(endpoint, token=token, token_type_hint="access_token", timeout=TIMEOUT)
                body = got.content[:MOST_ANSWER + 1]
                answer = got.json() if got.status_code == 200 and len(body) <= MOST_ANSWER else None
        except requests.RequestException as exc:
            raise unavailable(unreachable(exc, "introspection endpoint ")) from None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise unavailable("introspection endpoint sent no JSON object")
        return answer


def expiry(answer: Mapping[str, Any]) -> float:
    """An introspection answer's `exp` (none: never)."""
    exp = answer.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else float("inf")
