"""The MCP gateway: the MCP servers named in config (`mcp_servers`) behind `/mcp` on the proxy's port, with the
same keys as its models (docs/mcp.md).

- protocol.py: the revisions spoken and what the proxy says of itself; jsonrpc.py: one message read strictly,
  and the specification's errors.
- names.py: tools and prompts of every server as one server's (`git__status`, at most 64 characters),
  resources' URIs under their server's name; catalog.py: the listings gathered and renamed, a call taken to its
  server under its own name, the key's tool globs applied to both.
- stdio_server.py: one stdio server's process, handshake, restarts, and the ids of many clients' calls remapped
  onto its one pipe; supervisor.py: the one process per instance that owns them (a child of the Gunicorn master,
  started and stopped by launch.py) and the instance's sessions; link.py: a worker's way to it (a Unix socket).
  room.py: what a stdio server cannot reach (the proxy's processes, undumpable; by Landlock, the files its secrets
  are in, the cells and metrics its workers share, any process outside its own, and a change to a file but where
  it writes; the supervisor's socket, which answers the workers only).
  per_session.py: a `per_session: true` server's processes, one per client session, bounded; replicas.py: what a
  supervisor tells the others over Redis (a cancellation, a session's end, a response to a server's request).
- remote_server.py: one remote server's session, the same to the supervisor as a stdio server's process, over
  Streamable HTTP or the older HTTP+SSE (remote_sse.py; what both share: remote_http.py), with the credentials
  the proxy holds for it; event_stream.py: an SSE stream read, bounded.
- endpoint.py: `/mcp` and `/mcp/<server>` over Streamable HTTP (2025-11-25: initialize, Mcp-Session-Id, JSON
  answers, an SSE stream for a tool call that asks for progress, cancellation passed on); sessions.py: where its
  sessions are kept (the supervisor's, or with REDIS_URL Redis's, shared by the replicas); key_watch.py: a team key's
  tool call streamed over SSE ended once the key is revoked. stateless.py: revision 2026-07-28 at the same paths (no
  session: server/discover, `_meta` and the Mcp-Method and Mcp-Name headers on each request), bridged to the same calls.
- client_requests.py: the requests a server makes of its client while running a client's call (sampling,
  elicitation, roots), taken to that call's client (2025-11-25: on the call's SSE stream, its response POSTed back
  with the session's id; 2026-07-28: an input_required answer, the client's next request carrying the responses)
  and refused otherwise. Whose call it is: a remote Streamable HTTP server's comes on the call's own stream; a
  stdio server's pipe says nothing, so it is the one call in flight on that server's process, and refused when
  several are (a `per_session: true` server's process runs one session's calls).
- notices.py: what the servers send unasked (list changes, resource updates, log messages), fanned out by the
  supervisor to the streams listening, as each sees it; listening.py: those streams at the worker (a 2025-11-25
  session's GET stream, 2026-07-28's subscriptions/listen), each fed by a listen connection to the supervisor.
- recording.py: what a tool call leaves behind (ToolCall), handed to the hooks the proxy wires (serve/mcp_mount.py):
  the tool call series it registers in the proxy's metrics, an execute_tool span through the tracer's inner_span;
  journal_line.py: a journal line per call. limits.py: each call's deadline, result-size bound and price per server,
  and a team key's tool limits and dollar budget (teamkeys/tool_calls.py: its price held) before the call reaches its
  server. catalog.py holds every method that reaches a server to what the key's tool globs reach.
- Each person's own credentials (`auth: per_user`, `auth: token_exchange`; docs/mcp-credentials.md): per_user.py, a
  server's upstream session per person in the supervisor, with the token the worker hands it; person_tokens.py,
  whose a call is and what it carries (or the input_required round, -32042 or error that sends them to the console);
  connections.py, their tokens read and refreshed; connection_end.py, what a connection's end sets off (its tokens
  revoked at the authorization server, RFC 7009; the person's sessions ended in the supervisor); credential_vault.py, sealed with AES-GCM under
  CREDENTIALS_KEY_FILE (the rows: teamkeys/credential_store.py); connect_flow.py and oauth_discovery.py,
  /ui/connect/NAME's authorization code flow (its client: pre-registered, the proxy's Client ID Metadata Document,
  or registered) and the discovery before it; token_exchange.py, RFC 8693 at OIDC_ISSUER; oauth_http.py, the sessions
  all of these reach authorization servers with (the environment's proxies and CA bundle, never ~/.netrc).
- tool_search.py: `MCP_TOOL_SEARCH`, a search tool of the proxy's listed at /mcp instead of a catalog that would not
  fit a small model's window, its finds ranked by BM25 (rank_bm25) over the tools the key's globs allow.
- connection_states.py: what the console shows of a person's connections to per-person servers (never a token).

May import: the shared modules, config, edge, teamkeys.
"""
