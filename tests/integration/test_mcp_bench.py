"""bench/mcp_latency.py runs (a short run): both ways answer every call, and it prints what the proxy adds against
issue 58's bounds. The figures are read from the bench, never asserted here."""

from __future__ import annotations

import subprocess
import sys

from tests.proxy_process import ROOT, clean_environ


def test_the_mcp_latency_bench_runs_and_prints_what_the_proxy_adds():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "mcp_latency.py"), "--rounds", "1", "--calls", "5"],
                          capture_output=True, text=True, timeout=180, env=clean_environ(), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| through the proxy |" in done.stdout and "| median |" in done.stdout and "| p99 |" in done.stdout
