"""The request sequence for the API routes (gateway.py: the sequence only) and what it is made of: its steps (the
plan, planning.py; the exchange with the upstream, exchange.py; answers relayed unparsed, relay.py; keepalives,
kept_alive.py; what a request reserves, read for the limits, request_reading.py), the call's phases, capability
adaptation (the capability table is capabilities.yaml), LLM_PARAMS and stream modes, think tags, stream <->
non-stream conversion, usage and what a request reserves of a token limit (reservation.py), and the models
inside batch work (keepalives, which write to the client's socket, are the edge's: edge/keepalive.py).

Rule: the transforms (think, streamconv, stream_usage, tokens, upstream_messages, answer_shape, adapt) and the
request's shape check (request_shape) are pure: objects in, objects out, no I/O; the wire is reached only
through argoproxy.upstream.

May import: the shared modules, config, spend, meter, upstream, teamkeys, edge.
The sequence reaches the API doors through an interface of its own (door_api.py; serve/build.py hands it the
doors' answer encoder), as it reaches routing, key budgets and stored Responses (collaborators.py, handed to the
Gateway when serve/build.py builds it) and providers (backend.py); routing knows the Gateway only as
collaborators.py's Sends.
"""
