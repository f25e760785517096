"""Cache-aware routing keeps each key's conversations to that key, through the real proxy under Gunicorn in front
of fake llama.cpp servers with slots (tests/fakes/fake_slots.py): another key sending the same conversation
learns nothing from where its own turns go (X-Served-By), and cannot move the first key's conversation away
from the server that holds it; the keys of a team share their conversations."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.fakes.fake_slots import FakeSlots
from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ, running_proxy

KEY_A, KEY_B = "sk-tenant-a-0123456789", "sk-tenant-b-0123456789"
SYSTEM = {"role": "system", "content": "shared instructions " * 50}


def proxied(a: FakeSlots, b: FakeSlots, **settings: str):
    models = json.dumps([{"name": "local", "backend": "openai", "base_url": s.base_url} for s in (a, b)])
    return running_proxy(MODELS=models, ROUTING_STRATEGY="cache_aware", ENABLE_AUTH="true",
                         API_KEY_SECRET=f"{KEY_A},{KEY_B}", **settings)


def served(proxy, key: str, messages: list) -> str:
    r = requests.post(proxy.base_url + "/chat/completions", timeout=60, headers={"Authorization": f"Bearer {key}"},
                      json={"model": "local", "messages": messages})
    assert r.status_code == 200, r.text
    return r.headers["X-Served-By"]


def task(name: str) -> list:
    return [SYSTEM, {"role": "user", "content": f"task {name}"}]


def turn(messages: list, text: str = "next") -> list:
    return [*messages, {"role": "assistant", "content": "ok"}, {"role": "user", "content": text}]


def metric(proxy, name: str) -> float:
    text = requests.get(proxy.url + "/metrics", timeout=10, headers={"Authorization": f"Bearer {KEY_A}"}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_key_learns_nothing_from_routing_of_what_another_key_began():
    """The prefix table was shared by all keys and X-Served-By names the server: a key's turn went where another
    key's conversation with the same start was, so it could tell whether anyone had begun it."""
    with FakeSlots(slots=4) as a, FakeSlots(slots=4) as b, proxied(a, b, WORKERS="2") as proxy:
        tasks = [task(str(i)) for i in range(8)]
        before = [served(proxy, KEY_B, turn(t)) for t in tasks]
        for t in tasks:  # A begins each conversation and goes on with it
            served(proxy, KEY_A, t)
            served(proxy, KEY_A, turn(t))
        after = [served(proxy, KEY_B, turn(t)) for t in tasks]
        assert after == before, "B's turns went where A's conversations are"
        assert len(set(before)) == 2, "B's conversations spread over both servers by their hash order"


def test_another_keys_traffic_does_not_move_a_teams_conversation_off_its_server(tmp_path):
    """Another key sending the same conversation while A's server was full went to the other server and noted
    the conversation there, for everyone: A's next turn followed it, away from A's cache. The keys of a team
    are one tenant: a conversation is the team's, wherever its turns come from."""
    db = tmp_path / "keys.db"
    cli(db, "teams", "create", "lab")
    a1, a2 = (cli(db, "keys", "create", name, "--team", "lab").stdout.strip() for name in ("a1", "a2"))
    outsider = cli(db, "keys", "create", "b").stdout.strip()
    with FakeSlots(slots=1, held_if="hold") as a, FakeSlots(slots=1, held_if="hold") as b, \
            proxied(a, b, MAX_CONCURRENCY="auto", WORKERS="2", KEYS_DB=str(db)) as proxy:
        servers = {s.base_url.split("/")[2]: s for s in (a, b)}
        assert poll(lambda: metric(proxy, "cot_proxy_admission_limit") == 2), "each server's one slot, from /props"
        mine = task("mine")
        home = served(proxy, a1, mine)
        assert served(proxy, a2, turn(mine)) == home, "the team's conversation, from another of its keys"
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(served, proxy, a1, turn(mine, "hold"))  # the team's server is full
            assert poll(lambda: servers[home].running == 1)
            others = {served(proxy, outsider, turn(mine, f"b {i}")) for i in range(3)}
            assert home not in others, "B's turns went to the server with room"
            servers[home].let_go(1)
            assert held.result() == home
        assert poll(lambda: metric(proxy, "cot_proxy_admission_in_flight") == 0)
        assert served(proxy, a2, turn(mine)) == home, "B's traffic moved the team's conversation"
        # the conversation leaves its server when that server has no room, and then stays where it went
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(served, proxy, a2, turn(mine, "hold"))
            assert poll(lambda: servers[home].running == 1)
            moved = served(proxy, a1, turn(mine))
            assert moved != home, "no room at home"
            servers[home].let_go(1)
            assert held.result() == home
        assert poll(lambda: metric(proxy, "cot_proxy_admission_in_flight") == 0)
        assert served(proxy, a2, turn(mine)) == moved, "it stays where its cache now is, for the whole team"


def cli(db, command: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), command, "--keys-db", str(db), *args],
                          env=clean_environ(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done
