"""`cot-proxy run` trusts only its user (docs/agents.md, "What run trusts"): run in a hostile repository
(tests/agents/hostile.py) with a fake agent that reports its environment, against real proxies under Gunicorn
and real fake upstreams on loopback.

- the repository's .env and config.yaml are not read (no foreign upstream, none of its code runs), unless the
  user named the file or trusted the directory, and even then no variable that loads code is taken from them;
- the agent gets neither the admin key nor an upstream key, but a key made for the run, allowed its model only,
  revoked however the agent ends;
- a listener that cannot prove it is the user's proxy (a squatter, or a squatter relaying to the real proxy)
  gets no key and no prompt.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.agents.agents import _bounded, _isolated, secure_scratch
from tests.agents.hostile import MODEL, Squatter, fake_agent, hostile_repository, marker_text
from tests.agents.test_run import _listening
from tests.fakes.fake_openai import FakeOpenAI
from tests.polling import poll
from tests.proxy_process import ROOT, free_port, running_proxy

pytestmark = pytest.mark.timeout(180)

ADMIN = "sk-proxy-admin-key-of-the-user-0123456789"
UPSTREAM_KEY = "sk-user-upstream-key-0123456789abcdef"
RUN = [sys.executable, str(ROOT / "cot_proxy.py"), "run"]


def user_environment(tmp_path: Path, agent_dir: Path, **settings: str) -> dict[str, str]:
    """The user's shell: their upstream key, their admin key, auth on; an empty PATH entry (the working
    directory) before the agent's folder."""
    env = _isolated(tmp_path / "home", {"XDG_RUNTIME_DIR": str(secure_scratch()), "HOST": "127.0.0.1",
                                         "WORKERS": "1", "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN,
                                         "OPENAI_API_KEY": UPSTREAM_KEY, "BACKEND": "openai",
                                         "FAKE_AGENT_DUMP": str(tmp_path / "agent.json"), **settings})
    env["PATH"] = os.pathsep.join(["", str(agent_dir), env["PATH"]])
    if os.environ.get("FAST_PATH"):
        env["FAST_PATH"] = os.environ["FAST_PATH"]
    return env


def agent_report(tmp_path: Path) -> dict:
    dump = tmp_path / "agent.json"
    return json.loads(dump.read_text()) if dump.exists() else {}


def status_with(url: str, key: str) -> int:
    request = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def assert_no_key_in(env: dict[str, str], *secrets: str) -> None:
    for name in ("API_KEY_SECRET", "OPENAI_API_KEY", "COT_PROXY_KEY", "COT_PROXY_GENERATED_API_KEY"):
        assert name not in env, name
    leaked = [name for name, value in env.items() for secret in secrets if secret in value]
    assert not leaked, f"keys in the agent's environment: {leaked}"


def run_keys(db: Path) -> list[tuple[str, str, float, int, int, str]]:
    """The run keys in a store: (name, models, revoked, rpm, budget tokens, budget period)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT name, models, revoked, rpm, budget_tokens, budget_period FROM keys "
                           "WHERE name LIKE 'run-%'").fetchall()


# ---- the hostile repository ------------------------------------------------------------------------------------

def test_a_hostile_repository_gets_nothing(tmp_path):
    """Untrusted directory, no terminal: its .env and config.yaml are left out (one line says so), so the proxy
    run starts sends the user's upstream key to the user's upstream, not the repository's; none of the
    repository's code runs (LD_PRELOAD, PYTHONPATH, NODE_OPTIONS, BASH_ENV, its argoproxy package, its `claude`);
    the agent's environment holds no key of the proxy's, and its run key works for its model only and is
    revoked when it exits."""
    port = free_port()
    with FakeOpenAI() as theirs, FakeOpenAI() as ours:
        repo = tmp_path / "repo"
        marker = hostile_repository(repo, theirs.base_url, free_port())
        agent_dir = tmp_path / "bin"
        fake_agent(agent_dir)
        env = user_environment(tmp_path, agent_dir, TARGET_BASE_URL=ours.base_url, PORT=str(port))
        result = _bounded([*RUN, "--", "claude", "-p", "hi"], env, repo, 120)
        report = f"exit {result.returncode}\n{result.stderr[-3000:]}"
        assert marker_text(marker) == "", report
        assert theirs.received == [], "the repository's upstream was reached"
        assert result.returncode == 0, report
        assert f"not reading .env, config.yaml in {repo} (a directory you have not trusted)" in result.stderr, report
        chats = [r for r in ours.received if r.path.endswith("/chat/completions")]
        assert chats and all(r.headers.get("Authorization") == f"Bearer {UPSTREAM_KEY}" for r in chats)
        agent = agent_report(tmp_path)
        assert agent["chat"] == 200 and agent["other_model"] == 403, agent
        assert_no_key_in(agent["env"], ADMIN, UPSTREAM_KEY, "sk-proxy-the-repository-knows-it")
        for name in ("LD_PRELOAD", "PYTHONPATH", "NODE_OPTIONS", "BASH_ENV"):
            assert name not in agent["env"], name
        run_key = agent["env"]["ANTHROPIC_AUTH_TOKEN"]
        assert run_key.startswith("sk-proxy-") and run_key != ADMIN
        assert not (repo / "keys.db").exists(), "the run's key was written into the repository"
        (name, models, revoked, *_), = run_keys(tmp_path / "home" / ".config" / "argoproxy" / "keys.db")
        assert name.startswith("run-claude-") and models == MODEL and revoked > 0
        assert poll(lambda: not _listening(port), timeout=10), "the proxy run started outlived the agent"


def test_a_trusted_directory_is_read_but_never_for_what_loads_code(tmp_path):
    """Once the user trusted the directory, its .env and config.yaml are the proxy's settings (here: the user's
    own second upstream), but LD_PRELOAD, PYTHONPATH, NODE_OPTIONS and BASH_ENV from its .env are not taken
    (said in one line), so the proxy and the agent run none of that code."""
    port = free_port()
    with FakeOpenAI() as theirs, FakeOpenAI() as ours:
        repo = tmp_path / "repo"
        marker = hostile_repository(repo, theirs.base_url, port)
        (repo / "config.yaml").write_text(f"target_base_url: {theirs.base_url}\n")
        trusted = tmp_path / "home" / ".config" / "argoproxy" / "trusted_dirs"
        trusted.parent.mkdir(parents=True)
        trusted.write_text(f"{repo.resolve()}\n")
        agent_dir = tmp_path / "bin"
        fake_agent(agent_dir)
        env = user_environment(tmp_path, agent_dir)  # no TARGET_BASE_URL, no PORT: the trusted files say them
        del env["OPENAI_API_KEY"]
        env = {k: v for k, v in env.items() if k != "ENABLE_AUTH"}
        (repo / ".env").write_text((repo / ".env").read_text().replace("ENABLE_AUTH=false", "ENABLE_AUTH=true"))
        result = _bounded([*RUN, "--", "claude"], env, repo, 120)
        report = f"exit {result.returncode}\n{result.stderr[-3000:]}"
        assert marker_text(marker) == "", report
        assert result.returncode == 0, report
        assert "not taking BASH_ENV, " in result.stderr and "NODE_OPTIONS, PYTHONPATH from" in result.stderr, report
        assert [r for r in theirs.received if r.path.endswith("/chat/completions")], "the trusted upstream is unused"
        agent = agent_report(tmp_path)
        assert agent["chat"] == 200, agent
        assert_no_key_in(agent["env"], ADMIN, "sk-proxy-the-repository-knows-it")


def test_named_files_are_read_from_an_untrusted_directory(tmp_path):
    """--config and --env-file name the files: read whatever the directory is, and no question is asked."""
    with FakeOpenAI() as up:
        elsewhere = tmp_path / "mine"
        elsewhere.mkdir()
        port = free_port()
        (elsewhere / "proxy.yaml").write_text(f"target_base_url: {up.base_url}\nport: {port}\n")
        (elsewhere / "proxy.env").write_text(f"OPENAI_API_KEY={UPSTREAM_KEY}\n")
        workdir = tmp_path / "work"
        workdir.mkdir()
        (workdir / ".env").write_text("TARGET_BASE_URL=http://127.0.0.1:9/v1\n")
        agent_dir = tmp_path / "bin"
        fake_agent(agent_dir)
        env = {k: v for k, v in user_environment(tmp_path, agent_dir).items() if k != "OPENAI_API_KEY"}
        result = _bounded([*RUN, "--config", str(elsewhere / "proxy.yaml"), "--env-file",
                           str(elsewhere / "proxy.env"), "--", "claude"], env, workdir, 120)
        report = f"exit {result.returncode}\n{result.stderr[-3000:]}"
        assert result.returncode == 0, report
        assert f"starting the proxy on http://127.0.0.1:{port}" in result.stderr, report
        assert "not reading" not in result.stderr  # .env is not asked about: a file was named in its place
        chats = [r for r in up.received if r.path.endswith("/chat/completions")]
        assert chats and chats[0].headers.get("Authorization") == f"Bearer {UPSTREAM_KEY}"


def test_the_question_is_asked_on_a_terminal_and_remembered(tmp_path):
    """On a terminal run asks once; "y" keeps the directory in the user's trusted_dirs (mode 0600), and the next
    run, without a terminal, reads the files without a word."""
    with FakeOpenAI() as up:
        repo = tmp_path / "repo"
        repo.mkdir()
        port = free_port()
        (repo / "config.yaml").write_text(f"target_base_url: {up.base_url}\nport: {port}\n")
        agent_dir = tmp_path / "bin"
        fake_agent(agent_dir)
        env = user_environment(tmp_path, agent_dir)
        leader, follower = pty.openpty()
        proc = subprocess.Popen([*RUN, "--", "claude"], cwd=repo, env=env, stdin=follower, stderr=follower,
                                stdout=subprocess.DEVNULL, start_new_session=True)
        os.close(follower)
        seen = b""
        try:
            while b"[y/N]" not in seen:
                chunk = os.read(leader, 4096)
                assert chunk, seen
                seen += chunk
            assert b"config.yaml" in seen and b"trusted_dirs" in seen
            os.write(leader, b"y\n")
            assert proc.wait(120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(leader)
        trusted = tmp_path / "home" / ".config" / "argoproxy" / "trusted_dirs"
        assert trusted.read_text() == f"{repo.resolve()}\n" and trusted.stat().st_mode & 0o777 == 0o600
        assert [r for r in up.received if r.path.endswith("/chat/completions")]
        again = _bounded([*RUN, "--", "claude"], env, repo, 120)
        assert again.returncode == 0 and "not reading" not in again.stderr, again.stderr


# ---- the key the agent gets ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def user_proxy(tmp_path_factory):
    """The user's own proxy, already running (auth on, team keys in a file of theirs)."""
    db = tmp_path_factory.mktemp("store") / "keys.db"
    with FakeOpenAI() as up, running_proxy(BACKEND="openai", TARGET_BASE_URL=up.base_url, ENABLE_AUTH="true",
                                           API_KEY_SECRET=ADMIN, KEYS_DB=str(db)) as proxy:
        yield proxy, db


@pytest.mark.parametrize("ending", ["exit", "crash", "ctrl-c", "sigterm"])
def test_the_run_key_is_revoked_however_the_agent_ends(user_proxy, tmp_path, ending):
    """The agent's key is a team key of the run's, allowed the run's model; when the agent exits, crashes, is
    stopped by Ctrl+C (SIGINT to the terminal's process group) or run gets SIGTERM, the key is refused
    afterwards."""
    proxy, db = user_proxy
    agent_dir = tmp_path / "bin"
    fake_agent(agent_dir)
    env = user_environment(tmp_path, agent_dir, PORT=str(proxy.port), KEYS_DB=str(db),
                           FAKE_AGENT_MODE={"exit": "exit", "crash": "crash"}.get(ending, "wait"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc = subprocess.Popen([*RUN, "--", "claude"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        agent = poll(lambda: agent_report(tmp_path), timeout=60)
        assert agent, proc.stderr.read() if proc.poll() is not None else "the agent did not start"
        key = agent["env"]["ANTHROPIC_AUTH_TOKEN"]
        assert agent["chat"] == 200 and agent["other_model"] == 403, agent
        if ending == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        elif ending == "sigterm":
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == {"exit": 0, "crash": 3}.get(ending, code), proc.stderr.read()
    assert_no_key_in(agent["env"], ADMIN, UPSTREAM_KEY)
    assert poll(lambda: status_with(proxy.url, key) == 401, timeout=10), "the run's key outlived the run"
    assert status_with(proxy.url, ADMIN) == 200  # the user's own key is untouched


def test_a_team_key_user_hands_the_agent_that_key_and_no_other(user_proxy, tmp_path):
    """COT_PROXY_KEY a team key of the user's (no admin key in their shell): the agent gets that key as it is, so
    its limits hold exactly (a key made from it would count on windows of its own: twice the rate or the budget
    left), and never the admin or the upstream key; no run key is made."""
    proxy, db = user_proxy
    made = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "keys", "--keys-db", str(db), "create",
                           f"alice-{tmp_path.name}", "--models", "fake-*", "--rpm", "50", "--budget", "100000/day"],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    alice = made.stdout.strip()
    agent_dir = tmp_path / "bin"
    fake_agent(agent_dir)
    env = user_environment(tmp_path, agent_dir, PORT=str(proxy.port), KEYS_DB=str(db), COT_PROXY_KEY=alice)
    del env["API_KEY_SECRET"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    before = run_keys(db)
    result = _bounded([*RUN, "--", "claude"], env, workdir, 120)
    assert result.returncode == 0, result.stderr
    agent = agent_report(tmp_path)
    assert agent["chat"] == 200 and agent["other_model"] == 403, agent
    assert_no_key_in(agent["env"], ADMIN, UPSTREAM_KEY)
    assert agent["env"]["ANTHROPIC_AUTH_TOKEN"] == alice
    assert run_keys(db) == before and "your client key (COT_PROXY_KEY), with its own limits" in result.stderr


@pytest.mark.parametrize("with_key", [True, False], ids=["COT_PROXY_KEY", "no-key"])
def test_a_second_shell_without_enable_auth_uses_cot_proxy_key(user_proxy, tmp_path, with_key):
    """The README's team block in two shells: the proxy runs with auth on in the first; the second has no
    ENABLE_AUTH, only COT_PROXY_KEY. run hands the agent that key (it uses it whenever it is set); with none, it
    says that the proxy wants a key and how to give one, not that the key store is wrong."""
    proxy, db = user_proxy
    made = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "keys", "--keys-db", str(db), "create",
                           f"bob-{tmp_path.name}", "--models", "fake-*"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    agent_dir = tmp_path / "bin"
    fake_agent(agent_dir)
    env = user_environment(tmp_path, agent_dir, PORT=str(proxy.port), KEYS_DB=str(db),
                           **({"COT_PROXY_KEY": made.stdout.strip()} if with_key else {}))
    del env["API_KEY_SECRET"], env["ENABLE_AUTH"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = _bounded([*RUN, "--", "claude"], env, workdir, 120)
    assert "KEYS_DB" not in result.stderr, result.stderr
    if with_key:
        assert result.returncode == 0, result.stderr
        assert agent_report(tmp_path)["env"]["ANTHROPIC_AUTH_TOKEN"] == made.stdout.strip()
    else:
        assert result.returncode != 0 and not agent_report(tmp_path)
        assert "set COT_PROXY_KEY" in result.stderr, result.stderr


# ---- the listener ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("relaying", [False, True], ids=["answering", "relaying-to-the-real-proxy"])
def test_a_squatter_on_the_port_gets_no_key_and_no_prompt(user_proxy, tmp_path, relaying):
    """Something else holds the proxy's port: run asks it for the listener proof, which it cannot give (a made-up
    answer; or the real proxy's answer relayed, bound to the relay's own connection), so run stops with one
    line before any key or prompt is sent, and the agent never starts."""
    proxy, db = user_proxy
    port = free_port()
    agent_dir = tmp_path / "bin"
    fake_agent(agent_dir)
    env = user_environment(tmp_path, agent_dir, PORT=str(port), KEYS_DB=str(db), COT_PROXY_KEY=ADMIN)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Squatter(port, relay_to=proxy.port if relaying else None) as squatter:
        result = _bounded([*RUN, "--", "claude", "-p", "PROMPT-OF-THE-USER"], env, workdir, 120)
        received = squatter.received()
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"cot_proxy.py run: what listens on http://127.0.0.1:{port} did not prove it is your proxy, so it gets no "
        "key and no prompt: stop it, or give this run another --port"), result.stderr
    assert b"cot-proxy/proof" in received  # it was asked
    for secret in (ADMIN, UPSTREAM_KEY, "sk-proxy-", "PROMPT-OF"):
        assert secret.encode() not in received, secret
    assert agent_report(tmp_path) == {}, "the agent was started"
    assert not [row for row in run_keys(db) if not row[2]], "a run key was left active"


def test_an_http_proxy_in_the_users_shell_never_sees_a_key(user_proxy, tmp_path):
    """A corporate HTTP proxy in the user's shell (http_proxy, HTTP_PROXY) whose no_proxy leaves out loopback:
    run's own questions to the proxy (its model list, asked with the admin key) went through it, and so did the
    agent's requests; they go straight to the proxy on 127.0.0.1, and the agent's NO_PROXY names its host."""
    proxy, db = user_proxy
    agent_dir = tmp_path / "bin"
    fake_agent(agent_dir)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Squatter(free_port()) as corporate:
        through = f"http://127.0.0.1:{corporate.port}"
        env = user_environment(tmp_path, agent_dir, PORT=str(proxy.port), KEYS_DB=str(db), http_proxy=through,
                               HTTP_PROXY=through, no_proxy="intranet.example", NO_PROXY="intranet.example")
        result = _bounded([*RUN, "--", "claude"], env, workdir, 120)
        received = corporate.received()
    assert result.returncode == 0, result.stderr
    assert received == b"", received[:300]
    agent = agent_report(tmp_path)
    assert agent["chat"] == 200, agent
    for name in ("no_proxy", "NO_PROXY"):
        assert agent["env"][name] == "intranet.example,127.0.0.1", agent["env"][name]


def test_agents_asks_no_model_of_a_squatter(user_proxy, tmp_path):
    """`cot-proxy agents` lists the models of the user's proxy only: a squatter gets the proof's question and no
    key."""
    proxy, _ = user_proxy
    agent_dir = tmp_path / "bin"
    fake_agent(agent_dir)
    port = free_port()
    env = user_environment(tmp_path, agent_dir, PORT=str(port))
    with Squatter(port) as squatter:
        result = _bounded([sys.executable, str(ROOT / "cot_proxy.py"), "agents"], env, tmp_path, 60)
        received = squatter.received()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"proxy: http://127.0.0.1:{port} (something listens there that did not prove it "
                                    "is your proxy: not asked)\n"), result.stdout
    assert "ANTHROPIC_MODEL=MODEL" in result.stdout and ADMIN.encode() not in received
    env["PORT"] = str(proxy.port)
    mine = _bounded([sys.executable, str(ROOT / "cot_proxy.py"), "agents"], env, tmp_path, 60)
    assert f"proxy: {proxy.url} (listening)" in mine.stdout and f"ANTHROPIC_MODEL={MODEL}" in mine.stdout, mine.stdout


def test_the_proof_route_is_open_and_reads_no_file_it_was_not_made_for(user_proxy, tmp_path):
    """Auth on, no key: the route answers (a 404 in the API's error shape) instead of asking for a key, and a file
    of another name, or one others may read, gets no proof."""
    proxy, _ = user_proxy
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    (folder / "secret.txt").write_text("s" * 32)
    (folder / "secret.txt").chmod(0o600)
    for path in (folder / "secret.txt", Path("/etc/passwd"), tmp_path):
        request = urllib.request.Request(f"{proxy.url}/cot-proxy/proof", headers={
            "X-Cot-Proxy-Proof-File": str(path), "X-Cot-Proxy-Challenge": "c"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 404
        assert json.loads(refused.value.read())["error"]["code"] == "no_proof"
