"""Agent sessions and the request log through the running proxy (two Gunicorn workers, auth on, journals on, an
SQLite key store): the session header on each door's request is on its journal line, in its key's usage by session
(`keys usage --sessions`) and on its request log row; the log pages each door's rows and reads each request's own
line back; `cot-proxy run -- claude` (a stand-in that sends what Claude Code sends) records one session and says its
cost as the run ends."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from argoproxy.requestlog import Filters, detail, page
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.agents.agents import _bounded, _isolated, secure_scratch
from tests.fakes.fake_openai import FakeOpenAI
from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ, running_proxy

pytestmark = pytest.mark.timeout(120)
ADMIN = "admin-key-sessions"
MSG = [{"role": "user", "content": "hi"}]
DOORS = {  # door -> (path, body, the header its clients send the key in)
    "openai": ("/v1/chat/completions", {"model": "gpt-4o", "messages": MSG}, "Authorization"),
    "responses": ("/v1/responses", {"model": "gpt-4o", "input": "hi"}, "Authorization"),
    "messages": ("/v1/messages", {"model": "gpt-4o", "max_tokens": 16, "messages": MSG}, "x-api-key"),
    "google": ("/v1beta/models/gpt-4o:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
               "x-goog-api-key"),
    "ollama": ("/api/chat", {"model": "gpt-4o", "messages": MSG, "stream": False}, "Authorization"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("sessions")
    db, logs = home / "keys.db", home / "logs"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                                             KEYS_DB=str(db), LOG_DIR=str(logs), WORKERS="2") as proxy:
        yield db, logs, proxy


def keys(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "keys", "--keys-db", str(db), *args],
                          env=clean_environ(), capture_output=True, text=True, timeout=60)


def test_each_doors_session_is_on_its_journal_line_usage_and_request_log_row(served):
    db, logs, proxy = served
    made = keys(db, "create", "alice")
    key = made.stdout.strip()
    sent = {}
    for n, (door, (path, body, header)) in enumerate(DOORS.items()):
        for i in range(2):
            session = f"sess-{door}" if i else f"sess-{door}\u00e9"  # (Gunicorn refuses control characters itself)
            value = f"Bearer {key}" if header == "Authorization" else key
            r = requests.post(proxy.url + path, json=body, timeout=30,
                              headers={header: value, "X-Claude-Code-Session-Id": session.encode().decode("latin-1")})
            assert r.status_code == 200, (door, r.text)
            sent[r.headers["X-Cot-Proxy-Request-ID"]] = door
    lines = [json.loads(line) for line in (logs / "client_interaction.jsonl").read_text().splitlines()]
    mine = {line["request_id"]: line for line in lines if line["request_id"] in sent}
    assert {rid: line["front"] for rid, line in mine.items()} == sent
    assert {line["session"] for line in mine.values()} == {f"sess-{d}" for d in DOORS} | \
        {f"sess-{d}__" for d in DOORS}  # é in UTF-8, read as two Latin-1 characters: each one `_`

    def by_session():
        out = keys(db, "usage", "--sessions", "--csv").stdout
        return {row[1]: row for row in csv.reader(out.splitlines()[1:]) if row[0] == "alice"}
    found = poll(lambda: (lambda rows: rows if len(rows) == 2 * len(DOORS) else None)(by_session()), timeout=10)
    assert found is not None, by_session()
    assert all(row[2] == "1" for row in found.values())
    totals = list(csv.reader(keys(db, "usage", "--csv").stdout.splitlines()[1:]))
    alice = [row for row in totals if row[0] == "alice"]
    for column in (3, 4, 5):  # requests, input and output tokens: the sessions' sums are the usage rows'
        assert sum(int(row[column - 1]) for row in found.values()) == sum(int(row[column]) for row in alice)

    store = SQLiteKeyStore(db)
    rows = poll(lambda: (lambda p: p.rows if len(p.rows) == len(sent) else None)(
        page(store, Filters(key="alice"), None)), timeout=10)
    assert rows is not None
    assert {r.request_id: r.door for r in rows} == sent
    assert [r.time for r in rows] == sorted((r.time for r in rows), reverse=True)
    for door in DOORS:
        assert {r.request_id for r in page(store, Filters(key="alice", door=door), None).rows} == \
            {rid for rid, d in sent.items() if d == door}
    for rid in sent:  # each row leads to its own line, written by either worker
        assert detail(store, rid)["line"] == mine[rid]


STAND_IN = '''\
#!{python}
"""Stands in for Claude Code: two requests to the proxy with its session header, the session it was told."""
import json, os, sys, urllib.request
session = sys.argv[sys.argv.index("--session-id") + 1]
for _ in range(2):
    request = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
        data=json.dumps({{"model": os.environ["ANTHROPIC_MODEL"], "max_tokens": 16,
                          "messages": [{{"role": "user", "content": "hi"}}]}}).encode(),
        headers={{"Authorization": "Bearer " + os.environ["ANTHROPIC_AUTH_TOKEN"], "Content-Type": "application/json",
                 "X-Claude-Code-Session-Id": session}})
    urllib.request.urlopen(request, timeout=30).read()
print("SESSION", session)
'''


def test_cot_proxy_run_records_one_session_and_says_its_cost(served, tmp_path):
    db, _, proxy = served
    agents = tmp_path / "bin"
    agents.mkdir()
    program = agents / "claude"
    program.write_text(STAND_IN.format(python=sys.executable))
    program.chmod(0o755)
    env = _isolated(tmp_path / "home", {"XDG_RUNTIME_DIR": str(secure_scratch()), "HOST": "127.0.0.1",
                                         "PORT": str(proxy.port), "TARGET_BASE_URL": "http://127.0.0.1:9/v1",
                                         "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN, "KEYS_DB": str(db)})
    env["PATH"] = os.pathsep.join([str(agents), env["PATH"]])
    result = _bounded([sys.executable, str(ROOT / "cot_proxy.py"), "run", "--", "claude"], env, tmp_path, 60)
    assert result.returncode == 0, result.stderr
    session = result.stdout.split("SESSION ")[1].strip()
    rows = [r for r in SQLiteKeyStore(db).session_usage() if r[1] == session]
    assert len(rows) == 1 and rows[0][0].startswith("run-claude-") and rows[0][4] == 2
    said = [line for line in result.stderr.splitlines() if "this run:" in line]
    assert said == [f"cot_proxy.py run: this run: 2 requests, {rows[0][5] + rows[0][6]} tokens ({rows[0][5]} in, "
                    f"{rows[0][6]} out), $0.00 (session {session})"], result.stderr
