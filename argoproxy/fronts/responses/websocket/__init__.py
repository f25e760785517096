"""The Responses API over a WebSocket (`GET /v1/responses` upgraded; OpenAI's "WebSocket mode"): `response.create`
events in, the Responses stream's events out, one response after another on one connection.

Nothing here sends to an upstream: each `response.create` becomes the POST /v1/responses (`stream: true`) the
door would have been sent over HTTP and goes through the one door it is handed (serve/websocket_upgrade.py hands
it `Door.handle`), so auth, the guard, budgets, routing, metrics, journals and stored responses treat it as any
request, and the events sent are the SSE stream's own.

  session.py     the session's logic, without a socket: client events -> the door's requests, its answers ->
                 server events; the connection-local cache (previous_response_id with store false), warm-ups
                 (generate: false), errors as error events, and the close a refused key or a failure asks for
  frames.py      the WebSocket protocol over the client's socket (wsproto, sans-IO): the 101, messages, pings,
                 the close handshake; RFC 6455's close codes
  connection.py  one connection's life: the session driven over the frames, a response.create sent while one
                 runs answered with an error event, the idle and lifetime limits, the worker leaving (1001)
  places.py      the connections open, per key and in all, counted in cells every worker shares; a killed
                 worker's given back by the Gunicorn master
"""
