"""People's tokens for `auth: per_user` MCP servers, sealed at rest (docs/mcp-credentials.md): AES-GCM
(cryptography's AESGCM, an authenticated cipher) under CREDENTIALS_KEY_FILE, a key kept apart from the key store
that holds the sealed rows (a copy of the store alone opens nothing). Each row is bound to its person and server
(the cipher's associated data): a row copied to another person's or server's place does not open."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from argoproxy.key_files import file_key

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
VERSION = b"\x01"  # the sealed form's first byte: another form later is told apart
PURPOSE = b"cot_proxy mcp credentials\x00"


@dataclass(frozen=True)
class Tokens:
    """What a person's connection to a server holds; repr shows no token."""
    access_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_at: float = 0.0  # epoch seconds; 0: the server said nothing
    token_endpoint: str = ""  # where it is refreshed (its authorization server's, checked when it was discovered)
    issuer: str = ""  # that authorization server
    client_id: str = ""
    scope: str = ""
    refresh_at: float = 0.0  # epoch seconds: refreshed from then on (0: REFRESH_AHEAD before expires_at)
    connected_at: float = 0.0  # epoch seconds: when the person connected (kept across refreshes; the console shows it)
    revocation_endpoint: str = ""  # where its tokens are revoked when the connection ends (RFC 7009), if offered

    @classmethod
    def of(cls, value: Any) -> Tokens | None:
        if not isinstance(value, dict) or not isinstance(value.get("access_token"), str):
            return None
        known = {k: value[k] for k in cls.__dataclass_fields__ if k in value}
        try:
            return cls(**known)
        except TypeError:
            return None


class Vault:
    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError("a credentials key is 32 bytes")
        self.cipher = AESGCM(key[:KEY_BYTES])

    def seal(self, person: str, server: str, tokens: Tokens) -> bytes:
        return self.seal_value(person, server, asdict(tokens))

    def open(self, person: str, server: str, sealed: bytes) -> Tokens | None:
        """The tokens, or None: sealed under another key, for another person or server, or changed."""
        return Tokens.of(self.open_value(person, server, sealed))

    def seal_value(self, person: str, server: str, value: dict[str, Any]) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode()
        return VERSION + nonce + self.cipher.encrypt(nonce, plain, _bound(person, server))

    def open_value(self, person: str, server: str, sealed: bytes) -> Any:
        if not sealed.startswith(VERSION) or len(sealed) < 1 + NONCE_BYTES + 16:
            return None
        nonce, body = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
        try:
            return json.loads(self.cipher.decrypt(nonce, body, _bound(person, server)))
        except (InvalidTag, ValueError):
            return None


def _bound(person: str, server: str) -> bytes:
    return PURPOSE + person.encode() + b"\x00" + server.encode()


def vault_at(path: str) -> Vault:
    """The vault under the key in `path` (CREDENTIALS_KEY_FILE), made 0600 when absent."""
    return Vault(file_key(Path(path).expanduser(), KEY_BYTES))
