"""`./run_tests.sh` ends with why each skipped test skipped (pytest.ini's `-rs`), not a bare "61 skipped": a
test that needs nginx, a browser or a built cache names what it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.proxy_process import ROOT


def test_the_summary_says_why_tests_skipped(tmp_path: Path) -> None:
    (tmp_path / "test_needs.py").write_text(
        "import pytest\n\n"
        "def test_needs_a_thing():\n    pytest.skip('needs the thing: run tools/make_thing.sh')\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path),
                             "-q", str(tmp_path / "test_needs.py")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert "1 skipped" in result.stdout, result.stdout + result.stderr
    assert "SKIPPED [1]" in result.stdout and "needs the thing: run tools/make_thing.sh" in result.stdout
