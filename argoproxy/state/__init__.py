"""Stored conversation state, a service for the API doors that keep state (the Responses door's stored responses,
conversations and background runs; the Interactions door's interactions): records, stores, chains, retention and
bounds, background runs, the per-install seal key, each key seeing only its own. A door hands it its own shapes
(shapes.py's DoorShapes) and callbacks; nothing here reads a request, names a door or picks one: what a request
asks of the store, the door's routes and objects are the door's (fronts/responses/kept*.py,
fronts/interactions/kept.py), and fronts/kept.py hands the sequence what the doors keep.

- records.py: what is stored (a door's answer object with its input items; a conversation and its items), owners,
  ids (the door's prefix), the size a record counts for.
- store.py: the SQLite store (the embedded default, responses.db beside the team keys' keys.db).
- redis_store.py: the same interface in Redis (REDIS_URL), so any replica continues any chain.
- write_behind.py: SQLite writes batched just after their answers (gevent workers).
- chain.py: a request's history rebuilt from the store (a chain of stored objects, a conversation, references to
  stored items), cut at whole turns.
- keeper.py: a finished answer saved as the client gets it (whole, or at a stream's terminal event).
- background.py: background runs, their events kept for a follower, cancel, the caps.
- service.py: the worker's StateService over one store, which every door that keeps state shares.
- shapes.py: what a door tells this package of its API (DoorShapes).
- seal_key.py: the per-install key a door seals its own content with.

Folder rule: imports the shared modules, config, edge and pipeline (the call, its answers, the guard's handover);
never a door, the gateway or a provider (the doors call this package, not the other way round). Stored bodies are
never logged or journaled here.

May import: the shared modules, config, edge, pipeline.
"""
