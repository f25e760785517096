"""What the end of a person's connection sets off once its row is deleted (connections.py's `end`: their Disconnect,
an admin's revocation; docs/mcp-credentials.md):

- its tokens revoked at the authorization server that issued them (RFC 7009), where that server's metadata, read when
  the person connected, named a `revocation_endpoint`: the refresh token, then the access token, by Authlib's client,
  best effort, on a thread of its own (off the answer's path), each request within REVOKE_SECONDS, no redirect
  followed, no token in a log line;
- the person's upstream sessions at those servers ended in this replica's supervisor (per_user.py's end_person,
  over the link). Another replica's supervisor is told the same by its own worker when it next finds no connection
  for the person there (person_tokens.py): no channel of its own is needed."""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import Any


from argoproxy.mcp.credential_vault import Tokens
from argoproxy.mcp.launch import SOCKET_ENV
from argoproxy.mcp.link import Link, SupervisorGone
from argoproxy.mcp.oauth_http import OAuthClient
from argoproxy.mcp.remote_http import origin_of

log = logging.getLogger("cot_proxy")

REVOKE_SECONDS = 5.0
TELL_SECONDS = 5.0  # the supervisor's answer to an end_person (it ends the sessions before answering)


def revoke(tokens: Tokens, secret: str = "") -> list[str]:
    """The connection's tokens revoked at its authorization server; the hints ("refresh_token", "access_token") of
    the requests it took (HTTP 200, RFC 7009 §2.2)."""
    url, took = tokens.revocation_endpoint, list[str]()
    if not url:
        return took
    client = OAuthClient(tokens.client_id, secret or None,
                         revocation_endpoint_auth_method="client_secret_post" if secret else "none")
    try:
        for hint, token in (("refresh_token", tokens.refresh_token), ("access_token", tokens.access_token)):
            if token:
                took += [hint] if _revoked(client, url, hint, token) else []
    finally:
        client.close()
    if took:
        log.info("mcp: an ended connection's %s revoked at %s", " and ".join(took), origin_of(url))
    return took


def _revoked(client: OAuthClient, url: str, hint: str, token: str) -> bool:
    try:
        with client.revoke_token(url, token=token, token_type_hint=hint, timeout=REVOKE_SECONDS,
                                 allow_redirects=False) as resp:
            status = int(resp.status_code)
            said = _error(resp) if status != 200 else ""
    except Exception as exc:  # noqa: BLE001 - requests' and Authlib's errors may hold the URL: said by kind
        log.info("mcp: revoking a person's %s at %s failed (%s)", hint, origin_of(url), type(exc).__name__)
        return False
    if status != 200:  # (unsupported_token_type, from a server that cannot revoke a JWT access token, among them)
        log.info("mcp: %s answered HTTP %s to revoking a person's %s", origin_of(url), f"{status} {said}".strip(), hint)
    return status == 200


def _error(resp: Any) -> str:
    """The OAuth error code of a refusal (RFC 7009 §2.2.1), bounded; "" when it says none."""
    try:
        said = resp.json()
    except (ValueError, RecursionError):  # (JSON nested past the recursion limit)
        return ""
    error = said.get("error") if isinstance(said, dict) else None
    return "".join(c for c in str(error)[:40] if c.isalnum() or c in "_-") if error else ""


def revoke_later(tokens: Tokens, secret: str = "") -> threading.Thread:
    """revoke() on a thread of its own (a greenlet under gevent): the disconnect's answer does not wait for it."""
    thread = threading.Thread(target=revoke, args=(tokens, secret), daemon=True, name="mcp-revoke")
    thread.start()
    return thread


def end_sessions(person: str, servers: list[str]) -> bool:
    """The person's upstream sessions at `servers` ended in this replica's supervisor; False: none to tell (no
    supervisor in this process's environment) or it could not be reached."""
    path = os.environ.get(SOCKET_ENV, "")
    if not path or not person or not servers:
        return False
    try:
        _link(path).ask({"op": "end_person", "person": person, "servers": servers}, TELL_SECONDS)
    except SupervisorGone:
        return False
    return True


@functools.cache
def _link(path: str) -> Link:
    return Link(path)
