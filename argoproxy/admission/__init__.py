"""Admission: whether and when a request goes upstream, once its guard let it in (docs/routing.md, "Admission").

- queue.py: each deployment's concurrency limit and the weighted fair queue in front of it (`Admission`), fair in
  time and in space, shared by the workers (its flows' cells: flow_table.py); cells.py: where its state sits in the
  cells the workers share, and a killed worker's slots given back; wakeups.py: a waiting request woken when its
  row changes, on any worker.
- key_limits.py: per-client-key requests and tokens per minute (KEY_LIMITS), counted across workers.
- waits.py: how long each key's requests waited lately, for the status page.

Routing seats a request through these (routing/seating.py: its key, its cost by the meter, its bound, its
client); nothing else knows their insides.

May import: the shared modules, config, meter, pipeline, teamkeys.
"""
