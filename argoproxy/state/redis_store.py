"""The response store in Redis (REDIS_URL): the same interface as store.py, so replicas sharing the Redis
continue each other's chains and conversations, and count one bound.

Layout, under PREFIX: resp:<id> (the record's JSON; expires with RESPONSES_RETENTION), cancel:<id> (a cancel
asked), beat:<id> (a background run's heartbeat), events:<id> (a streamed background run's events), conv:<id> (the conversation's JSON and owner), items:<conv> (a list of item JSON), item (hash: item id
-> conversation id), size (hash: object id -> bytes it counts for), bytes:<owner> and bytes (the counts the
bounds read), expiry (sorted set: "<id>\\x1f<owner>" by expiry time; each write sweeps what passed, giving its
bytes back), live and live:<owner> (sorted sets of running background responses by heartbeat).

A write reserves its bytes first (INCRBY on both counts) and gives them back when that passes a bound, so two
replicas racing for the last room can both be refused for a moment, never both pass.
"""

from __future__ import annotations

import json
import time
from typing import Any

from argoproxy.jsonfast import dumps
from argoproxy.state.records import StoredConversation, StoredResponse, StoreFull, encoded

PREFIX = "cot_proxy:rs:"
SEP = "\x1f"
TIMEOUT = 2.0  # seconds for a connect or a reply


def connect(url: str) -> Any:
    import redis
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


# KEYS: size hash, the owner's bytes, all bytes, expiry; ARGV: object id, its size, the two bounds, its expiry
# member and time. Returns {1, 0, delta} when counted, {0, 1|2, delta} when the owner's (1) or the store's (2)
# bound refuses it.
RESERVE = """
local delta = tonumber(ARGV[2]) - tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if delta > 0 then
  if tonumber(redis.call('GET', KEYS[2]) or '0') + delta > tonumber(ARGV[3]) then return {0, 1, delta} end
  if tonumber(redis.call('GET', KEYS[3]) or '0') + delta > tonumber(ARGV[4]) then return {0, 2, delta} end
end
redis.call('INCRBY', KEYS[2], delta)
redis.call('INCRBY', KEYS[3], delta)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[5])
return {1, 0, delta}
"""
SWEEP_EVERY = 1.0  # seconds between a worker's sweeps of what expired


class RedisResponseStore:
    def __init__(self, url: str, retention: float, key_bytes: int, total_bytes: int, client: Any = None) -> None:
        self.redis = client if client is not None else connect(url)
        self.retention, self.key_bytes, self.total_bytes = retention, key_bytes, total_bytes
        self._reserve_script = self.redis.register_script(RESERVE)
        self._swept = 0.0

    # ------------------------------------------------------------ bounds and expiry
    def _reserve(self, owner: str, obj_id: str, size: int) -> None:
        """Count obj_id as `size` bytes of `owner`'s (replacing what it counted), or raise StoreFull. One round trip
        (a script: Redis runs it whole, so replicas racing for the last room cannot both pass)."""
        if time.monotonic() - self._swept > SWEEP_EVERY:
            self._swept = time.monotonic()
            self._sweep()
        done, owned, delta = self._reserve_script(
            keys=[PREFIX + "size", PREFIX + "bytes:" + owner, PREFIX + "bytes", PREFIX + "expiry"],
            args=[obj_id, size, self.key_bytes, self.total_bytes, obj_id + SEP + owner, time.time() + self.retention])
        if done:
            return
        if owned == 1:
            raise StoreFull(f"This key's stored responses and conversations are near RESPONSES_MAX_BYTES_PER_KEY "
                            f"({self.key_bytes} bytes): storing {delta} more would pass it. Delete some "
                            "(DELETE /v1/responses/{id}, /v1/conversations/{id}) or send `store: false`.")
        raise StoreFull(f"The proxy's response store is full (RESPONSES_MAX_BYTES, {self.total_bytes} bytes). "
                        "Delete stored responses or send `store: false`.")

    def _release(self, owner: str, obj_id: str) -> None:
        r = self.redis
        size = int(r.hget(PREFIX + "size", obj_id) or 0)
        pipe = r.pipeline()
        pipe.incrby(PREFIX + "bytes:" + owner, -size)
        pipe.incrby(PREFIX + "bytes", -size)
        pipe.hdel(PREFIX + "size", obj_id)
        pipe.zrem(PREFIX + "expiry", obj_id + SEP + owner)
        pipe.execute()

    def _sweep(self) -> None:
        """Give back the bytes of what expired (Redis dropped the objects themselves)."""
        r = self.redis
        for member in r.zrangebyscore(PREFIX + "expiry", "-inf", time.time(), start=0, num=256):
            obj_id, _, owner = member.decode().partition(SEP)
            if r.zrem(PREFIX + "expiry", member):  # one replica gives each back
                self._release(owner, obj_id)
                if obj_id.startswith("conv_"):
                    r.delete(PREFIX + "items:" + obj_id)

    def sweep(self) -> None:
        self._sweep()

    def _ttl(self) -> int:
        return max(1, int(self.retention))

    # ------------------------------------------------------------ responses
    def put_response(self, rec: StoredResponse) -> None:
        self._put(rec, existing_only=False)

    def update_response(self, rec: StoredResponse) -> bool:
        """A background run's progress or end, written over its record only (SET XX): False when that is gone
        (deleted, or expired), which is never written back."""
        return self._put(rec, existing_only=True)

    def _put(self, rec: StoredResponse, existing_only: bool) -> bool:
        data = encoded(rec)
        self._reserve(rec.owner, rec.id, len(data))
        ttl = max(1, int(rec.created + self.retention - time.time()))
        if existing_only and not self.redis.set(PREFIX + "resp:" + rec.id, data, ex=ttl, xx=True):
            self._release(rec.owner, rec.id)  # deleted meanwhile: the bytes just counted go back
            return False
        pipe = self.redis.pipeline()
        if not existing_only:
            pipe.set(PREFIX + "resp:" + rec.id, data, ex=ttl)
        if rec.cancelled:
            pipe.set(PREFIX + "cancel:" + rec.id, b"1", ex=ttl)
        live = rec.background and rec.status in ("queued", "in_progress")
        for key in (PREFIX + "live", PREFIX + "live:" + rec.owner):
            if live:
                pipe.zadd(key, {rec.id: rec.heartbeat})
            else:
                pipe.zrem(key, rec.id)
        pipe.execute()
        return True

    def get_response(self, resp_id: str) -> StoredResponse | None:
        data, cancelled, beat = self.redis.mget(PREFIX + "resp:" + resp_id, PREFIX + "cancel:" + resp_id,
                                                PREFIX + "beat:" + resp_id)
        return _record(data, cancelled, beat) if data is not None else None

    def get_responses(self, ids: list[str]) -> dict[str, StoredResponse]:
        found: dict[str, StoredResponse] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for data in self.redis.mget([PREFIX + "resp:" + i for i in chunk]):
                if data is not None:
                    rec = _record(data, None, None)
                    found[rec.id] = rec
        return found

    def delete_response(self, resp_id: str) -> bool:
        rec = self.get_response(resp_id)
        if rec is None:
            return False
        pipe = self.redis.pipeline()
        pipe.delete(PREFIX + "resp:" + resp_id, PREFIX + "events:" + resp_id, PREFIX + "beat:" + resp_id,
                    PREFIX + "cancel:" + resp_id)
        for key in (PREFIX + "live", PREFIX + "live:" + rec.owner):  # a running one no longer counts
            pipe.zrem(key, resp_id)
        pipe.execute()
        self._release(rec.owner, resp_id)
        self._release(rec.owner, "ev:" + resp_id)
        return True

    def add_events(self, rec: StoredResponse, events: list[tuple[int, dict[str, Any]]]) -> None:
        """A streamed background run's next events; their list index is their sequence number (all are kept, in
        order, from 0)."""
        data = [dumps(e) for _, e in events]
        key = "ev:" + rec.id
        if not self.redis.exists(PREFIX + "resp:" + rec.id):
            return  # the response was deleted: its events go with it
        current = int(self.redis.hget(PREFIX + "size", key) or 0)
        self._reserve(rec.owner, key, current + sum(len(d) for d in data))
        pipe = self.redis.pipeline()
        pipe.rpush(PREFIX + "events:" + rec.id, *data)
        pipe.expire(PREFIX + "events:" + rec.id, self._ttl())
        pipe.exists(PREFIX + "resp:" + rec.id)
        if not pipe.execute()[2]:  # deleted while they were written: they go too
            self.redis.delete(PREFIX + "events:" + rec.id)
            self._release(rec.owner, key)

    def events_after(self, resp_id: str, after: int) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(PREFIX + "events:" + resp_id, max(after + 1, 0), -1)]

    def touch(self, resp_id: str, now: float) -> None:
        self.redis.set(PREFIX + "beat:" + resp_id, repr(now), ex=self._ttl())
        rec = self.get_response(resp_id)
        if rec is not None and rec.status in ("queued", "in_progress"):
            pipe = self.redis.pipeline()
            for key in (PREFIX + "live", PREFIX + "live:" + rec.owner):
                pipe.zadd(key, {resp_id: now})
            pipe.execute()

    def set_cancelled(self, resp_id: str) -> None:
        self.redis.set(PREFIX + "cancel:" + resp_id, b"1", ex=self._ttl())

    def stop_asked(self, resp_id: str) -> bool:
        """Should a background run stop: its cancel asked (on any replica), or its response deleted (or
        expired)? One round trip, made by each run every moment."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(PREFIX + "resp:" + resp_id)
        pipe.exists(PREFIX + "cancel:" + resp_id)
        present, cancelled = pipe.execute()
        return not present or bool(cancelled)

    def live_runs(self, owner: str, since: float) -> tuple[int, int]:
        pipe = self.redis.pipeline()
        pipe.zremrangebyscore(PREFIX + "live", "-inf", f"({since}")  # runs whose worker died: gone
        pipe.zremrangebyscore(PREFIX + "live:" + owner, "-inf", f"({since}")
        pipe.zcount(PREFIX + "live:" + owner, since, "+inf")
        pipe.zcount(PREFIX + "live", since, "+inf")
        mine, every = pipe.execute()[2:]
        return int(mine), int(every)

    # ------------------------------------------------------------ conversations
    def put_conversation(self, conv: StoredConversation, items: list[dict[str, Any]]) -> None:
        data = dumps({"object": conv.as_object(), "owner": conv.owner})
        self._reserve(conv.owner, conv.id, len(data) + sum(len(dumps(i)) for i in items) + self._items_bytes(conv.id))
        self.redis.set(PREFIX + "conv:" + conv.id, data, ex=self._ttl())
        self._append(conv, items)

    def _items_bytes(self, conv_id: str) -> int:
        return sum(len(i) for i in self.redis.lrange(PREFIX + "items:" + conv_id, 0, -1))

    def get_conversation(self, conv_id: str) -> StoredConversation | None:
        data = self.redis.get(PREFIX + "conv:" + conv_id)
        if data is None:
            return None
        doc = json.loads(data)
        obj = doc["object"]
        return StoredConversation(obj["id"], doc["owner"], obj["created_at"], obj.get("metadata") or {})

    def delete_conversation(self, conv_id: str) -> bool:
        conv = self.get_conversation(conv_id)
        if conv is None:
            return False
        items = self.items(conv_id)
        pipe = self.redis.pipeline()
        pipe.delete(PREFIX + "conv:" + conv_id, PREFIX + "items:" + conv_id)
        if items:
            pipe.hdel(PREFIX + "item", *[i["id"] for i in items])
        pipe.execute()
        self._release(conv.owner, conv_id)
        return True

    def add_items(self, conv: StoredConversation, items: list[dict[str, Any]]) -> None:
        current = int(self.redis.hget(PREFIX + "size", conv.id) or 0)
        self._reserve(conv.owner, conv.id, current + sum(len(dumps(i)) for i in items))
        self._append(conv, items)

    def _append(self, conv: StoredConversation, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        pipe = self.redis.pipeline()
        pipe.rpush(PREFIX + "items:" + conv.id, *[dumps(i) for i in items])
        pipe.expire(PREFIX + "items:" + conv.id, self._ttl())
        pipe.hset(PREFIX + "item", mapping={i["id"]: conv.id for i in items})
        pipe.execute()

    def recent_items(self, conv_id: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """A conversation's newest items up to `limit` bytes, oldest first; and whether they are all of them."""
        key, total, end = PREFIX + "items:" + conv_id, 0, -1
        found: list[bytes] = []
        while True:
            chunk = self.redis.lrange(key, end - 63, end)  # 64 at a time, from the newest
            for data in reversed(chunk):
                total += len(data)
                if total > limit:
                    return [json.loads(d) for d in reversed(found)], False
                found.append(data)
            if len(chunk) < 64:
                return [json.loads(d) for d in reversed(found)], True
            end -= 64

    def items(self, conv_id: str) -> list[dict[str, Any]]:
        return [json.loads(i) for i in self.redis.lrange(PREFIX + "items:" + conv_id, 0, -1)]

    def item(self, item_id: str) -> tuple[str, str, dict[str, Any]] | None:
        conv_id = self.redis.hget(PREFIX + "item", item_id)
        if conv_id is None:
            return None
        conv = self.get_conversation(conv_id.decode())
        if conv is None:
            return None
        found = next((i for i in self.items(conv.id) if i.get("id") == item_id), None)
        return (conv.id, conv.owner, found) if found is not None else None

    def delete_item(self, conv_id: str, item_id: str) -> bool:
        for raw in self.redis.lrange(PREFIX + "items:" + conv_id, 0, -1):
            if json.loads(raw).get("id") == item_id:
                self.redis.lrem(PREFIX + "items:" + conv_id, 1, raw)
                self.redis.hdel(PREFIX + "item", item_id)
                return True
        return False

    def used_bytes(self, owner: str) -> int:
        return int(self.redis.get(PREFIX + "bytes:" + owner) or 0)


def _record(data: bytes, cancelled: Any, beat: Any) -> StoredResponse:
    rec = StoredResponse.of(json.loads(data))
    rec.stored_size = len(data)
    rec.cancelled = rec.cancelled or cancelled is not None
    if beat is not None:
        rec.heartbeat = max(rec.heartbeat, float(beat))
    return rec
