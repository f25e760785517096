"""What the proxy writes into a checkout (its config, key store, conversation state and the key it seals content
with) stays out of git and out of the Docker build context: checked as a user would meet it, with `git status` in
a checkout holding those files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITTEN = ("config.yaml", "seal.key", "keys.db", "keys.db-wal", "responses.db", "responses.db-shm", ".env")


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_git_status_shows_none_of_the_files_the_proxy_writes(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    for name in WRITTEN:
        (tmp_path / name).write_text("secret\n")
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path, check=True,
                            capture_output=True, text=True).stdout.split()
    assert [name for name in WRITTEN if name in status] == []


def test_the_docker_build_context_leaves_the_secrets_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"seal.key", "keys.db*", "responses.db*", "config.yaml", ".env"} <= ignored
