"""Key and team records in Redis (redis_store.py's layout): key:<digest> (hash: the record), name:<name> (the
digest of the active key of that name), team:<name> (hash: a team's record), teams (the set of teams' names),
records:version (a counter each change of a key or team record adds one to, after the change: a process keeps
records() while it reads the same number, so the console's lists read 1,000 keys once, not at every page).
RedisKeyStore has these methods; each write is one transaction over what it reads."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from argoproxy.teamkeys.records import Budget, KeyRecord, MoneyBudget, TeamRecord
from argoproxy.teamkeys.store import KeyExists, TeamError, no_team, team_has_keys

PREFIX = "cot_proxy:"
SEP = "\x1f"
RECORD_FIELDS = ("name", "digest", "prefix", "models", "rpm", "tpm", "budget_tokens", "budget_period", "expires",
                 "created", "revoked", "max_parallel", "priority", "budget_usd", "budget_usd_period", "team", "tools",
                 "tool_rpm", "tool_parallel", "owner", "argo_user")
# (a record written before priority, budget_usd, team, tools or the tool limits reads 0 or "" for them)


VERSION = PREFIX + "records:version"
KEPT_SECONDS = 10.0  # records() read again at least this often (a record changed by something that does not count)


class RedisRecords:
    redis: Any
    _kept: tuple[str | None, float, list[KeyRecord]] | None = None  # records() as of a version, and when read

    owner_state: Callable[[str], tuple[float, float, str]]  # a person's (disabled, last_seen, argo_user): redis_people

    def _forget(self, name: str) -> None:
        """Everything counted under a name (RedisKeyStore's counters and usage rows)."""
        raise NotImplementedError

    # ------------------------------------------------------------ records
    def create(self, record: KeyRecord) -> None:
        name_key = PREFIX + "name:" + record.name

        def write(pipe: Any) -> None:
            old = pipe.get(name_key)
            if old and pipe.hget(PREFIX + "key:" + old, "revoked") in ("0", "0.0"):
                raise KeyExists(f"a key named {record.name!r} is active: revoke it first, or choose another name")
            if record.team and not pipe.exists(_team_key(record.team)):
                raise no_team(record.team)
            pipe.multi()
            if old:
                pipe.delete(PREFIX + "key:" + old)
            pipe.hset(PREFIX + "key:" + record.digest, mapping=_fields_of(record))
            pipe.set(name_key, record.digest)
        self.redis.transaction(write, name_key, *([_team_key(record.team)] if record.team else []))
        self._changed()
        counters = [k for kind in ("req", "tok", "bud", "usd") for k in self.redis.scan_iter(f"{PREFIX}{kind}:{record.name}:*")]
        if counters:  # a new key of an old name starts with nothing counted
            self.redis.delete(*counters)

    def update(self, name: str, changes: dict[str, Any]) -> bool:
        """Change an active key's models or limits (KeyRecord field names); False when none is active. In one
        transaction over the name and its record: a revoke or a new key of that name meanwhile is not undone."""
        name_key = PREFIX + "name:" + name
        updated = False

        def write(pipe: Any) -> None:
            nonlocal updated
            digest = pipe.get(name_key)
            fields = pipe.hgetall(PREFIX + "key:" + digest) if digest else None
            record = _record_of(fields) if fields else None
            if record is None or record.revoked:
                updated = False
                return
            team = changes.get("team")
            pipe.watch(PREFIX + "key:" + digest, *([_team_key(team)] if team else []))
            if team and not pipe.exists(_team_key(team)):
                raise no_team(team)
            pipe.multi()
            pipe.hset(PREFIX + "key:" + digest, mapping=_fields_of(dataclasses.replace(record, **changes)))
            updated = True
        self.redis.transaction(write, name_key)
        if updated:
            self._changed()
        return updated

    def revoke(self, name: str, now: float | None = None) -> bool:
        digest = self.redis.get(PREFIX + "name:" + name)
        if not digest or self.redis.hget(PREFIX + "key:" + digest, "revoked") not in ("0", "0.0"):
            return False
        self.redis.hset(PREFIX + "key:" + digest, "revoked", repr(now or time.time()))
        self._changed()
        return True

    def find(self, key_digest: str) -> KeyRecord | None:
        """The key's record, with its team's (a second read, for a key of a team)."""
        fields = self.redis.hgetall(PREFIX + "key:" + key_digest)
        if not fields:
            return None
        record = _record_of(fields)
        if record.owner:  # its owner's state, so that disabling a person stops their keys as a revoke does
            disabled, seen, argo_user = self.owner_state(record.owner)
            record = dataclasses.replace(record, owner_disabled=disabled, owner_seen=seen, owner_argo_user=argo_user)
        team = self.team(record.team) if record.team else None
        return dataclasses.replace(record, team_record=team) if team is not None else record

    def records(self) -> list[KeyRecord]:
        """Every key with its team's record: this process's copy while no record changed (VERSION), else read."""
        version, kept = self.redis.get(VERSION), self._kept
        if kept is not None and kept[0] == version and time.monotonic() - kept[1] < KEPT_SECONDS:
            return list(kept[2])
        read_at = time.monotonic()  # (no lock: two greenlets reading at once read twice, and neither waits)
        found = self._read_records()
        self._kept = (version, read_at, found)  # the version read before the records: a change since re-reads
        return list(found)

    def _changed(self) -> None:
        self.redis.incr(VERSION)

    def _read_records(self) -> list[KeyRecord]:
        """Every key with its team's record, pipelined (a few round trips, not three a key: 1,000 keys took 0.4 s)."""
        names = list(self.redis.scan_iter(PREFIX + "name:*", count=1000))
        digests = [d for d in self._each("get", names) if d]
        teams = {t.name: t for t in self.teams()}
        found = [_record_of(f) for f in self._each("hgetall", [PREFIX + "key:" + d for d in digests]) if f]
        return sorted((dataclasses.replace(r, team_record=teams[r.team]) if r.team in teams else r for r in found),
                      key=lambda r: r.name)

    def _each(self, command: str, keys: list[str]) -> list[Any]:
        """One command on each key, pipelined (no transaction) EACH_BATCH keys a round trip, each well within its
        deadline on a busy machine."""
        found: list[Any] = []
        for start in range(0, len(keys), EACH_BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for key in keys[start:start + EACH_BATCH]:
                getattr(pipe, command)(key)
            found.extend(pipe.execute())
        return found

    # ------------------------------------------------------------ teams
    def create_team(self, team: TeamRecord) -> None:
        def write(pipe: Any) -> None:
            if pipe.exists(_team_key(team.name)):
                raise TeamError(f"a team named {team.name!r} exists: update it, or choose another name")
            pipe.multi()
            pipe.hset(_team_key(team.name), mapping=_team_fields(team))
            pipe.sadd(PREFIX + "teams", team.name)
        self.redis.transaction(write, _team_key(team.name))
        self._changed()
        self._forget(team.windows.name)  # an old team of that name: its counts and usage go

    def update_team(self, name: str, changes: dict[str, Any]) -> TeamRecord:
        done: list[TeamRecord] = []

        def write(pipe: Any) -> None:
            fields = pipe.hgetall(_team_key(name))
            if not fields:
                raise no_team(name)
            team = dataclasses.replace(_team_of(fields), **changes)
            pipe.multi()
            pipe.hset(_team_key(name), mapping=_team_fields(team))
            done[:] = [team]
        self.redis.transaction(write, _team_key(name))
        self._changed()
        return done[0]

    def delete_team(self, name: str, move_keys_out: bool = False) -> list[str]:
        """As the SQLite store's: refused while active keys are in it, unless they are moved out."""
        if not self.redis.exists(_team_key(name)):
            raise no_team(name)
        keys = [r.name for r in self.records() if r.team == name and not r.revoked]
        if keys and not move_keys_out:
            raise team_has_keys(name, keys)
        for key in keys:
            self.update(key, {"team": ""})
        self.redis.delete(_team_key(name))
        self.redis.srem(PREFIX + "teams", name)
        self._changed()
        return keys

    def team(self, name: str) -> TeamRecord | None:
        fields = self.redis.hgetall(_team_key(name))
        return _team_of(fields) if fields else None

    def teams(self) -> list[TeamRecord]:
        names = sorted(self.redis.smembers(PREFIX + "teams"))
        return [_team_of(f) for f in self._each("hgetall", [_team_key(name) for name in names]) if f]


EACH_BATCH = 200  # keys a pipelined round trip reads (records(), teams())

def _team_key(name: str) -> str:
    return f"{PREFIX}team:{name}"


def _fields_of(r: KeyRecord) -> dict[str, str]:
    return {"name": r.name, "digest": r.digest, "prefix": r.prefix, "models": ",".join(r.models),
            "rpm": str(r.rpm), "tpm": str(r.tpm), "budget_tokens": str(r.budget.tokens if r.budget else 0),
            "budget_period": r.budget.period if r.budget else "", "expires": repr(r.expires),
            "created": repr(r.created), "revoked": repr(r.revoked), "max_parallel": str(r.max_parallel),
            "priority": str(r.priority), "budget_usd": str(r.budget_usd.nanos if r.budget_usd else 0),
            "budget_usd_period": r.budget_usd.period if r.budget_usd else "", "team": r.team, "tools": ",".join(r.tools),
            "tool_rpm": str(r.tool_rpm), "tool_parallel": str(r.tool_parallel), "owner": r.owner,
            "argo_user": r.argo_user}


def _record_of(f: dict[str, str]) -> KeyRecord:
    tokens = int(f.get("budget_tokens") or 0)
    return KeyRecord(f["name"], f["digest"], f["prefix"], tuple(m for m in f.get("models", "").split(",") if m),
                     int(f.get("rpm") or 0), int(f.get("tpm") or 0),
                     Budget(tokens, f.get("budget_period", "day")) if tokens else None,
                     float(f.get("expires") or 0), float(f.get("created") or 0), float(f.get("revoked") or 0),
                     int(f.get("max_parallel") or 0), int(f.get("priority") or 0),
                     MoneyBudget(int(f["budget_usd"]), f.get("budget_usd_period", "day")) if int(f.get("budget_usd") or 0)
                     else None, f.get("team", ""), tools=tuple(t for t in f.get("tools", "").split(",") if t),
                     tool_rpm=int(f.get("tool_rpm") or 0), tool_parallel=int(f.get("tool_parallel") or 0),
                     owner=f.get("owner", ""), argo_user=f.get("argo_user", ""))


def _team_fields(t: TeamRecord) -> dict[str, str]:
    return {"name": t.name, "models": ",".join(t.models), "rpm": str(t.rpm), "tpm": str(t.tpm),
            "budget_tokens": str(t.budget.tokens if t.budget else 0), "budget_period": t.budget.period if t.budget else "",
            "expires": repr(t.expires), "created": repr(t.created), "max_parallel": str(t.max_parallel),
            "priority": str(t.priority), "budget_usd": str(t.budget_usd.nanos if t.budget_usd else 0),
            "budget_usd_period": t.budget_usd.period if t.budget_usd else "", "tools": ",".join(t.tools),
            "tool_rpm": str(t.tool_rpm), "tool_parallel": str(t.tool_parallel), "groups": SEP.join(t.groups),
            "leads": ",".join(t.leads)}


def _team_of(f: dict[str, str]) -> TeamRecord:
    tokens, usd = int(f.get("budget_tokens") or 0), int(f.get("budget_usd") or 0)
    return TeamRecord(f["name"], tuple(m for m in f.get("models", "").split(",") if m), int(f.get("rpm") or 0),
                      int(f.get("tpm") or 0), Budget(tokens, f.get("budget_period", "day")) if tokens else None,
                      float(f.get("expires") or 0), float(f.get("created") or 0), int(f.get("max_parallel") or 0),
                      int(f.get("priority") or 0), MoneyBudget(usd, f.get("budget_usd_period", "day")) if usd else None,
                      tuple(t for t in f.get("tools", "").split(",") if t), int(f.get("tool_rpm") or 0),
                      int(f.get("tool_parallel") or 0), *_people_of(f))


def _people_of(f: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A team's groups and leads (argoproxy/people/)."""
    return (tuple(g for g in f.get("groups", "").split(SEP) if g), tuple(e for e in f.get("leads", "").split(",") if e))
