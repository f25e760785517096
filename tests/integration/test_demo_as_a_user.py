"""`./run_app.sh demo` tried as a new user tries it, with two demo proxies for the module (as started, and with
auth and DEBUG on): the agent line it prints run again and again, keys made with `./run_app.sh keys create`
where the demo was started (and the request said once in the log), a stored Responses request, `./run_app.sh mcp
list` as --help prints it, and `agents`."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.agents.agents import secure_scratch
from tests.agents.hostile import fake_agent
from tests.integration.test_nothing_configured import bare_env
from tests.polling import poll
from tests.proxy_process import ROOT, free_port

ADMIN = "sk-admin-of-the-demo-0123456789"


class Demo:
    def __init__(self, home: Path, auth: bool) -> None:
        self.home, self.checkout, self.port = home, home / "checkout", free_port()
        self.checkout.mkdir()
        # the directory `run` is started in is trusted, as the checkout is (argoproxy/launch/sources.py)
        trusted = home / ".config" / "argoproxy" / "trusted_dirs"
        trusted.parent.mkdir(parents=True, mode=0o700)
        trusted.write_text(f"{self.checkout.resolve()}\n")
        trusted.chmod(0o600)
        fake_agent(home / "bin")
        self.env = bare_env(home, HOST="127.0.0.1", COT_PROXY_VENV=sys.prefix, XDG_RUNTIME_DIR=str(secure_scratch()),
                            **({"ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN, "DEBUG": "1"} if auth else {}))
        self.env["PATH"] = os.pathsep.join([str(home / "bin"), self.env["PATH"]])
        self.log = home / "demo.log"

    def app(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ROOT / "run_app.sh"), *args], cwd=self.checkout, env={**self.env, **env},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    def post(self, path: str, key: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        import urllib.error
        import urllib.request
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", json.dumps(body).encode(),
                                         {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo as the README starts it (auth off)."""
    yield from started(Demo(tmp_path_factory.mktemp("demo"), auth=False))


@pytest.fixture(scope="module")
def demo_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from started(Demo(tmp_path_factory.mktemp("demo-auth"), auth=True))


def started(made: Demo) -> Iterator[Demo]:
    with made.log.open("wb") as out:
        proc = subprocess.Popen([str(ROOT / "run_app.sh"), "demo", "--port", str(made.port)], cwd=made.checkout,
                                env=made.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        assert poll(lambda: " run " in made.log.read_text(), timeout=60), made.log.read_text()
        yield made
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)


def test_the_printed_agent_line_works_every_time(demo: Demo) -> None:
    """`run` asks the proxy's /mcp first, which the demo model answered 404 without reading the body: the next
    request on that connection began inside it (`400 Bad request syntax ('{"jsonrpc"...')`, 3 runs in 6)."""
    line, = [s.strip() for s in demo.log.read_text().splitlines() if s.strip().endswith("-- claude")
             or "-- claude " in s]
    assert "warning" not in demo.log.read_text()  # its stores set only where its settings use them
    words = shlex.split(line.split("#")[0])
    assert words[0].endswith("run_app.sh") and words[1:] == ["run", "--port", str(demo.port), "--model", "demo",
                                                              "--", "claude"], line
    for attempt in range(6):
        dump = demo.home / f"agent-{attempt}.json"
        done = subprocess.run([str(ROOT / "run_app.sh"), *words[1:]], cwd=demo.checkout,
                              env={**demo.env, "FAKE_AGENT_DUMP": str(dump)}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(dump.read_text())["chat"] == 200, (attempt, done.stderr)


def test_keys_made_where_the_demo_runs_work_against_it(demo_with_auth: Demo) -> None:
    demo = demo_with_auth
    made = demo.app("keys", "create", "alice")
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[0]
    assert str(demo.checkout / "keys.db") in made.stdout + made.stderr
    status, answer = demo.post("/v1/chat/completions", key, {"model": "demo",
                                                             "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200, answer
    said = poll(lambda: [line for line in demo.log.read_text().splitlines()
                         if "/v1/chat/completions" in line and "curl" not in line])
    assert len(said) == 1 and "POST /v1/chat/completions model=demo status=200" in said[0], said  # DEBUG: once


def test_stored_responses_go_where_the_user_may_write_never_dev(demo: Demo) -> None:
    status, answer = demo.post("/v1/responses", ADMIN, {"model": "demo", "input": "remember this", "store": True})
    assert status == 200, answer
    status, follow = demo.post("/v1/responses", ADMIN, {"model": "demo", "input": "and this",
                                                        "previous_response_id": answer["id"]})
    assert status == 200, follow
    assert (demo.checkout / "responses.db").is_file()  # beside keys.db, where `keys create` puts that


def test_mcp_list_as_help_prints_it(demo: Demo) -> None:
    assert re.search(r"run_app\.sh mcp list \[config\.yaml\]", demo.app("--help").stdout)
    listed = demo.app("mcp", "list", "--port", str(demo.port))
    assert listed.returncode == 2 and "unrecognized arguments" not in listed.stderr, listed.stderr
    assert listed.stderr.strip().endswith("serves no MCP servers: name them under mcp_servers in its config "
                                          "(docs/mcp.md)"), listed.stderr


def test_agents_shows_the_websocket_mode_run_gives_codex(demo: Demo) -> None:
    codex = demo.home / "bin" / "codex"
    codex.write_text((demo.home / "bin" / "claude").read_text())
    codex.chmod(0o755)
    shown = demo.app("agents", "--port", str(demo.port))
    assert shown.returncode == 0, shown.stderr
    block = shown.stdout.split("\ncodex: ")[1].split("\n\n")[0]
    assert 'wire_api = "responses", supports_websockets = true }' in block, shown.stdout


def test_a_second_demo_on_the_same_port_says_which_setting_in_one_line(demo: Demo) -> None:
    done = demo.app("demo", PORT=str(demo.port))
    assert done.returncode == 2 and done.stderr.strip() == (
        f"cot_proxy: bad setting PORT: port {demo.port} on 127.0.0.1 is already in use (another server, or this "
        "proxy started twice): stop it or choose another port"), done.stderr  # was `port (in /dev/null)`
