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
