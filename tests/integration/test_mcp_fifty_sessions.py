"""Per-key tool globs, limits and revocation under 50 parallel MCP sessions, through the running app (Gunicorn,
two workers, auth on; the SQLite key store, and Redis) in front of the strict fake stdio server
(tests/fakes/fake_mcp_server.py, which counts the calls it runs and the most of a group it ran at once).

50 threads, each its own session and connection, from three keys: each key lists only its globs' tools, and a
call outside them is refused and never reaches the server; `--tool-parallel 3` holds on the server's side (the
`held` tool reports the most calls of its group it ran at once); `--tool-rpm 30` lets exactly 30 calls reach
the server; and a key revoked mid-way is refused on every one of its sessions within a second while the other
keys' sessions go on."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import requests

from tests.integration.test_mcp_gateway import FAKE, INIT, JSON_HEADERS
from tests.polling import poll
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(120)

ADMIN = "admin-key-for-mcp-fifty-sessions"
SERVERS = json.dumps({"fake": {"command": sys.executable, "args": [FAKE]}})
LIMITED, NOT_ALLOWED = -32029, -32602
NARROW, METERED, DOOMED = 20, 20, 10  # sessions per key: 50
PARALLEL, RPM = 3, 30
PROMPT = 1.0  # a revocation reaches every worker within this (the key cache's half second, and a margin)


@dataclass
class Store:
    """Where the keys live: team keys made and revoked by `cot-proxy keys`, and the proxy's settings for it."""
    create: Callable[..., str]
    run: Callable[..., Any]
    settings: dict[str, str]

    def revoke(self, name: str) -> float:
        """Revoke the key; when the revocation is in the store (the command has returned)."""
        assert self.run("revoke", name).returncode == 0
        return time.monotonic()


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        from tests.integration.test_team_keys import create, keys
        db = tmp_path / "keys.db"
        yield Store(lambda *a: create(db, *a), lambda *a: keys(db, *a), {"KEYS_DB": str(db)})
        return
    from tests.integration.test_shared_redis import create as create_in_redis, keys as redis_keys
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    try:
        yield Store(lambda *a: create_in_redis(server.url, *a), lambda *a: redis_keys(server.url, *a),
                    {"REDIS_URL": server.url})
    finally:
        server.close()


@dataclass
class Session:
    """One client: its own connection (a requests.Session) and MCP session."""
    url: str
    key: str
    http: requests.Session = field(default_factory=requests.Session)
    sid: str = ""
    ids: Any = None

    def open(self) -> "Session":
        r = self.http.post(self.url, json=INIT, headers=self.headers(), timeout=30)
        assert r.status_code == 200, r.text
        self.sid, self.ids = r.headers["Mcp-Session-Id"], iter(range(2, 100_000))
        return self

    def headers(self) -> dict[str, str]:
        return {**JSON_HEADERS, "Authorization": f"Bearer {self.key}",
                **({"Mcp-Session-Id": self.sid} if self.sid else {})}

    def rpc(self, method: str, params: dict) -> requests.Response:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        return self.http.post(self.url, json=body, headers=self.headers(), timeout=30)

    def tools(self) -> set[str]:
        return {t["name"] for t in self.rpc("tools/list", {}).json()["result"]["tools"]}

    def call(self, tool: str, **arguments: Any) -> dict:
        r = self.rpc("tools/call", {"name": tool, "arguments": arguments})
        assert r.status_code == 200, r.text
        return r.json()


def code(answer: dict) -> int | None:
    return answer.get("error", {}).get("code")


def test_globs_limits_and_revocation_hold_under_fifty_parallel_sessions(module_fake, store):
    narrow = store.create("narrow", "--tools", "fake__held,fake__echo", "--tool-parallel", str(PARALLEL))
    metered = store.create("metered", "--tools", "fake__echo", "--tool-rpm", str(RPM))
    doomed = store.create("doomed", "--tools", "fake__echo")
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       MCP_SERVERS=SERVERS, **store.settings) as proxy:
        url = proxy.url + "/mcp"
        ready = threading.Barrier(NARROW + METERED + DOOMED)
        revoked = threading.Event()
        revoked_at: list[float] = []
        failures: list[BaseException] = []
        held_answers: list[dict] = []
        metered_codes: list[int | None] = []
        doomed_calls: dict[int, list[tuple[float, int]]] = {n: [] for n in range(DOOMED)}
        after: list[dict] = []  # the other keys' calls made once the revocation is in

        def started(key: str, tools: set[str], outside: str, group: str) -> Session:
            """The session opened, its listing only its key's globs', a call outside them refused; then all 50 go."""
            session = Session(url, key).open()
            assert session.tools() == tools
            refused = session.call(outside, group=group)
            assert code(refused) == NOT_ALLOWED and "not allowed" in refused["error"]["message"], refused
            ready.wait(timeout=60)
            return session

        def narrow_client() -> None:
            session = started(narrow, {"fake__held", "fake__echo"}, "fake__add", "narrow")
            for _ in range(6):
                held_answers.append(session.call("fake__held", group="narrow", seconds=0.1))
            assert revoked.wait(timeout=60)
            after.append(session.call("fake__echo", text="still here", group="after"))

        def metered_client() -> None:
            session = started(metered, {"fake__echo"}, "fake__held", "metered")
            for _ in range(3):
                metered_codes.append(code(session.call("fake__echo", text="x", group="metered")))
            assert revoked.wait(timeout=60)
            after.append(session.call("fake__echo", text="still here", group="after"))

        def doomed_client(n: int) -> None:
            session = started(doomed, {"fake__echo"}, "fake__add", "doomed")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                sent = time.monotonic()
                r = session.rpc("tools/call", {"name": "fake__echo", "arguments": {"text": "x", "group": "doomed"}})
                doomed_calls[n].append((sent, r.status_code))
                if r.status_code == 401:
                    assert "revoked" in r.text and r.headers["WWW-Authenticate"].startswith("Bearer")
                    return
                assert r.status_code == 200 and code(r.json()) is None, r.text

        def guarded(target: Callable[..., None], *args: Any) -> threading.Thread:
            def run() -> None:
                try:
                    target(*args)
                except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
                    failures.append(exc)
                    ready.abort()
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            return thread

        threads = [guarded(narrow_client) for _ in range(NARROW)] + [guarded(metered_client) for _ in range(METERED)]
        threads += [guarded(doomed_client, n) for n in range(DOOMED)]
        # the revocation comes mid-way: once every doomed session has had calls answered
        assert poll(lambda: failures or all(len(calls) >= 2 for calls in doomed_calls.values()), timeout=60)
        revoked_at.append(store.revoke("doomed"))
        revoked.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures[:3]

        # the revoked key: refused on every one of its sessions, none of its calls sent a second on let through
        for calls in doomed_calls.values():
            assert calls[-1][1] == 401
            assert all(sent - revoked_at[0] < PROMPT for sent, status in calls if status == 200), calls[-5:]
        # the other keys went on: their calls after the revocation were answered as before (none refused by it)
        assert len(after) == NARROW + METERED and all(code(a) in (None, LIMITED) for a in after), after[:3]
        # --tool-parallel: the server never ran more of the key's calls at once; the refused ones say why
        ran = [json.loads(a["result"]["content"][0]["text"])["most_at_once"] for a in held_answers if code(a) is None]
        assert ran and max(ran) <= PARALLEL, max(ran, default=0)
        refused = [a["error"] for a in held_answers if code(a) is not None]
        assert all(e["code"] == LIMITED and e["data"]["limit"] == "tool_parallel" for e in refused), refused[:3]
        # --tool-rpm: exactly RPM of the metered key's calls were let through
        assert metered_codes.count(None) == RPM and metered_codes.count(LIMITED) == 3 * METERED - RPM
        # what reached the server: only calls within the keys' globs and limits
        tally = json.loads(Session(url, ADMIN).open().call("fake__tally")["result"]["content"][0]["text"])
        assert tally.get("held:narrow") == len(ran) and tally.get("echo:metered") == RPM
        assert tally.get("echo:doomed") == sum(status == 200 for calls in doomed_calls.values() for _, status in calls)
        assert not {"add:narrow", "held:metered", "add:doomed"} & set(tally), tally
