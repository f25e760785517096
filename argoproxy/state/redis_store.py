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
from argoproxy.state.records import StoredConversation, StoredResponse, StoreFull

PREFIX = "cot_proxy:rs:"
SEP = "\x1f"
TIMEOUT = 2.0  # seconds for a connect or a reply


def connect(url: str) -> Any:
    import redis
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


class RedisResponseStore:
    def __init__(self, url: str, retention: float, key_bytes: int, total_bytes: int, client: Any = None) -> None:
        self.redis = client if client is not None else connect(url)
        self.retention, self.key_bytes, self.total_bytes = retention, key_bytes, total_bytes

    # ------------------------------------------------------------ bounds and expiry
    def _reserve(self, owner: str, obj_id: str, size: int, count_new: bool = True) -> None:
        """Count `size` more bytes for `owner` (replacing what obj_id counted), or raise StoreFull."""
        r = self.redis
        self._sweep()
        old = int(r.hget(PREFIX + "size", obj_id) or 0) if count_new else 0
        delta = size - old
        pipe = r.pipeline()
        pipe.incrby(PREFIX + "bytes:" + owner, delta)
        pipe.incrby(PREFIX + "bytes", delta)
        owned, total = pipe.execute()
        if delta > 0 and (owned > self.key_bytes or total > self.total_bytes):
            pipe = r.pipeline()
            pipe.incrby(PREFIX + "bytes:" + owner, -delta)
            pipe.incrby(PREFIX + "bytes", -delta)
            pipe.execute()
            if owned > self.key_bytes:
                raise StoreFull(f"This key's stored responses and conversations hold {owned - delta} bytes; storing "
                                f"{delta} more would pass RESPONSES_MAX_BYTES_PER_KEY ({self.key_bytes}). Delete some "
                                "(DELETE /v1/responses/{id}, /v1/conversations/{id}) or send `store: false`.")
            raise StoreFull(f"The proxy's response store is full (RESPONSES_MAX_BYTES, {self.total_bytes} bytes). "
                            "Delete stored responses or send `store: false`.")
        pipe = r.pipeline()
        pipe.hincrby(PREFIX + "size", obj_id, delta)
        pipe.zadd(PREFIX + "expiry", {obj_id + SEP + owner: time.time() + self.retention})
        pipe.execute()

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
        data = dumps(rec.as_json())
        self._reserve(rec.owner, rec.id, len(data))
        ttl = max(1, int(rec.created + self.retention - time.time()))
        pipe = self.redis.pipeline()
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
        self.redis.delete(PREFIX + "resp:" + resp_id, PREFIX + "events:" + resp_id, PREFIX + "beat:" + resp_id)
        self._release(rec.owner, resp_id)
        self._release(rec.owner, "ev:" + resp_id)
        return True

    def add_events(self, rec: StoredResponse, events: list[dict[str, Any]]) -> None:
        """A streamed background run's next events; their list index is their sequence number (all are kept, in
        order, from 0)."""
        data = [dumps(e) for e in events]
        key = "ev:" + rec.id
        current = int(self.redis.hget(PREFIX + "size", key) or 0)
        self._reserve(rec.owner, key, current + sum(len(d) for d in data))
        pipe = self.redis.pipeline()
        pipe.rpush(PREFIX + "events:" + rec.id, *data)
        pipe.expire(PREFIX + "events:" + rec.id, self._ttl())
        pipe.execute()

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
    rec.cancelled = rec.cancelled or cancelled is not None
    if beat is not None:
        rec.heartbeat = max(rec.heartbeat, float(beat))
    return rec
