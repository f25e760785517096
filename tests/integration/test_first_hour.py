"""A newcomer's first hour, each step run as the user runs it (`python cot_proxy.py ...` in a directory of their
own, HOME empty): where a step goes wrong, the one line it prints names the real cause and the next step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_nothing_configured import bare_env
from tests.proxy_process import ROOT


def cot_proxy(cwd: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), *args], cwd=cwd, env=bare_env(cwd, **env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ a YAML mistake in config.yaml

BROKEN = "target_base_url: http://127.0.0.1:9/v1\nmodels:\n  a: b\n c: [\n"


def test_a_yaml_mistake_names_the_file_and_its_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(BROKEN)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "proxy.yaml").write_text(BROKEN)
    for args, named in (((), "config.yaml"), (("mine/proxy.yaml",), "mine/proxy.yaml"),
                        (("--config", "mine/proxy.yaml"), "mine/proxy.yaml")):
        done = cot_proxy(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.splitlines() == [
            f"cot_proxy: bad setting {named}:4:2: not valid YAML: expected <block end>, but found "
            "'<block mapping start>' (while parsing a block mapping from line 1); fix that line of the file"], args


# ------------------------------------------------------------------ a key made while auth is off

AUTH_OFF = ("cot_proxy: warning: auth is off (ENABLE_AUTH is not set here or in the config file), so the proxy takes "
            "every request without a key and this key's limits do nothing: start the proxy with ENABLE_AUTH=true (or "
            "enable_auth: true in config.yaml) to require keys")


def test_keys_create_with_auth_off_says_the_key_does_nothing_yet(tmp_path: Path) -> None:
    settings = {"TARGET_BASE_URL": "http://127.0.0.1:9/v1", "KEYS_DB": str(tmp_path / "keys.db")}
    done = cot_proxy(tmp_path, "keys", "create", "alice", "--budget", "1000000/day", **settings)
    assert done.returncode == 0 and done.stdout.startswith("sk-proxy-"), done.stderr
    assert AUTH_OFF in done.stderr.splitlines()
    done = cot_proxy(tmp_path, "keys", "create", "bob", "--budget", "1000000/day", ENABLE_AUTH="true", **settings)
    assert done.returncode == 0 and "auth is off" not in done.stderr, done.stderr


# ------------------------------------------------------------------ the wizard given a URL where nothing listens

def test_the_wizard_given_a_dead_url_says_where_the_url_is(tmp_path: Path) -> None:
    """./run_app.sh's first-run questions answered with a URL where nothing listens, then no to "Continue
    anyway?": the last line says the URL is in the config.yaml the questions wrote, and what to do; the next run
    reads it there and says the same."""
    import io

    import pexpect

    from tests.proxy_process import free_port
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = tmp_path / "config.yaml"
    for first in (True, False):
        child = pexpect.spawn(sys.executable, ["-m", "argoproxy.firstrun"], cwd=str(tmp_path),  # ./run_app.sh's
                              env=bare_env(tmp_path, HOST="127.0.0.1", PYTHONPATH=str(ROOT)), encoding="utf-8",
                              timeout=30, dimensions=(50, 400))
        child.logfile_read = io.StringIO()
        try:
            if first:
                child.expect_exact("Would you like to create it now? [Y/n] ")
                child.sendline("")
                child.expect_exact("Choose 1-3 [1]: ")
                child.sendline("")
                child.expect_exact("Base URL of the OpenAI-compatible server")
                child.sendline(dead)
                child.expect(r"Enter port \[\d+\]: ")
                child.sendline(str(free_port()))
                child.expect_exact("Enable verbose mode? [Y/n] ")
                child.sendline("n")
                child.expect_exact("[y/N] ")
                child.sendline("")
                child.expect_exact("Press enter to continue or Ctrl+C to abort.")
                child.sendline("")
            child.expect_exact("Continue anyway? [y/N] ")
            child.sendline("")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        transcript = child.logfile_read.getvalue()
        last = transcript.strip().splitlines()[-1]
        assert last == (f"Aborting. The URL is set by target_base_url: {dead}/ in {config}: start the server there, or "
                        f"correct it, then run {ROOT / 'run_app.sh'} again (the same question is asked until it "
                        "answers)."), transcript
        assert child.exitstatus == 1 and "Traceback" not in transcript, transcript
        assert "not found" not in transcript or first, transcript  # the second run read the config the first wrote
    # aborted there, the set-up is not recorded for `run` elsewhere; named, `run` says the upstream is not running
    # and where the log of the proxy it started stays
    import os

    from tests.agents.agents import secure_scratch
    from tests.agents.hostile import fake_agent
    assert not (tmp_path / ".config" / "argoproxy" / "first_config").exists()
    elsewhere, runtime = tmp_path / "work", secure_scratch()
    elsewhere.mkdir()
    env = bare_env(tmp_path, XDG_RUNTIME_DIR=str(runtime))
    env["PATH"] = os.pathsep.join([str(fake_agent(tmp_path / "bin").parent), env["PATH"]])
    done = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "run", "--config", str(config), "--", "claude"],
                          cwd=elsewhere, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    log = next(runtime.glob("cot-proxy-*.log"))
    assert done.returncode == 2 and done.stderr.strip().endswith(
        f"lists no model: is its upstream {dead}/ running and serving models? (the proxy's log: {log}) Start it, or "
        "name a model with --model if it lists none"), done.stderr
    assert "cot_proxy listening on" in log.read_text()


# ------------------------------------------------------------------ run from another directory

def test_run_from_another_directory_finds_the_config_the_first_run_wrote(tmp_path: Path) -> None:
    """./run_app.sh's questions answered in the checkout write config.yaml there; `run -- claude` typed in
    another directory (the README's "Read note.txt" example) uses that config: its port, its upstream."""
    import io
    import json
    import os

    import pexpect

    from tests.agents.agents import secure_scratch
    from tests.agents.hostile import fake_agent
    from tests.fakes.fake_openai import FakeOpenAI
    from tests.proxy_process import free_port
    checkout, elsewhere, agents = tmp_path / "checkout", tmp_path / "work", tmp_path / "bin"
    checkout.mkdir()
    elsewhere.mkdir()
    fake_agent(agents)
    port = free_port()
    with FakeOpenAI() as up:
        child = pexpect.spawn(sys.executable, ["-m", "argoproxy.firstrun"], cwd=str(checkout),
                              env=bare_env(tmp_path, HOST="127.0.0.1", PYTHONPATH=str(ROOT)), encoding="utf-8",
                              timeout=30, dimensions=(50, 400))
        child.logfile_read = io.StringIO()
        try:
            for question, answer in (("[Y/n] ", ""), ("Choose 1-3 [1]: ", ""), ("server (e.g.", up.base_url),
                                     ("Enter port [", str(port)), ("[Y/n] ", "n"), ("[y/N] ", ""),
                                     ("Press enter to continue", "")):
                child.expect_exact(question)
                child.sendline(answer)
            child.expect_exact("cot_proxy listening on")  # the user's proxy, in the checkout's shell
            env = bare_env(tmp_path, XDG_RUNTIME_DIR=str(secure_scratch()),
                           FAKE_AGENT_DUMP=str(tmp_path / "agent.json"))
            env["PATH"] = os.pathsep.join([str(agents), env["PATH"]])
            done = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "run", "--", "claude"],
                                  cwd=elsewhere, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=60)
        finally:
            child.kill(2)  # Ctrl+C: the server the first run started stops
            child.close(force=True)
        assert done.returncode == 0, done.stderr
        assert "nothing is configured" not in done.stderr
        assert f"Claude Code -> http://127.0.0.1:{port} " in done.stderr, done.stderr  # the config's port
        report = json.loads((tmp_path / "agent.json").read_text())
        assert report["chat"] == 200 and report["env"]["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}", report
        assert [r for r in up.received if r.path.endswith("/chat/completions")]
    recorded = tmp_path / ".config" / "argoproxy" / "first_config"
    assert recorded.read_text() == f"{checkout / 'config.yaml'}\n" and recorded.stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------------------ prices refresh after ./run_app.sh

@pytest.mark.timeout(900)  # the requirements environment is built once per requirements.txt (cached)
def test_prices_refresh_after_run_app_installs_genai_prices_in_one_line(tmp_path: Path) -> None:
    """`./run_app.sh prices refresh` in the environment run_app.sh makes (requirements.txt only, no
    genai-prices): genai-prices is installed into that environment, said in one line, and the table is written.
    The environment is a fresh one over the cached requirements one (a .pth file), so the cache stays as it is."""
    import glob
    import json

    from argoproxy.spend.refresh import GENAI_PRICES
    from tests.fresh_venv import requirements_venv
    assert f"\n{GENAI_PRICES} " in (ROOT / "requirements-dev.txt").read_text()  # the version the table comes from
    base = requirements_venv()
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)  # pip comes from below, as the rest
    site, = glob.glob(str(venv / "lib" / "python*" / "site-packages"))
    below, = glob.glob(str(base / "lib" / "python*" / "site-packages"))
    Path(site, "requirements.pth").write_text(below + "\n")
    env = bare_env(tmp_path, COT_PROXY_VENV=str(venv))
    table = tmp_path / "table.json"
    done = subprocess.run([str(ROOT / "run_app.sh"), "prices", "refresh", "--output", str(table)], cwd=tmp_path,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    lines = done.stderr.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0] == (f"cot_proxy prices: installing genai-prices==0.2.3 into {venv} (used by `prices refresh` "
                        "only, not by the proxy)"), done.stderr
    assert len(lines) == 2 and lines[1].startswith("cot_proxy prices: ") and f"written to {table}" in lines[1]
    assert json.loads(table.read_text())["about"]["source"] == "genai-prices"


# ------------------------------------------------------------------ trying it with no model server

@pytest.mark.timeout(900)  # `pip install .`'s environment is built once per requirements (cached)
@pytest.mark.parametrize("how", ["clone", "pip install ."])
def test_demo_serves_a_demo_model_and_its_printed_request_works(tmp_path: Path, how: str) -> None:
    """`python cot_proxy.py demo` (a clone) or `cot-proxy demo` (after `pip install .`), no model server and
    nothing configured: the proxy serves its demo model, and the curl line it prints works as printed."""
    import json
    import signal

    from tests.polling import poll
    from tests.proxy_process import free_port
    if how == "clone":
        command = [sys.executable, str(ROOT / "cot_proxy.py")]
    else:
        from tests.fresh_venv import installed_venv
        command = [str(installed_venv() / "bin" / "cot-proxy")]
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "demo", "--port", str(port)], cwd=tmp_path,
                                env=bare_env(tmp_path, HOST="127.0.0.1"), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        printed = poll(lambda: [line.strip() for line in log.read_text().splitlines()
                                if line.strip().startswith("curl ")], timeout=60)
        assert printed, log.read_text()
        said = subprocess.run(printed[0], shell=True, capture_output=True, text=True, timeout=30)
        answer = json.loads(said.stdout)
        assert answer["choices"][0]["message"]["content"].endswith("You said: Say hello."), answer
        text = log.read_text()
        assert f"run --port {port} --model demo -- claude" in text and "warning" not in text, text
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)


# ------------------------------------------------------------------ an upstream that refuses the proxy's key

@pytest.mark.parametrize("refusal", ["401 no key", "401 wrong key", "404 wrong path"])
def test_the_start_up_check_says_whose_key_or_which_path(tmp_path: Path, refusal: str) -> None:
    """./run_app.sh's check of the upstream's model list, sent with the proxy's key: a 401 names the key variable
    (not set, or refused), a 404 the path; no longer "ok"."""
    import io

    import pexpect

    from tests.fakes.fake_openai import FakeOpenAI, Reply
    from tests.proxy_process import free_port
    with FakeOpenAI() as up:
        status = int(refusal[:3])
        up.add(Reply({"error": {"message": "no", "type": "invalid_request_error"}}, status=status, path="/models"))
        base = up.base_url if status == 401 else up.base_url.replace("/v1/", "/")
        (tmp_path / "config.yaml").write_text(f"target_base_url: {base}\nport: {free_port()}\n")
        key = {"OPENAI_API_KEY": "sk-wrong-key-0123456789"} if refusal == "401 wrong key" else {}
        child = pexpect.spawn(sys.executable, ["-m", "argoproxy.firstrun"], cwd=str(tmp_path),
                              env=bare_env(tmp_path, HOST="127.0.0.1", PYTHONPATH=str(ROOT), **key),
                              encoding="utf-8", timeout=30, dimensions=(50, 400))
        child.logfile_read = io.StringIO()
        try:
            child.expect_exact("Continue anyway? [y/N] ")
            child.sendline("")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
    said = {"401 no key": "failed: the upstream wants a key (HTTP 401) and OPENAI_API_KEY is not set: set it in the "
                          "environment or in .env",
            "401 wrong key": "failed: the upstream refused the proxy's key OPENAI_API_KEY (HTTP 401): set "
                             "OPENAI_API_KEY to a key of this server",
            "404 wrong path": f"failed: nothing at {base}models (HTTP 404): is the base URL's path right? (vLLM, "
                              "llama.cpp, Ollama and OpenAI serve their API under /v1)"}[refusal]
    transcript = child.logfile_read.getvalue()
    assert f"Validating openai API connectivity: {base}models ... {said}" in transcript, transcript
    assert "sk-wrong-key" not in transcript


@pytest.mark.parametrize("with_key", [False, True], ids=["no OPENAI_API_KEY", "OPENAI_API_KEY refused"])
def test_a_refused_key_is_said_to_the_client_and_in_health(with_key: bool) -> None:
    """The upstream answers 401: the client's error says whose key it refused (the proxy's; or, the proxy having
    none, the client's own key passed on), and /health says a refusal of the proxy's key (503) until the upstream
    answers a request again."""
    import openai
    import requests as http

    from tests.fakes.fake_openai import FakeOpenAI, Reply
    from tests.proxy_process import running_proxy
    key = {"OPENAI_API_KEY": "sk-wrong-key-0123456789"} if with_key else {}
    whose = ("the proxy's key (OPENAI_API_KEY, where the proxy runs)" if with_key else
             "the client's own key, passed on because the proxy has no OPENAI_API_KEY (set it where the proxy runs, "
             "or send a key of the upstream's)")
    with FakeOpenAI() as up, running_proxy(BACKEND="openai", TARGET_BASE_URL=up.base_url, **key) as proxy:
        assert proxy.health()[0] == 200
        up.add(Reply({"error": {"message": "You didn't provide an API key.", "type": "invalid_request_error",
                                "code": "invalid_api_key"}}, status=401))
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="sk-the-clients-own", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
        message = f"The upstream refused {whose} (401): You didn't provide an API key."
        assert refused.value.body["message"] == message, refused.value.body
        status, body = proxy.health()
        if with_key:
            assert (status, body["error"]) == (503, f"Health check failed: {message}"), body
        else:  # a client's own key: the client's to fix, the proxy is well
            assert status == 200, body
        answered = http.post(f"{proxy.base_url}/chat/completions",
                             json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert answered.status_code == 200 and proxy.health()[0] == 200
        assert "sk-wrong-key" not in proxy.read_log()
