"""The type checker passes on argoproxy/ (issue 19): `mypy --ignore-missing-imports argoproxy` reports no error.

Typed phases (ClientRequest, Plan, Outcome) and typed collaborators are only worth their names while the
checker agrees with them; this keeps it agreeing. mypy is pinned in requirements-dev.txt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_reports_no_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "--cache-dir",
                             str(tmp_path / "cache"), "argoproxy"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout
