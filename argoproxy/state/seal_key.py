"""The per-install key the Responses door seals its own content with (fronts/responses/compact.py: compaction
summaries, reasoning.encrypted_content): the same for every worker and every restart, so what one worker sealed
another opens. Without REDIS_URL it is `seal.key` in the data directory, beside responses.db (made by the first
worker that needs it, mode 0600); with REDIS_URL it is in that Redis, so every replica has the same."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from argoproxy import key_files
from argoproxy.errors import ProxyError

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

KEY_BYTES = 32
REDIS_KEY = "cot_proxy:rs:seal_key"


def seal_key(settings: Settings) -> Callable[[], bytes]:
    """How this instance reads its key (called once per worker, at the first use)."""
    if settings.redis_url:
        return lambda: _unavailable(lambda: redis_key(settings.redis_url), "its Redis (REDIS_URL)")
    path = Path(settings.responses_db).expanduser().with_name("seal.key")
    return lambda: _unavailable(lambda: file_key(path), str(path))


def _unavailable(read: Callable[[], bytes], where: str) -> bytes:
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - the file's, and redis-py's errors
        raise ProxyError(503, f"The proxy cannot read the key it seals its content with ({where}: "
                         f"{type(exc).__name__}).", code="seal_key_unavailable", type="service_unavailable") from None


def file_key(path: Path) -> bytes:
    """The key in `path`, made first if there is none (argoproxy/key_files.py)."""
    return key_files.file_key(path, KEY_BYTES)


def redis_key(url: str) -> bytes:
    from argoproxy.state.redis_store import connect
    client = connect(url)
    client.set(REDIS_KEY, os.urandom(KEY_BYTES), nx=True)
    key = client.get(REDIS_KEY)
    if not isinstance(key, bytes) or len(key) < KEY_BYTES:
        raise ValueError("the key in Redis is not a key")
    return key
