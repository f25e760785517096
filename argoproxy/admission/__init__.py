"""Admission: whether and when a request goes upstream, once its guard let it in (docs/routing.md, "Admission").

- queue.py: each deployment's concurrency limit and the weighted fair queue in front of it (`Admission`), fair in
  time and in space, shared by the workers (its flows' cells: flow_table.py); cells.py: where its state sits in the
  cells the workers share, and a killed worker's slots given back; wakeups.py: a waiting request woken when its
  row changes, on any worker.
- key_limits.py: per-client-key requests and tokens per minute (KEY_LIMITS), counted across workers.
- waits.py: how long each key's requests waited lately, for the status page.

Routing seats a request through these (routing/seating.py: its key, its cost by the meter, its bound, its
client); nothing else knows their insides: the rest of the product imports this room by its face (the names below,
each read from its module on first use: argoproxy/room_face.py), never a module inside.

May import: the shared modules, config, meter, pipeline, teamkeys.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argoproxy.admission.cells import release_dead_worker as release_dead_worker
    from argoproxy.admission.key_limits import KeyLimiter as KeyLimiter
    from argoproxy.admission.queue import Admission as Admission
    from argoproxy.admission.queue import Departed as Departed
    from argoproxy.admission.queue import Seat as Seat
    from argoproxy.admission.waits import RECENT_SECONDS as RECENT_SECONDS
    from argoproxy.admission.waits import QueueWaits as QueueWaits
else:
    from argoproxy.room_face import lazy_face

    __getattr__ = lazy_face(__name__, {
        "release_dead_worker": "cells", "KeyLimiter": "key_limits", "Admission": "queue", "Departed": "queue",
        "Seat": "queue", "RECENT_SECONDS": "waits", "QueueWaits": "waits"})

__all__ = ["release_dead_worker", "KeyLimiter", "Admission", "Departed", "Seat", "RECENT_SECONDS", "QueueWaits"]
