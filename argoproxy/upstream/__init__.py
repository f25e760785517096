"""Talking to upstreams: the pooled client with its retries and transport errors (client.py), corporate
proxies as requests decides them, upstream URLs, which headers cross, SSE framing, OpenAI-shaped answers
relayed, and image inlining.

Rule: nothing here knows about clients, routes or the pipeline (it imports only config and core modules)."""
