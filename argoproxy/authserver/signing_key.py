"""The key the proxy signs its access tokens with: an EC P-256 key (ES256, joserfc), made by the first replica that
needs one and kept in the grant store, so that every replica signs and verifies with the same key; its public half
is the JWKS at /oauth/jwks."""

from __future__ import annotations

import json
import threading
from typing import Any

from joserfc.jwk import ECKey, KeySet

from argoproxy.authserver.grant_store import GrantStore

ALGORITHM = "ES256"
KEY_NAME = "signing_key"
KEY_SECONDS = 10 * 365 * 86400.0


class SigningKey:
    def __init__(self, grants: GrantStore) -> None:
        self.grants = grants
        self._key: ECKey | None = None
        self._set: KeySet | None = None
        self._lock = threading.Lock()

    def key(self) -> ECKey:
        """The private key: the store's, made and kept there first when it holds none (the first replica wins)."""
        with self._lock:
            if self._key is None:
                made = ECKey.generate_key("P-256", private=True, auto_kid=True)
                self.grants.add(KEY_NAME, json.dumps(made.as_dict(private=True)), KEY_SECONDS)
                kept = self.grants.get(KEY_NAME)
                self._key = ECKey.import_key(json.loads(kept)) if kept else made
            return self._key

    def jwks(self) -> dict[str, Any]:
        public = self.key().as_dict(private=False)
        return {"keys": [{**public, "use": "sig", "alg": ALGORITHM}]}

    def key_set(self) -> KeySet:
        """The key as a key set, made once (every token at /mcp is verified with it)."""
        if self._set is None:
            self._set = KeySet([self.key()])
        return self._set
