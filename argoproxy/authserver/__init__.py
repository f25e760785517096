"""The proxy as the OAuth 2.1 authorization server for MCP clients (docs/mcp-auth.md), when OIDC_ISSUER offers them
no client id of their own or MCP_OAUTH_SERVER=proxy: MCP clients register (RFC 7591) or name a Client ID Metadata
Document, the person signs in through the proxy's OIDC sign-in (argoproxy/signin/) and approves, and the proxy
issues its own JWT access tokens for `<PUBLIC_URL>/mcp` and refresh tokens (Authlib's server, joserfc).

- decision.py: whether the proxy is the authorization server (MCP_OAUTH_SERVER; auto reads the issuer's discovery).
- grant_store.py: clients, codes, refresh tokens and the signing key in the key store (SQLite or Redis).
- signing_key.py: the ES256 key, shared by the replicas through the store; its JWKS.
- clients.py: a client (Authlib's ClientMixin) and the proxy's checks of its metadata (redirect URIs and the rest).
- cimd.py: Client ID Metadata Documents fetched, bounded, from public addresses only.
- registration.py: dynamic client registration (Authlib's RFC 7591 endpoint), capped.
- oauth_requests.py: the proxy's Request as Authlib's requests, Authlib's answers as the proxy's Answer.
- server.py: Authlib's AuthorizationServer with the code grant (PKCE S256), refresh rotation, JWT access tokens.
- pages.py: the routes (metadata, /oauth/authorize with its consent page, /oauth/token, /oauth/register,
  /oauth/jwks), own pages served without a key.
- setup.py: the routes' answers for these settings, and the access tokens at /mcp told of the proxy's own.

May import: the shared modules, config, edge, people, teamkeys, signin.
"""
