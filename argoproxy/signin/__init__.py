"""Sign-in with an OpenID Connect provider (OIDC_ISSUER, docs/signin.md): the provider's discovery document and
keys, the authorization-code flow with PKCE, state and nonce, console sessions in the key store, their CSRF
tokens, and who a console request is (the principal).

- provider.py: the provider's discovery document and JWKS, fetched with requests and cached (refreshed when a
  read fails or an unknown key id arrives).
- tokens.py: the code exchanged for tokens (Authlib's OAuth2Session) and the ID token verified (joserfc: signature
  against the provider's keys, issuer, audience, expiry, nonce, azp): no JWT or OIDC code of our own.
- sessions.py: console sessions (an opaque random id in an HttpOnly cookie, stored by its digest, idle and absolute
  lifetimes, a CSRF token each) and the cookies' spelling.
- principal.py: Principal and principal_of (the admin key as `Authorization: Bearer`, or a console session).
- pages.py: the routes /ui/auth/login, /ui/auth/callback, /ui/auth/me and POST /ui/logout, the own pages'
  (observe/own_pages.py) kinds, served without a key when auth is on.
- resource.py: /mcp as an OAuth protected resource (docs/mcp-auth.md): its metadata (RFC 9728), the challenge of a
  call without credentials, and what the issuer offers MCP clients (said at start).
- access_tokens.py: access tokens at /mcp (a JWT against the JWKS, or the proxy's own key when argoproxy/authserver/
  issued it; else introspection, cached) made the person's KeyRecord, with their team's limits.
- introspection.py: opaque tokens asked of the issuer (RFC 7662), the answers kept by digest (active and refused
  apart) and the calls bounded per worker (a rate, a burst, a number at once; over it a 503 with Retry-After).
- setup.py: `cot-proxy signin setup` (`./run_app.sh signin setup`): sign-in's settings asked in a terminal, the
  issuer's discovery checked, written into the config.

May import: the shared modules, config, edge, people, teamkeys.
"""
