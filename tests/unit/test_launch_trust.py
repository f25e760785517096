"""The launcher's rules, in-process (the whole runs: tests/agents/test_run_trust.py): which files of a working
directory it reads (argoproxy/launch/sources.py), which variables a file never sets, which leave the agent's
environment (argoproxy/launch/environments.py), the listener proof's file checks (argoproxy/edge/listener_proof.py)
and the install command each agent's message gives."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from argoproxy.config.settings import CONFIG_SEARCH_PATH, load_settings
from argoproxy.edge import listener_proof
from argoproxy.launch.agents import AGENTS, Setup, models_named
from argoproxy.launch.environments import agent_environment
from argoproxy.launch.sources import USER_SEARCH, choose, trusted_dirs_file, without_code_loaders

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


class Asked:
    def __init__(self, answer: bool | None) -> None:
        self.answer, self.questions = answer, []

    def __call__(self, question: str) -> bool | None:
        self.questions.append(question)
        return self.answer


def repo_with(tmp_path: Path, *names: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in names:
        (repo / name).write_text("")
    return repo


# ---- which files -------------------------------------------------------------------------------------------------

def test_an_untrusted_directory_without_a_terminal_is_not_read(tmp_path, home):
    repo, said = repo_with(tmp_path, ".env", "config.yaml", "keys.db"), []
    sources = choose(repo, None, None, Asked(None), said.append)
    assert sources.env_file is None and sources.config is None and sources.search == USER_SEARCH
    assert "./config.yaml" not in sources.search
    assert sources.data_dir == home / ".config" / "argoproxy"  # not the directory's keys.db
    assert said == [f"not reading .env, config.yaml, keys.db in {repo.resolve()} (a directory you have not trusted): "
                    "name a file with --config or --env-file, or run on a terminal to be asked once"]
    assert not trusted_dirs_file().exists()


def test_yes_on_the_terminal_trusts_the_directory_from_then_on(tmp_path, home):
    repo, said = repo_with(tmp_path, ".env", "config.yaml"), []
    asked = Asked(True)
    sources = choose(repo, None, None, asked, said.append)
    assert sources.env_file == repo.resolve() / ".env" and sources.search == CONFIG_SEARCH_PATH
    assert sources.data_dir is None and said == []
    assert ".env, config.yaml" in asked.questions[0] and str(trusted_dirs_file()) in asked.questions[0]
    assert trusted_dirs_file().read_text() == f"{repo.resolve()}\n"
    assert trusted_dirs_file().stat().st_mode & 0o777 == 0o600
    again = Asked(False)
    assert choose(repo, None, None, again, said.append).env_file == repo.resolve() / ".env"
    assert again.questions == []


def test_no_on_the_terminal_reads_nothing_and_remembers_nothing(tmp_path, home):
    repo = repo_with(tmp_path, "config.yaml")
    assert choose(repo, None, None, Asked(False), lambda line: None).search == USER_SEARCH
    assert not trusted_dirs_file().exists()


def test_named_files_are_read_and_asked_about_no_further(tmp_path, home):
    repo = repo_with(tmp_path, ".env", "config.yaml")
    asked = Asked(None)
    sources = choose(repo, "mine.yaml", str(tmp_path / "mine.env"), asked, lambda line: None)
    assert sources.config == Path("mine.yaml").absolute()  # as the user named it, from where they are
    assert sources.env_file == tmp_path / "mine.env" and asked.questions == []


def test_a_directory_with_nothing_to_read_asks_nothing_and_gets_no_keys_db(tmp_path, home):
    repo, asked, said = repo_with(tmp_path, "README.md"), Asked(None), []
    sources = choose(repo, None, None, asked, said.append)
    assert asked.questions == [] and said == [] and sources.env_file is None
    assert sources.data_dir == home / ".config" / "argoproxy"  # a run's key is not written into the directory


def test_the_checkout_runs_code_comes_from_is_trusted_as_its_code_is(home):
    """./run_app.sh writes config.yaml into its checkout; `./run_app.sh run -- claude` there reads it unasked."""
    asked = Asked(None)
    found = choose(ROOT, None, None, asked, lambda line: None)
    assert asked.questions == [] and found.search == CONFIG_SEARCH_PATH and found.data_dir is None


def test_a_trust_list_others_can_write_is_not_the_users(tmp_path, home):
    repo = repo_with(tmp_path, ".env")
    listed = trusted_dirs_file()
    listed.parent.mkdir(parents=True)
    listed.write_text(f"{repo.resolve()}\n")
    listed.chmod(0o666)
    assert choose(repo, None, None, Asked(None), lambda line: None).env_file is None
    listed.chmod(0o600)
    assert choose(repo, None, None, Asked(None), lambda line: None).env_file == repo.resolve() / ".env"


def test_xdg_config_home_moves_the_trust_list(tmp_path, home, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert trusted_dirs_file() == tmp_path / "xdg" / "argoproxy" / "trusted_dirs"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")  # not absolute: ignored, as the spec says
    assert trusted_dirs_file() == home / ".config" / "argoproxy" / "trusted_dirs"


def test_a_file_never_sets_what_loads_code():
    given = {"TARGET_BASE_URL": "http://x/v1", "OPENAI_API_KEY": "sk-x", "HTTPS_PROXY": "http://p:3128",
             "REQUESTS_CA_BUNDLE": "/etc/ca.pem", "LD_PRELOAD": "./evil.so", "LD_LIBRARY_PATH": ".", "LD_AUDIT": "a",
             "DYLD_INSERT_LIBRARIES": "x", "PYTHONPATH": ".", "PYTHONSTARTUP": "x.py", "PYTHONHOME": ".",
             "NODE_OPTIONS": "--require x", "BASH_ENV": "x.sh", "ENV": "x.sh", "PATH": ".:/usr/bin", "HOME": ".",
             "XDG_CONFIG_HOME": ".", "GUNICORN_CMD_ARGS": "-c evil.py", "GIT_SSH_COMMAND": "x",
             "GEVENT_RESOLVER": "evil.Resolver", "OPENSSL_CONF": "x.cnf", "PERL5OPT": "-Mx", "RUBYOPT": "-rx"}
    kept, dropped = without_code_loaders(given)
    assert kept == {k: given[k] for k in ("TARGET_BASE_URL", "OPENAI_API_KEY", "HTTPS_PROXY", "REQUESTS_CA_BUNDLE")}
    assert dropped == sorted(set(given) - set(kept))


# ---- the agent's environment ------------------------------------------------------------------------------------

def test_the_agent_gets_none_of_the_proxys_keys():
    environ = {"ENABLE_AUTH": "true", "API_KEY_SECRET": "sk-proxy-admin-1234567890",
               "OPENAI_API_KEY": "sk-up-1234567890", "DASHSCOPE_API_KEY": "sk-ds-1234567890", "ALICE_KEY": "sk-alice-1234567890",
               "KEY_LIMITS": json.dumps({"ALICE_KEY": {"rpm": 5}}), "ROUTED_KEY": "sk-routed-1234567890",
               "MODELS": json.dumps([{"name": "m", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                                      "api_key_env": "ROUTED_KEY"}]),
               "REDIS_URL": "redis://:pw-1234567890@127.0.0.1:6379/0"}
    settings = load_settings({}, environ)
    user = {**environ, "PATH": "/usr/bin", "COT_PROXY_KEY": "sk-proxy-admin-1234567890",
            "COPY_OF_IT": "Bearer sk-up-1234567890", "ANTHROPIC_API_KEY": "sk-ant-1234567890", "TERM": "xterm"}
    setup = Setup(["claude"], {"ANTHROPIC_AUTH_TOKEN": "sk-proxy-run-key-1234567890"}, ("ANTHROPIC_API_KEY",))
    env = agent_environment(setup, user, settings, ["sk-proxy-from-the-key-file-123"])
    assert env == {"PATH": "/usr/bin", "TERM": "xterm", "ENABLE_AUTH": "true", "KEY_LIMITS": environ["KEY_LIMITS"],
                   "MODELS": environ["MODELS"], "ANTHROPIC_AUTH_TOKEN": "sk-proxy-run-key-1234567890"}


def test_the_models_an_agents_own_arguments_name():
    assert models_named(AGENTS["codex"], ["exec", "-m", "gpt-5", "x"]) == ["gpt-5"]
    assert models_named(AGENTS["aider"], ["--model", "openai/gpt-4o", "--message", "-m"]) == ["gpt-4o"]
    assert models_named(AGENTS["opencode"], ["run", "--model=cot_proxy/gpt-4o"]) == ["gpt-4o"]
    assert models_named(AGENTS["claude"], ["-p", "-m"]) == []


# ---- installing an agent -----------------------------------------------------------------------------------------

def test_each_agent_says_how_to_install_the_package_agents_txt_pins():
    pinned = {}
    for line in (ROOT / "agents.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, package, _, registry = line.split()
            pinned[name] = f"npm install -g {package}" if registry == "npm" else f"pip install {package}"
    assert {name: agent.install for name, agent in AGENTS.items()} == pinned


# ---- the listener proof's file -----------------------------------------------------------------------------------

@pytest.fixture
def nonce_file(tmp_path) -> Path:
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    path = folder / listener_proof.FILE_NAME
    path.write_bytes(b"n" * 32)
    path.chmod(0o600)
    return path


def test_the_proof_answers_for_a_private_nonce_file_of_its_user(nonce_file):
    proof = listener_proof.answer({"x-cot-proxy-proof-file": str(nonce_file), "X-Cot-Proxy-Challenge": "c1"},
                                  ("::ffff:127.0.0.1", "40000"))
    assert proof == listener_proof.digest(b"n" * 32, "c1", ("127.0.0.1", "40000"))  # one spelling per address
    assert proof != listener_proof.digest(b"n" * 32, "c1", ("127.0.0.1", "40001"))  # bound to the connection


@pytest.mark.parametrize("spoil", ["file readable by others", "folder open to others", "another name", "a symlink",
                                   "relative", "too long", "no peer", "no challenge"])
def test_the_proof_reads_nothing_else(nonce_file, tmp_path, spoil):
    path, peer, challenge = str(nonce_file), ("127.0.0.1", "40000"), "c1"
    if spoil == "file readable by others":
        nonce_file.chmod(0o644)
    elif spoil == "folder open to others":
        nonce_file.parent.chmod(0o755)
    elif spoil == "another name":
        path = str(nonce_file.with_name("id_rsa"))
        os.rename(nonce_file, path)
    elif spoil == "a symlink":
        target = nonce_file.with_name("target")
        os.rename(nonce_file, target)
        os.symlink(target, nonce_file)
    elif spoil == "relative":
        path = os.path.relpath(nonce_file)
    elif spoil == "too long":
        nonce_file.write_bytes(b"n" * (listener_proof.MAX_NONCE + 1))
    elif spoil == "no peer":
        peer = ("", "")
    elif spoil == "no challenge":
        challenge = ""
    headers = {listener_proof.FILE_HEADER: path, listener_proof.CHALLENGE_HEADER: challenge}
    assert listener_proof.answer(headers, peer) is None
