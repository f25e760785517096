"""A worker keeps large freed blocks for reuse (argoproxy.fastpath.allocator, FAST_PATH=on): a freed 8 MiB
buffer stays in the heap instead of being unmapped, so the next long request body does not fault its pages in
again. Checked by resident memory in a fresh interpreter; left alone when the user set glibc's variables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from argoproxy.fastpath import allocator

PROBE = """
import os, sys
from argoproxy.fastpath.allocator import keep_large_blocks
PAGE = os.sysconf("SC_PAGE_SIZE")
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
applied = keep_large_blocks() if sys.argv[1] == "tune" else False
block = b"x" * (8 * 1024 * 1024)  # written: its pages are resident
before = resident()
del block
print(applied, before - resident())
"""

MIB = 1024 * 1024
pytestmark = pytest.mark.skipif(not allocator._glibc() or not os.path.exists("/proc/self/statm"),
                                reason="glibc's mallopt and /proc")


def _freed(mode: str, **env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if k not in allocator.USER_VARIABLES and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**clean, **env}).stdout.split()
    return out[0] == "True", int(out[1])


def test_a_freed_large_block_goes_back_to_the_kernel_by_default() -> None:
    applied, returned = _freed("stock")
    assert not applied and returned >= 7 * MIB


def test_with_the_thresholds_set_it_stays_for_reuse() -> None:
    applied, returned = _freed("tune")
    assert applied and returned < MIB


@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "131072"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}])
def test_the_users_own_malloc_settings_win(env) -> None:
    applied, returned = _freed("tune", **env)
    assert not applied and returned >= 7 * MIB


def test_the_worker_hook_applies_it(monkeypatch) -> None:
    from argoproxy import fastpath
    called = []
    monkeypatch.setattr(fastpath, "tune_worker_gc", lambda *a: called.append("gc"))
    monkeypatch.setattr(allocator, "keep_large_blocks", lambda: called.append("malloc") or True)
    fastpath.tune_worker(None)
    assert called == ["gc", "malloc"]
