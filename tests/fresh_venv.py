"""Virtual environments built the way a user builds them, for the fresh-install tests.

`requirements_venv()` holds requirements.txt alone (what the Dockerfile and run_app.sh install): no test
dependency can hide a missing runtime one there. `installed_venv()` holds `pip install .` of this checkout
(its console scripts included). Both are cached outside the clone, keyed by the files that decide their
contents and the Python version, so CI builds them once per requirements change; a lock keeps parallel
runs from building one twice, and a marker written last means a half-built one is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.proxy_process import ROOT

CACHE = Path(os.environ.get("COT_PROXY_TEST_CACHE") or Path.home() / ".cache" / "cot_proxy_tests")
DONE = ".complete"
INSTALLED = ".installed-from"  # the digest of the code `pip install .` installed last
# What `pip install .` reads; copied to a scratch directory so setuptools' build files stay out of the clone.
PACKAGE_FILES = ("pyproject.toml", "requirements.txt", "README.md", "LICENSE", "cot_proxy.py", "argoproxy")


def _key(*files: str) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for name in files:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def _pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *args], check=True, timeout=900, stdin=subprocess.DEVNULL)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fresh(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    # The base interpreter, not this test environment: nothing of it may leak into the new one.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)


def requirements_venv() -> Path:
    """A virtual environment with requirements.txt installed and nothing else."""
    venv = CACHE / f"requirements-{_key('requirements.txt')}"
    with _locked(venv.name):
        if not (venv / DONE).exists():
            _fresh(venv)
            _pip(venv, "-r", str(ROOT / "requirements.txt"))
            (venv / DONE).touch()
    return venv


def package_copy() -> Path:
    """A scratch copy of what `pip install .` reads (the caller removes it)."""
    root = Path(tempfile.mkdtemp(prefix="cot_proxy_src_"))
    for name in PACKAGE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, root / name)
    return root


def installed_venv() -> Path:
    """A virtual environment where `pip install .` ran: dependencies once per requirements/pyproject change,
    this checkout's code reinstalled whenever it is not the code installed there (a reinstall is 20 s of CPU: the
    suite asks for this venv eight times)."""
    # Keyed by the checkout too: each checkout reinstalls its own code, and must not swap another's mid-test.
    venv = CACHE / f"installed-{_key('requirements.txt', 'pyproject.toml')}-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"
    code = _package_digest()
    with _locked(venv.name):
        if (venv / DONE).exists() and _read(venv / INSTALLED) == code:
            return venv
        source = package_copy()
        try:
            if not (venv / DONE).exists():
                _fresh(venv)
                _pip(venv, str(source))
                (venv / DONE).touch()
            else:
                _pip(venv, "--no-deps", "--force-reinstall", str(source))
        finally:
            shutil.rmtree(source, ignore_errors=True)
        (venv / INSTALLED).write_text(code)
    return venv


def _package_digest() -> str:
    """The digest of what `pip install .` reads, as this checkout holds it now."""
    digest = hashlib.sha256()
    for name in PACKAGE_FILES:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
