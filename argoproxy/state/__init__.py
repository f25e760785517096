"""Stateful Responses over every backend (issue 39): stored responses, `previous_response_id` chains,
conversations and background runs, each key seeing only its own. The Responses door (fronts/responses/) stays
a stateless translator; this package turns a stateful request into a stateless one before it (the chain's or
conversation's items put before the new input) and keeps what came back after it.

- records.py: what is stored (a response with its input items; a conversation and its items), owners, ids,
  the size a record counts for.
- store.py: the SQLite store (the embedded default, responses.db beside the team keys' keys.db).
- redis_store.py: the same interface in Redis (REDIS_URL), so any replica continues any chain.
- chain.py: a request's history rebuilt from the store (previous_response_id, conversation, item_reference),
  and `truncation: "auto"`.
- keeper.py: a finished response saved as the client gets it (whole, or at a stream's terminal event).
- background.py: `background: true` runs, their events kept for `starting_after`, cancel, the caps.
- routes.py: the state routes (GET/DELETE /v1/responses/{id}, input_items, cancel, /v1/conversations...).
- service.py: the worker's state (ResponsesState): the history put before a request, its answer kept.
- responses_door.py: what the core is handed of it (pipeline/collaborators.py's StoredResponses: the state and
  its routes), made by `responses_state` (serve/proxy.py hands it to the core's builder).

Folder rule: imports argoproxy.errors, argoproxy.jsonfast, argoproxy.turns, argoproxy.sqlite_files, argoproxy.fronts (front.py's
helpers), argoproxy.edge (http objects) and argoproxy.pipeline.call; never the gateway, the door or a provider
(they call this package through the interfaces they own, not the other way round). Stored bodies are never
logged or journaled here.

May import: the shared modules, config, edge, pipeline, fronts.
"""
