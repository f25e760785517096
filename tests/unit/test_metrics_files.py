"""A scrape in multiprocess mode while another worker creates a value file (observe/metrics.SettledFiles).

A worker's first value of a series creates its file empty and sizes it a moment later; prometheus_client's own
collector fails on the empty file (struct.error), and /metrics answered 500 when a worker started its first
stream during a scrape (tests/integration/test_guard.py, under CI load). Checked in a fresh interpreter:
prometheus_client chooses its multiprocess values at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import os, sys
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from argoproxy.observe.metrics import SettledFiles

path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
Counter("seen", "values written by this process").inc(3)
open(os.path.join(path, "gauge_livesum_99999.db"), "wb").close()  # another worker, between create and size

stock = CollectorRegistry()
MultiProcessCollector(stock)
try:
    generate_latest(stock)
    print("stock: read")
except Exception as exc:
    print("stock: " + type(exc).__name__)

ours = CollectorRegistry()
ours.register(SettledFiles(path))
print(generate_latest(ours).decode())
"""


def test_a_scrape_leaves_out_a_file_being_created(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.startswith("stock: error"), out  # prometheus_client's collector fails on the empty file
    assert "seen_total 3.0" in out  # ours merges the settled files and leaves the empty one out
