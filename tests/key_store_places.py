"""A key store to test on both ways the proxy keeps one: a SQLite file (KEYS_DB) or Redis (REDIS_URL)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from argoproxy.teamkeys.store import SQLiteKeyStore


def store_place(request: Any, tmp_path: Any) -> SimpleNamespace:
    """The settings' two fields that name a store, for a fixture parametrized over "sqlite" and "redis" (the
    latter uses the module's `redis_url` fixture, emptied first)."""
    if request.param == "sqlite":
        return SimpleNamespace(redis_url="", keys_db=str(tmp_path / "keys.db"))
    url = request.getfixturevalue("redis_url")
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    RedisKeyStore(url).redis.flushdb()
    return SimpleNamespace(redis_url=url, keys_db=str(tmp_path / "unused.db"))


def store_of(where: SimpleNamespace) -> Any:
    if where.redis_url:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        return RedisKeyStore(where.redis_url)
    return SQLiteKeyStore(where.keys_db)
