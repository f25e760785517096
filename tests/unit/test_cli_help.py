"""`--help` names what the command line does besides serving: the `keys`, `run` and `agents` subcommands (it
never mentioned `keys`), under each name it is started by."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.proxy_process import ROOT


@pytest.mark.parametrize("entry", ["cot_proxy.py", "app.py"])
def test_help_names_the_subcommands(entry: str) -> None:
    shown = subprocess.run([sys.executable, str(ROOT / entry), "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert f"usage: {entry} " in text
    for command in ("keys (team keys; keys --help)", "run [flags] -- AGENT [ARGS]", "agents ("):
        assert command in text, command


@pytest.mark.parametrize("argv", [["run", "--help"], ["run", "-h"], ["agents", "--help"], ["run", "config.yaml", "-h"],
                                  ["run", "--model", "claude", "--help"]])
def test_run_and_agents_have_their_own_help(argv: list[str]) -> None:
    """`run --help` said "which agent?" with exit 2, and `agents --help` printed the server's flags."""
    shown = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), *argv], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert shown.stdout.startswith("usage: cot_proxy.py run [config.yaml] [flags] [--model NAME] -- AGENT")
    assert "examples:" in shown.stdout and "--target-base-url" not in shown.stdout


def test_an_agents_help_is_the_agents() -> None:
    """After the agent's name, --help is the agent's own argument (here: an agent not on PATH, said so)."""
    shown = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "run", "claude", "--help"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/nonexistent"})
    assert "examples:" not in shown.stdout and "claude is not on PATH" in shown.stderr, shown.stderr


def test_a_model_named_like_an_agent_is_not_the_agent():
    from argoproxy.launch.run import split
    assert split(["--model", "claude", "codex", "exec", "x"], "cot-proxy")[1:] == ("claude", "codex", ["exec", "x"])
    assert split(["--model", "claude", "--", "aider"], "cot-proxy")[1:] == ("claude", "aider", [])
