"""A newcomer's first hour, each step run as the user runs it (`python cot_proxy.py ...` in a directory of their
own, HOME empty): where a step goes wrong, the one line it prints names the real cause and the next step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
