"""docs/compatibility.md is tools/compatibility.py's output, not a hand-kept table: the page reads back into the
command's matrix and renders to itself, names the command, and has a row for each agent `cot-proxy run` knows
and each door, a column for each upstream. The matrix itself runs only when that command is run (minutes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from argoproxy.launch.agents import AGENTS
from tests.proxy_process import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import compatibility  # noqa: E402


def test_the_page_is_the_commands_output_and_names_it():
    page = compatibility.PAGE.read_text()
    assert compatibility.render(compatibility.parse(page)) == page
    assert f"Written by `{compatibility.COMMAND}`" in page and "do not edit by hand" in page


def test_the_page_has_every_agent_and_door_over_every_upstream():
    matrix = compatibility.parse(compatibility.PAGE.read_text())
    assert list(matrix.rows) == list(compatibility.row_labels().values())  # today's pins and SDK versions
    assert len(matrix.rows) == len(AGENTS) + len(compatibility.DOORS)
    assert all(list(cells) == list(compatibility.UPSTREAMS) for cells in matrix.rows.values())
    assert sum(cells.count("fail") for cells in [list(c.values()) for c in matrix.rows.values()]) \
        == len(matrix.failures)


def test_a_hand_edited_page_fails_the_check():
    page = compatibility.PAGE.read_text()
    for edited in (page.replace(" |\n", "  |\n", 1),  # a cell's spacing
                   page.replace("\nFailures:", "\nA note kept by hand.\n\nFailures:")):
        assert compatibility.render(compatibility.parse(edited)) != edited
    with pytest.raises(ValueError):
        compatibility.parse("# Compatibility\n\nA table kept by hand.\n")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "compatibility.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
