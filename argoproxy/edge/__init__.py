"""The edge: what a client's request is, before anything goes upstream. The canonical path, one route per
request, request ids, the agent session a request names (agent_sessions.py), the proxy's own Request and Answer
objects, client keys, the model a request names,
which headers cross, the body read and parsed, the model allow-list, web pages' requests (web_pages.py; the OAuth routes
other sites' pages may read: cors.py), and the client's connection while its answer waits
(SSE keepalives and a departed client noticed: keepalive.py, handoff.py).

Rule: the edge decides and refuses, and does the client's side of the wire; it never talks to an upstream
(keepalive.py waits on one only through the callable it is handed) and never runs the pipeline.

May import: the shared modules, config, upstream, fastpath, teamkeys.
"""
