"""The MCP revisions the gateway speaks and what it says of itself."""

from __future__ import annotations

from argoproxy import __version__

HANDSHAKE_VERSION = "2025-11-25"  # the newest revision with the initialize handshake: what the proxy asks servers
# Revisions a client may initialize with (the proxy answers in the one the client asked for when it knows it,
# else in its newest); a request's MCP-Protocol-Version header names one of them or of STATELESS_VERSIONS.
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
STATELESS_VERSIONS = ("2026-07-28",)  # no handshake: each request carries its revision in `_meta`
VERSIONS = (*HANDSHAKE_VERSIONS, *STATELESS_VERSIONS)  # every revision spoken, oldest first (server/discover)
CLIENT_INFO = {"name": "cot_proxy", "version": __version__}
SERVER_INFO = {"name": "cot_proxy", "title": "cot_proxy MCP gateway", "version": __version__}
