"""bench/'s scripts name the page section their figures serve (`docs/PAGE.md, "Heading"`): each names a heading
that is there. Sections cut from docs/performance.md left four scripts pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POINTER = re.compile(r"""docs/([\w/-]+\.md),? \(?["']([^"']+)["']""")


def headings(page: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")]


def test_every_section_a_bench_script_names_is_on_its_page():
    found = [(script.name, page, heading) for script in sorted((ROOT / "bench").glob("*.py"))
             for page, heading in POINTER.findall(script.read_text())]
    assert len(found) >= 6, found
    missing = [f for f in found if not any(h.startswith(f[2]) for h in headings(ROOT / "docs" / f[1]))]
    assert not missing, missing
