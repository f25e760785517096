"""`--help` starts with the subcommands (`run`, `agents`, `keys`: it named `run` and `agents` only in the last of
its 298 lines) and the settings most users need, short, under each name it is started by; `--help-all` lists
every setting's flag."""

from __future__ import annotations

import subprocess
import sys

import pytest

from argoproxy.config.settings import SETTING_FIELDS
from tests.proxy_process import ROOT


def helped(entry: str, flag: str) -> str:
    shown = subprocess.run([sys.executable, str(ROOT / entry), flag], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"})
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    return shown.stdout


@pytest.mark.parametrize("entry", ["cot_proxy.py", "app.py"])
def test_help_starts_with_the_subcommands_and_is_short(entry: str) -> None:
    lines = helped(entry, "--help").splitlines()
    assert lines[0] == f"usage: {entry} [config.yaml] [flags]"
    head = "\n".join(lines[:15])
    for command in (f"{entry} run [config.yaml] [flags] [--model NAME] -- AGENT [ARGS]", f"{entry} agents",
                    f"{entry} keys {{create,list,update,revoke,usage}}", "\n  run ", "\n  agents ", "\n  keys "):
        assert command in head, command
    assert len(lines) <= 60, len(lines)
    assert "\n  demo        the proxy in front of a demo model of its own" in "\n".join(lines[:25])  # no server yet
    text = "\n".join(lines)
    for flag in ("--target-base-url URL", "--backend", "--port", "--host", "--enable-auth", "--api-key-file",
                 "--show", "--help-all", "COT_PROXY_KEY", "OPENAI_API_KEY"):
        assert flag in text, flag
    assert "--max-sse-event-bytes" not in text and "--journal-body-bytes" not in text
    assert f"Every setting's flag: {entry} --help-all." in text


def test_help_all_lists_every_flag_of_every_setting() -> None:
    text = helped("cot_proxy.py", "--help-all")
    assert text.startswith("usage: cot_proxy.py [config.yaml] [flags]")
    flags = [flag for f in SETTING_FIELDS.values() for flag in (*f.metadata["flags"], *f.metadata["negative_flags"])]
    assert len(flags) > 60
    missing = [flag for flag in flags if flag not in text.replace(",", " ").split()]
    assert not missing, missing
    for seed_flag in ("--NON_STREAM_SERVER_MODE", "--STREAM_SERVER_MODE", "--timeout MS"):
        assert seed_flag in text


def test_short_and_full_help_parse_the_same_flags() -> None:
    """The short help hides flags from the listing only: every flag is read whichever help is shown."""
    from argoproxy.config.command_line import build_parser, parse_flags
    assert parse_flags(["--max-sse-event-bytes", "1000", "--output_path", "/tmp/x", "-q"])[0] == {
        "max_sse_event_bytes": "1000", "log_dir": "/tmp/x", "debug": False}
    argv = ["--max-sse-event-bytes", "1000", "--port", "6000", "--no-status-page", "--STREAM_SERVER_MODE"]
    assert build_parser().parse_args(argv) == build_parser(full=True).parse_args(argv)


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


def test_quiet_and_a_keys_name_say_what_they_are() -> None:
    """`--quiet` was "Turn off --debug." and `keys create --help` showed a bare `name`."""
    text = helped("cot_proxy.py", "--help")
    assert "Turn off --debug." not in text and "no log line per request" in text
    for words, said in ((["keys", "create"], "a name for the key, by which `keys list`"),
                        (["teams", "create"], "the team's name (1-64 letters")):
        shown = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), *words, "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"})
        assert shown.returncode == 0 and said in " ".join(shown.stdout.split()), shown.stdout
