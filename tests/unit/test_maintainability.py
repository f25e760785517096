"""The code stays readable (issue 56), as radon 6.0.1 ranks it with its defaults (`radon mi`, `radon cc`) over
argoproxy/, cot_proxy.py and app.py: no module ranked C by the maintainability index, and no function of an API
door (argoproxy/fronts/, a package per door) ranked D or E by its cyclomatic complexity.

The issue's targets for the functions of the rest of the code (none ranked E, at most 5 ranked D) do not hold yet;
they join this test when they do."""

from __future__ import annotations

from pathlib import Path

import pytest
from radon.complexity import cc_rank, cc_visit
from radon.metrics import mi_rank, mi_visit

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "argoproxy").rglob("*.py")) + ["cot_proxy.py",
                                                                                               "app.py"]
DOORS = [m for m in MODULES if m.startswith("argoproxy/fronts/")]
# Modules still ranked C, each with why: the test fails on a new one, and on one that is no longer C (then strike
# it here).
STILL_C: dict[str, str] = {}


def ranked(path: str) -> list[tuple[str, str, int]]:
    """(rank, name, complexity) of each function, method and class, as `radon cc` lists them."""
    return [(cc_rank(block.complexity), block.fullname, block.complexity)
            for block in cc_visit((ROOT / path).read_text())]


@pytest.mark.parametrize("path", [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=STILL_C[m]))
                                  if m in STILL_C else m for m in MODULES])
def test_no_module_is_ranked_c_by_the_maintainability_index(path: str) -> None:
    score = mi_visit((ROOT / path).read_text(), True)  # radon mi's default: multi-line strings count as comments
    assert mi_rank(score) in ("A", "B"), f"{path}: maintainability index {score:.1f} (C); split it"


@pytest.mark.parametrize("path", DOORS)
def test_no_function_of_a_door_is_ranked_d_or_e(path: str) -> None:
    assert [b for b in ranked(path) if b[0] not in "ABC"] == []

