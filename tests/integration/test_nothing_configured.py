"""Started with nothing configured (no config file, no TARGET_BASE_URL, no OPENAI_API_KEY), the proxy used to serve
OpenAI's public API with no key. Now every entry point without a terminal refuses with one line saying how to
configure it (exit code 2), and `cot-proxy` / `python cot_proxy.py` in a terminal (pexpect) ask run_app.sh's
first-run questions, then serve what the answers wrote."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Callable

import pexpect
import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import ROOT, answer_port_question, clean_environ, free_port

REFUSAL = ("cot_proxy: bad setting TARGET_BASE_URL: nothing is configured ({where}, no TARGET_BASE_URL, no "
           "OPENAI_API_KEY), and the proxy will not send prompts to https://api.openai.com/v1/ without a key: run "
           "cot-proxy (or ./run_app.sh) in a terminal to answer the setup questions, or set TARGET_BASE_URL to your "
           "server's base URL (OPENAI_API_KEY too for OpenAI's own API)")
Entry = Callable[[Path], tuple[list[str], Path, dict[str, str]]]


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """No setting at all, HOME empty (no ~/.config/argoproxy/config.yaml)."""
    env = clean_environ(("COT_PROXY_", "PYTHON"), {"VIRTUAL_ENV"})
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", WORKERS="1")
    env.update(extra)
    return env


def python_cot_proxy(tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    return [sys.executable, str(ROOT / "cot_proxy.py")], tmp, {}


def python_app(tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    return [sys.executable, str(ROOT / "app.py")], tmp, {}


def gunicorn_conf(tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    """The Docker image's CMD, started where its WORKDIR would be: the image's files and nothing configured."""
    for name in ("cot_proxy.py", "gunicorn.conf.py"):
        shutil.copy2(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "argoproxy", tmp / "argoproxy", ignore=shutil.ignore_patterns("__pycache__"))
    return ([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "cot_proxy:app"], tmp,
            {"HOST": "0.0.0.0", "PORT": str(free_port()), "COT_PROXY_CONTAINER": "1"})


def console_script(tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    """`cot-proxy` after `pip install .`, in a directory of its own."""
    from tests.fresh_venv import installed_venv
    return [str(installed_venv() / "bin" / "cot-proxy")], tmp, {}


@pytest.mark.parametrize("entry", [python_cot_proxy, python_app, gunicorn_conf, console_script],
                         ids=lambda e: e.__name__)
def test_without_a_terminal_every_entry_point_refuses_in_one_line(tmp_path: Path, entry: Entry) -> None:
    command, cwd, extra = entry(tmp_path)
    result = subprocess.run(command, cwd=cwd, env=bare_env(tmp_path, **extra), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [REFUSAL.format(where="no config file")], result.stderr
    assert result.stdout == ""


def test_a_config_file_that_names_no_upstream_is_refused_too(tmp_path: Path) -> None:
    """A config.yaml of listening settings only, even in a terminal's absence of questions: no upstream, no key."""
    config = tmp_path / "config.yaml"
    config.write_text(f"port: {free_port()}\nverbose: true\n")
    result = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path, env=bare_env(tmp_path),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [REFUSAL.format(where="config.yaml names no upstream")], result.stderr


def test_run_app_refuses_a_config_that_names_no_upstream_before_its_checks(tmp_path: Path) -> None:
    """`cp config.sample.yaml config.yaml && ./run_app.sh`, the sample unedited: the refusal is the only line. It
    used to check OpenAI's API first (a wait, and a question in a terminal) and say it was starting, then refuse."""
    shutil.copy2(ROOT / "config.sample.yaml", tmp_path / "config.yaml")
    result = subprocess.run([str(ROOT / "run_app.sh")], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            env=bare_env(tmp_path, COT_PROXY_VENV=str(Path(sys.executable).parent.parent)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [REFUSAL.format(where=f"{tmp_path / 'config.yaml'} names no upstream")], \
        result.stderr
    assert result.stdout == ""


def test_gunicorn_without_its_config_file_refuses_in_its_worker(tmp_path: Path) -> None:
    """`gunicorn cot_proxy:app` (no gunicorn.conf.py read): the worker refuses with the line, and Gunicorn stops
    at a worker that cannot boot instead of starting another for ever."""
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "cot_proxy:app"],
                            cwd=tmp_path, env=bare_env(tmp_path, PYTHONPATH=str(ROOT)), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert REFUSAL.format(where="no config file") in result.stderr.splitlines(), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("how", ["cot_proxy.py", "cot-proxy"])
def test_in_a_terminal_it_asks_the_first_run_questions_and_serves_the_answers(tmp_path: Path, how: str) -> None:
    """The questions run_app.sh asks, in the same order; then the same command starts again with the config
    they wrote, and the last lines are a request that works as printed and the agent line for this command."""
    if how == "cot-proxy":
        from tests.fresh_venv import installed_venv
        command, shown = [str(installed_venv() / "bin" / "cot-proxy")], str(installed_venv() / "bin" / "cot-proxy")
    else:
        command, shown = [sys.executable, str(ROOT / "cot_proxy.py")], f"python {ROOT / 'cot_proxy.py'}"
    with FakeOpenAI() as fake:
        child = pexpect.spawn(command[0], command[1:], cwd=str(tmp_path), env=bare_env(tmp_path, HOST="127.0.0.1"),
                              encoding="utf-8", timeout=30, dimensions=(50, 220))
        child.logfile_read = io.StringIO()
        try:
            child.expect_exact(f"{tmp_path / 'config.yaml'} not found.")
            child.expect_exact("Would you like to create it now? [Y/n] ")
            child.sendline("")
            child.expect_exact("Which backend should cot_proxy serve?")
            child.expect_exact("Choose 1-3 [1]: ")
            child.sendline("")
            child.expect_exact("Base URL of the OpenAI-compatible server (e.g. http://localhost:8000/v1): ")
            child.sendline(fake.base_url)
            child.expect(r"Enter port \[\d+\]: ")
            port = answer_port_question(child)
            child.sendline("n")
            child.expect_exact("[y/N] ")
            child.sendline("")
            child.expect_exact("Press enter to continue or Ctrl+C to abort.")
            child.sendline("")
            child.expect_exact(f"Validating openai API connectivity: {fake.base_url}models ... ok")
            child.expect_exact(f"cot_proxy listening on http://127.0.0.1:{port} (openai backend -> {fake.base_url}")
            child.expect_exact("Try it (in another terminal):")
            child.expect(r"  (curl [^\r\n]+)\r\n")
            curl = child.match.group(1)
            child.expect(r"  ([^\r\n]+) run -- \w+    # a coding agent through this proxy")
            assert child.match.group(1) == shown
            printed = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30)
            assert json.loads(printed.stdout)["choices"][0]["message"]["content"] == fake.default_content
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as answer:
                assert json.loads(answer.read())["target_url"] == fake.base_url
        finally:
            if child.isalive():
                child.kill(signal.SIGINT)
                child.expect(pexpect.EOF, timeout=20)
            child.close(force=True)
    transcript = child.logfile_read.getvalue()
    assert "Traceback" not in transcript and "bad setting" not in transcript, transcript
    text = (tmp_path / "config.yaml").read_text()
    assert f'\ntarget_base_url: "{fake.base_url}"\n' in text and f"\nport: {port}\n" in text
