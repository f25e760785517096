"""People, console sessions and sign-in flows in Redis (RedisKeyStore has these methods), as people_rows.py keeps
them in SQLite: person:<id> (hash: the record), people (the set of ids), email:<lower-case email> (the id of the
person last seen with it), console:<digest> (hash: a session, expiring at CONSOLE_SESSION_MAX), sessions:<id> (a
person's sessions' digests), flow:<digest> (a sign-in under way, expiring after FLOW_SECONDS, taken once) and flows
(their keys by when they began: MOST_FLOWS at most)."""

from __future__ import annotations

import time
from typing import Any

from argoproxy.people import Person
from argoproxy.teamkeys.people_rows import FLOW_SECONDS, MOST_FLOWS, SEP, ConsoleSession, SignInFlow

PREFIX = "cot_proxy:"
FLOWS = PREFIX + "flows"  # the flows under way by when they began, MOST_FLOWS at most (people_rows.py)
# A flow kept (KEYS[1], expiring), and its place in FLOWS; the expired and the oldest beyond MOST_FLOWS dropped
# with their keys: anyone may begin a sign-in (GET /ui/auth/login needs no key).
SAVE_FLOW = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[2]))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  redis.call('DEL', unpack(redis.call('ZRANGE', KEYS[2], 0, over - 1)))
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
"""
SESSION_SECONDS = 30 * 86400  # the most a session hash is kept (the absolute lifetime is checked when it is read)


def _person_key(person_id: str) -> str:
    return f"{PREFIX}person:{person_id}"


class RedisPeople:
    redis: Any

    # ------------------------------------------------------------ people
    def people(self) -> list[Person]:
        found = [self.person(pid) for pid in sorted(self.redis.smembers(PREFIX + "people"))]
        return sorted((p for p in found if p is not None), key=lambda p: (p.email, p.id))

    def person(self, person_id: str) -> Person | None:
        fields = self.redis.hgetall(_person_key(person_id))
        return _person_of(fields) if fields else None

    def person_by_email(self, email: str) -> Person | None:
        pid = self.redis.get(f"{PREFIX}email:{email.strip().lower()}")
        return self.person(pid) if pid else None

    def signed_in(self, person: Person, rule_admin: bool) -> Person:
        """As the SQLite store's: what the provider says now; admin by rule or by an admin; the ARGO username the
        provider's when it gives one; the rest kept."""
        key = _person_key(person.id)

        def write(pipe: Any) -> None:
            old = pipe.hgetall(key)
            pipe.multi()
            pipe.hset(key, mapping={
                "id": person.id, "subject": person.subject, "issuer": person.issuer, "email": person.email,
                "email_verified": str(int(person.email_verified)), "name": person.name,
                "groups": SEP.join(person.groups), "admin": str(int(rule_admin or old.get("admin_set") == "1")),
                "admin_set": old.get("admin_set", "0"), "disabled": old.get("disabled", "0"),
                "first_seen": old.get("first_seen", repr(person.first_seen)), "last_seen": repr(person.last_seen),
                "argo_user": person.argo_user or old.get("argo_user", "")})
            pipe.sadd(PREFIX + "people", person.id)
            if person.email:
                pipe.set(f"{PREFIX}email:{person.email.lower()}", person.id)
        self.redis.transaction(write, key)
        found = self.person(person.id)
        assert found is not None
        return found

    def set_person_disabled(self, person_id: str, disabled: bool, now: float) -> bool:
        key = _person_key(person_id)
        if not self.redis.exists(key):
            return False
        if disabled:
            self.redis.hset(key, "disabled", repr(now))
            digests = list(self.redis.smembers(f"{PREFIX}sessions:{person_id}"))
            if digests:
                self.redis.delete(*(f"{PREFIX}console:{d}" for d in digests), f"{PREFIX}sessions:{person_id}")
        else:
            self.redis.hset(key, mapping={"disabled": "0", "last_seen": repr(now)})
        return True

    def set_person_admin(self, person_id: str, admin: bool) -> bool:
        key = _person_key(person_id)
        if not self.redis.exists(key):
            return False
        self.redis.hset(key, mapping={"admin": str(int(admin)), "admin_set": str(int(admin))})
        return True

    def set_person_argo_user(self, person_id: str, argo_user: str) -> bool:
        key = _person_key(person_id)
        if not self.redis.exists(key):
            return False
        self.redis.hset(key, "argo_user", argo_user)
        return True

    def owner_state(self, person_id: str) -> tuple[float, float, str]:
        """(disabled, last_seen, argo_user) of a key's owner, read with the key."""
        disabled, seen, argo_user = self.redis.hmget(_person_key(person_id), "disabled", "last_seen", "argo_user")
        return float(disabled or 0), float(seen or 0), argo_user or ""

    # ------------------------------------------------------------ console sessions
    def create_session(self, digest: str, session: ConsoleSession) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(f"{PREFIX}console:{digest}", mapping={
            "person": session.person, "csrf": session.csrf, "created": repr(session.created),
            "used": repr(session.used), "id_token": session.id_token})
        pipe.expire(f"{PREFIX}console:{digest}", SESSION_SECONDS)
        pipe.sadd(f"{PREFIX}sessions:{session.person}", digest)
        pipe.expire(f"{PREFIX}sessions:{session.person}", SESSION_SECONDS)
        pipe.execute()

    def console_session(self, digest: str) -> ConsoleSession | None:
        f = self.redis.hgetall(f"{PREFIX}console:{digest}")
        if not f:
            return None
        return ConsoleSession(f["person"], f["csrf"], float(f["created"]), float(f["used"]), f.get("id_token", ""))

    def touch_session(self, digest: str, now: float) -> None:
        self.redis.hset(f"{PREFIX}console:{digest}", "used", repr(now))

    def end_session(self, digest: str) -> None:
        self.redis.delete(f"{PREFIX}console:{digest}")

    # ------------------------------------------------------------ sign-in flows
    def save_flow(self, digest: str, flow: SignInFlow) -> None:
        value = SEP.join((flow.browser, flow.nonce, flow.verifier, repr(flow.created)))
        if "_save_flow" not in self.__dict__:
            self.__dict__["_save_flow"] = self.redis.register_script(SAVE_FLOW)
        self.__dict__["_save_flow"](keys=[f"{PREFIX}flow:{digest}", FLOWS],
                                    args=[value, int(FLOW_SECONDS), flow.created, MOST_FLOWS])

    def take_flow(self, digest: str, now: float | None = None) -> SignInFlow | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.getdel(f"{PREFIX}flow:{digest}")  # single use: a replayed callback finds nothing
        pipe.zrem(FLOWS, f"{PREFIX}flow:{digest}")
        value = pipe.execute()[0]
        if not value:
            return None
        browser, nonce, verifier, created = value.split(SEP)
        flow = SignInFlow(browser, nonce, verifier, float(created))
        return flow if (now or time.time()) - flow.created <= FLOW_SECONDS else None


def _person_of(f: dict[str, str]) -> Person:
    return Person(f["id"], f.get("subject", ""), f.get("issuer", ""), f.get("email", ""),
                  f.get("email_verified") == "1", f.get("name", ""),
                  tuple(g for g in f.get("groups", "").split(SEP) if g), f.get("admin") == "1",
                  float(f.get("disabled") or 0), float(f.get("first_seen") or 0), float(f.get("last_seen") or 0),
                  f.get("argo_user", ""))
