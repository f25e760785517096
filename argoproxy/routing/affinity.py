"""Cache-aware routing (ROUTING_STRATEGY=cache_aware): the turns of one conversation go to the deployment that
already holds its prompt in its cache, and each key's conversations are its own.

A conversation is named by a digest of its leading messages: every message up to and including the first user
turn (the system prompt and the task), as the internal chat request has them, so a Responses request continued
with previous_response_id or a conversation, a Messages request and a chat request are routed alike. The digest
is keyed by the request's tenant (`tenant`): its key's team when it has one, else its key, so two keys sending
the same conversation have two digests, two hash orders and two notes, and neither can see or move the other's.
With auth off everyone is one tenant.

Each conversation has a home: the first deployment of a rendezvous-hash order over its digest (the same order on
every replica). A turn goes to the deployment noted for its conversation, else to its home, while that one has
room; past that, to the next of its order with room; when none has, to the least loaded. A turn served
anywhere but its home is noted there (`PrefixTable`), so the conversation stays where its cache now is: it
leaves a server only when that server has no room.

Room: a deployment with a limit (its server's slots) has room while a slot is free, as admission finds it
when it seats the request (admission/queue.py). Load balance is worth little there: its slots run side by
side, and a turn sent elsewhere reads the whole conversation again (with 8 agents on two 4-slot servers,
bounded-load hashing at 1.25x the mean sent a turn away whenever its server ran 3 requests and the other none).
A deployment without a limit has room while under LOAD_BOUND times the pool's mean load, and at least one
request over it (bounded-load consistent hashing; the mean is of small numbers).

Why the tenant's digest needs no secret of the install: a note is found only by its own digest and owner, and
only its own tenant's notes (or one unused for FORGET_SECONDS) ever take its place, so knowing another tenant's
order teaches nothing of its history and gives no way to move it. A key's digest is keyed by the key itself
(no other client can compute it); a team's by its name.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from argoproxy.jsonfast import dumps
from argoproxy.pipeline.call import Call
from argoproxy.admission import Admission
from argoproxy.shared_cells import SharedCells

PROMPT_CHARS = 8192  # of a legacy completion's prompt: its head names the conversation
LOAD_BOUND = 1.25  # a deployment without a limit takes a conversation while under 1.25x the pool's mean load
ONE_TENANT = bytes(32)  # auth off: every client's conversations are one tenant's

# The prefix table: BUCKETS x WAYS notes of conversations served away from their home, each
# (digest, owner, deployment + 1, last used in ms).
BUCKETS, WAYS = 1024, 8
OWN_WAYS = 4  # the most notes one tenant keeps in a bucket: past that its newest take its oldest's place
FORGET_SECONDS = 3600.0  # a note unused this long is free for any tenant (its server's cache is long gone)
N_TAG, N_OWNER, N_DEP, N_USED, N_WIDTH = range(5)


@dataclass(slots=True)
class Turn:
    """One request's conversation, as cache-aware routing places it."""
    tag: int  # its digest, keyed by its tenant
    owner: int  # its tenant, as notes name it
    prefer: int  # the deployment it should go to; -1: the least loaded (none of its order has room)
    home: int  # the first deployment of its hash order


class CacheAware:
    """Routing's use of it (routing/seating.py): `turn` before a request is seated, `seated` once it is."""

    def __init__(self, name: str, auth: bool, cells: SharedCells | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.table = PrefixTable(name, cells, clock)
        self.auth = auth

    def turn(self, call: Call, admission: Admission, deps: Sequence[int],
             tried: set[int] | frozenset[int]) -> Turn | None:
        """Where the call's turn should go; None: nowhere in particular (one deployment, nothing to go by)."""
        if len(deps) < 2:
            return None
        key = tenant(call, self.auth)
        tag = prefix_tag(call.plan.body, key)
        if not tag:
            return None
        owner = owner_of(key)
        return Turn(tag, owner, *preferred(admission, self.table, deps, tried, tag, owner))

    def seated(self, turn: Turn, dep: int) -> None:
        self.table.note(turn.tag, turn.owner, dep, turn.home)


def tenant(call: Call, auth: bool) -> bytes:
    """Whose conversation a request continues: the key its digests are keyed with (32 bytes)."""
    if not auth:
        return ONE_TENANT
    team_key = call.plan.team_key
    team = team_key.team if team_key is not None else ""  # `keys create --team`: the team's conversations
    if team:
        return _tenant(b"team\0" + team.encode(errors="surrogatepass"))
    req = call.client.request
    key = req.presented_keys[0] if req is not None and req.presented_keys else ""
    return _tenant(b"key\0" + key.encode(errors="surrogatepass"))


def _tenant(name: bytes) -> bytes:
    return hashlib.blake2b(name, digest_size=32, person=b"cot-proxy-tenant").digest()


def owner_of(tenant_key: bytes) -> int:
    """The tenant as its notes name it (56 bits: an int64 cell)."""
    return int.from_bytes(tenant_key[:7], "big")


def prefix_tag(body: dict[str, Any], tenant_key: bytes) -> int:
    """The digest of the request's conversation, keyed by its tenant; 0: nothing to go by (no messages or
    prompt)."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        end = next((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
                   len(messages) - 1)
        return _digest(dumps(messages[:end + 1]), tenant_key)
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        # a completion cannot say: its head decides (a lone surrogate, which JSON allows, kept as it came)
        return _digest(prompt[:PROMPT_CHARS].encode(errors="surrogatepass"), tenant_key)
    return 0


def _digest(data: bytes, tenant_key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=7, key=tenant_key).digest(), "big") or 1


def hash_order(deps: Sequence[int], tag: int) -> list[int]:
    """The conversation's rendezvous-hash order of the deployments: the same on every replica."""
    return sorted(deps, key=lambda d: hashlib.blake2b(f"{tag}:{d}".encode(), digest_size=8).digest())


def preferred(admission: Admission, table: PrefixTable, deps: Sequence[int], tried: set[int] | frozenset[int],
              tag: int, owner: int) -> tuple[int, int]:
    """(the deployment this turn should go to, -1: the least loaded, as none of its order has room; the
    conversation's home). A deployment with a limit is preferred whatever its load: admission seats the request
    there only while it has a free slot."""
    order = hash_order(deps, tag)
    candidates = [d for d in order if d not in tried]
    if len(candidates) < 2:
        return -1, order[0]
    loads = dict(zip(candidates, admission.loads(candidates)))
    mean = (sum(used for used, _ in loads.values()) + 1) / len(candidates)
    cap = max(math.ceil(LOAD_BOUND * mean), math.ceil(mean) + 1)

    def fits(dep: int) -> bool:
        used, limit = loads[dep]
        return limit > 0 or used + 1 <= cap

    noted = table.find(tag, owner)
    if noted in loads and fits(noted):
        return noted, order[0]
    return next((d for d in candidates if fits(d)), -1), order[0]


class PrefixTable:
    """Where each conversation served away from its home went, shared by the workers (argoproxy/shared_cells.py):
    set-associative, BUCKETS buckets of WAYS notes. A new note takes an empty or forgotten way, else its own
    tenant's least recently used one; never another tenant's live note (then it is not kept, and the next turn
    goes by its hash order)."""

    def __init__(self, name: str, cells: SharedCells | None = None, clock: Callable[[], float] = time.time) -> None:
        self.cells = cells or SharedCells(f"affinity-v1-{name}.cells", BUCKETS * WAYS * N_WIDTH)
        self.clock = clock

    def find(self, tag: int, owner: int) -> int:
        """The deployment that served the conversation last, away from its home; -1: none noted."""
        c = self.cells.cells
        note = self._note(c, tag, owner)
        if note < 0:
            return -1
        dep = int(c[note + N_DEP]) - 1
        return dep if c[note + N_TAG] == tag else -1  # a writer clears the digest first: a note being replaced

    def note(self, tag: int, owner: int, dep: int, home: int) -> None:
        """The conversation's turn went to `dep`: noted, unless that is its home (then a note of it goes)."""
        c = self.cells.cells
        now = int(self.clock() * 1000)
        note = self._note(c, tag, owner)
        if note < 0 and dep == home:
            return  # the common case: at home, nothing noted, no lock
        if note >= 0 and dep != home and c[note + N_DEP] == dep + 1:
            c[note + N_USED] = now  # one cell: no lock
            return
        with self.cells.lock() as c:
            note = self._note(c, tag, owner)
            if dep == home:
                if note >= 0:
                    c[note + N_TAG] = 0
                return
            if note < 0:
                note = self._way(c, tag, owner, now)
                if note < 0:
                    return
            c[note + N_TAG] = 0  # a lock-free reader sees no note rather than a torn one
            c[note + N_OWNER], c[note + N_DEP], c[note + N_USED] = owner, dep + 1, now
            c[note + N_TAG] = tag

    def _note(self, c: memoryview, tag: int, owner: int) -> int:
        start = (tag % BUCKETS) * WAYS * N_WIDTH
        for note in range(start, start + WAYS * N_WIDTH, N_WIDTH):
            if c[note + N_TAG] == tag and c[note + N_OWNER] == owner:
                return note
        return -1

    def _way(self, c: memoryview, tag: int, owner: int, now: int) -> int:
        """The way a new note takes: an empty or forgotten one while the tenant holds fewer than OWN_WAYS of the
        bucket, else the tenant's own least recently used; -1: only other tenants' live notes."""
        forgotten = now - int(FORGET_SECONDS * 1000)
        free, own, held = -1, -1, 0
        start = (tag % BUCKETS) * WAYS * N_WIDTH
        for note in range(start, start + WAYS * N_WIDTH, N_WIDTH):
            if c[note + N_TAG] == 0 or c[note + N_USED] < forgotten:
                free = note if free < 0 else free
            elif c[note + N_OWNER] == owner:
                held += 1
                own = note if own < 0 or c[note + N_USED] < c[own + N_USED] else own
        return own if held >= OWN_WAYS or free < 0 else free
