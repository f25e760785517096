"""Talking to upstreams: the pooled client with its retries and transport errors (client.py), corporate
proxies as requests decides them, upstream URLs, reachability probes (probe.py), the journal's tap on a
body (body_tap.py), SSE framing, OpenAI-shaped answers relayed, and image inlining.

Rule: nothing here knows about clients, routes or the pipeline.

May import: the shared modules.
Known exception: client.py imports fastpath/pool.py lazily, when FAST_PATH is on (the fence's one way in
for upstream calls).
"""
