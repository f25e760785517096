"""Talking to upstreams: the client's policy, its retries, replays and transport errors (client.py), over a
one-method transport (transport.py; the stock one, requests as its authors intend: stock.py) whose failures are
one family (failures.py; urllib3's exceptions mapped into it by type: urllib3_failures.py), corporate
proxies as requests decides them, upstream URLs, reachability probes (probe.py), the bounds on answers the proxy
reads for itself from servers it chose (answer_bounds.py), whether a server says it is a local one (local_server.py:
llama.cpp's /props, vLLM's /version, Ollama's /api/version; standard library only, for Gunicorn's master), the
journal's tap on a body (body_tap.py), SSE framing,
OpenAI-shaped answers relayed, and image inlining.

Rule: nothing here knows about clients, routes or the pipeline.

May import: the shared modules.
The fast path's transport (fastpath/transport.py) is handed to the client by serve/build.py when FAST_PATH is
on (Upstream's `transport`): nothing here imports fastpath.
"""
