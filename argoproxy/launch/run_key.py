"""The key an agent started by `cot-proxy run` sends: never the admin key, never an upstream key.

- Auth off: a placeholder (the agents insist on some key; the proxy asks for none).
- Auth on: a team key made for the run in the store the proxy reads (argoproxy/teamkeys/), allowed only the
  run's models and revoked when the agent exits, however it exits, when run holds the admin key.
- A team key of the user's (COT_PROXY_KEY), a key_limits key, or one in a store run cannot see, is the user's own
  client key: handed on as it is. A key made from it would count on windows of its own, so the user and the agent
  together could spend twice the rate or what is left of the budget; the one key keeps every limit exact.
- A run key also expires after RUN_KEY_DAYS, for a launcher killed before it could revoke it.
"""

from __future__ import annotations

import glob
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from argoproxy.config.listener import generate_key, read_key_file
from argoproxy.config.settings import Settings
from argoproxy.launch.proxy import Refused
from argoproxy.redaction import mask_url
from argoproxy.teamkeys.records import KeyRecord, digest

NO_KEY = "sk-cot-proxy-no-auth"  # what agents send when the proxy asks for no key (they all insist on one)
RUN_KEY_DAYS = 7


@dataclass
class RunKey:
    key: str
    where: str  # said by `run`: how the agent's key was made
    revoke: Callable[[], None] = lambda: None
    name: str | None = None  # the key made for the run (None: the user's own key, or none)


def admin_keys(settings: Settings) -> tuple[str, ...]:
    """The operator's keys this user can read: API_KEY_SECRET, API_KEY_FILE."""
    try:
        from_file = read_key_file(settings.api_key_file) if settings.api_key_file else ()
    except (OSError, ValueError):  # not this user's to read: not a key run can hold
        from_file = ()
    return tuple(settings.api_key_secret) + tuple(from_file)


def open_store(settings: Settings) -> Any:
    """The store the proxy reads, as `cot-proxy keys` opens it (Redis when REDIS_URL is set, else KEYS_DB)."""
    if settings.redis_url:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        return RedisKeyStore(settings.redis_url)
    from argoproxy.teamkeys.store import SQLiteKeyStore
    return SQLiteKeyStore(settings.keys_db)


def store_name(settings: Settings) -> str:
    return mask_url(settings.redis_url) if settings.redis_url else settings.keys_db


def for_run(settings: Settings, user_key: str, admin: bool, models: list[str], agent: str) -> RunKey:
    """The agent's key for these models (see the module's docstring). `user_key`: the key run itself uses;
    `admin`: it is the operator's (API_KEY_SECRET, API_KEY_FILE, or the one a proxy started here was given)."""
    if not settings.enable_auth:  # here: a proxy of the user's may still want one (started with ENABLE_AUTH)
        return RunKey(NO_KEY, "no key (auth is off)") if user_key == NO_KEY else \
            RunKey(user_key, "your client key (COT_PROXY_KEY)")
    try:
        store = open_store(settings)
        if not admin:
            _check_team_key(store, user_key)
            return RunKey(user_key, "your client key (COT_PROXY_KEY), with its own limits")
        record, key = _run_record(models, agent, time.time())
        store.create(record)
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - the store failed (locked, read-only, Redis away): one line
        raise Refused(f"could not make the run's key in the key store {store_name(settings)}: "
                      f"{type(exc).__name__}: {mask_url(str(exc))}") from None

    def revoke() -> None:
        store.revoke(record.name)
    return RunKey(key, f"a key for this run ({record.name}, models {', '.join(models)})", revoke, record.name)


def _check_team_key(store: Any, key: str) -> None:
    """A team key the store refuses (revoked, expired, over its budget) is said before the agent starts."""
    record = store.find(digest(key)) if store.available() else None
    if record is not None and record.refusal(time.time()):
        raise Refused(f"your key (COT_PROXY_KEY, {record.name}) is refused: {record.refusal(time.time())}")


def _run_record(models: list[str], agent: str, now: float) -> tuple[KeyRecord, str]:
    key = generate_key()
    name = f"run-{agent}-{secrets.token_hex(4)}"
    globs = tuple(glob.escape(m) for m in models)  # the exact names: a model called gpt-[x] is not a pattern
    return KeyRecord(name, digest(key), key[:12], globs, expires=now + RUN_KEY_DAYS * 86400, created=now), key
