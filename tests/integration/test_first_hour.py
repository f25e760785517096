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
