"""The documentation: the README is a short landing page whose links all lead somewhere; the site built from docs/
with MkDocs builds with --strict (a broken link or anchor, or a page left out of the nav, fails it); the settings
reference is what the settings' declarations say, and its defaults are what `--show` prints."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from argoproxy.config.settings import SETTING_FIELDS
from tests.proxy_process import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import settings_reference  # noqa: E402

DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                             "-d", str(tmp_path / "site")], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "settings" / "index.html").exists()


def _nav_pages(items: list) -> list[str]:
    pages = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav_once() -> None:
    """Said here by name (mkdocs' own warning lists them too): a page added under docs/ goes into mkdocs.yml's nav."""
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(set(pages) - set(nav)) == [], "pages under docs/ missing from mkdocs.yml's nav"
    assert sorted(set(nav) - set(pages)) == [], "nav entries without a page"
    assert len(nav) == len(set(nav))


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_readme_is_a_landing_page_whose_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 300
    assert readme.index("./run_app.sh") < 200 and readme.index("./run_tests.sh") < 300  # the two commands first
    assert "curl http://localhost:5000/v1/chat/completions" in readme
    for target in LINK.findall(readme):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        page = ROOT / path if path else ROOT / "README.md"
        assert page.exists(), target
        if anchor:
            headings = re.findall(r"(?m)^#+ (.+)$", page.read_text())
            assert anchor in {github_anchor(h) for h in headings}, target


def test_every_setting_is_in_the_reference() -> None:
    """The reference names every setting: its YAML key, environment variables and flags."""
    page = (DOCS / "reference" / "settings.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `") or line.startswith("| —")]
    for f in SETTING_FIELDS.values():
        names = [f"`{n}`" for n in f.metadata["env"] + f.metadata["flags"] + f.metadata["negative_flags"]]
        row = next((r for r in rows if all(n in r for n in names)), None)
        assert row is not None, f"{f.name} is missing from docs/reference/settings.md"
        if f.name != "config_path":
            assert row.startswith(f"| `{f.name}`"), row
    assert len(rows) == len(SETTING_FIELDS)


def test_the_reference_is_what_the_settings_declare() -> None:
    assert (DOCS / "reference" / "settings.md").read_text() == settings_reference.page(), \
        "docs/reference/settings.md is out of date: run python tools/settings_reference.py"


def _reference_defaults() -> dict[str, str]:
    out = {}
    for line in (DOCS / "reference" / "settings.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `"):
            out[cells[0].split("`")[1]] = cells[3]
        elif line.startswith("| —"):
            out["config_path"] = cells[3]
    return out


def test_every_default_in_the_reference_is_what_show_prints(tmp_path: Path) -> None:
    """The issue's check, kept: every default on the page equals `--show` with nothing configured."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    shown = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    values = {}
    for line in shown.stdout.splitlines():
        if not line.startswith("#"):
            name, _, value = line.partition(": ")
            values[name] = ast.literal_eval(value)
    defaults = _reference_defaults()
    assert set(defaults) == set(values) == set(SETTING_FIELDS)
    for name, cell in defaults.items():
        if SETTING_FIELDS[name].metadata["derived"]:
            assert cell.startswith("from other settings"), (name, cell)
            continue
        written = settings_reference.shown(values[name])
        assert cell.split(" (")[0] in (f"`{written}`", written), (name, cell, values[name])


def test_show_prints_values_as_a_user_writes_them(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "LLM_PARAMS": "model=gemma,temperature=0.5;model=r1,think_mode=reasoning",
           "MODEL_CAPABILITIES": '{"gpt-5*": {"temperature": true}}'}
    shown = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "llm_params: 'model=gemma,temperature=0.5;model=r1,think_mode=reasoning'\n" in shown.stdout
    assert "model_capabilities: {'gpt-5*': {'temperature': True}}\n" in shown.stdout
    assert "LlmParams(" not in shown.stdout and "Overrides(" not in shown.stdout


def test_the_first_run_questions_are_the_ones_firstrun_asks_in_its_order() -> None:
    """argoproxy/firstrun.py lists its questions (its docstring); the README and docs/install.md copy the list."""
    import argoproxy.firstrun as firstrun
    listed = firstrun.__doc__[firstrun.__doc__.index("The first-run questions, in this order"):]
    questions = re.findall(r'"([^"]+)"', listed)
    assert len(questions) >= 7, questions
    readme = (ROOT / "README.md").read_text()
    for text in (readme[readme.index("## First run"):readme.index("## A first request")],
                 (DOCS / "install.md").read_text()):
        at = [text.find(q) for q in questions]
        assert -1 not in at, [q for q, i in zip(questions, at) if i == -1]
        assert at == sorted(at), questions


DESIGN_NOTES = "Design notes (for contributors)"  # the nav section of how and why, which may speak of issues
JARGON = re.compile(r"(?i)\bissues? #?\d+|\bseeds?\b|\bthe issue\b")  # the project's history, not a user's word
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)  # `seed` is also a sampling parameter, written as code


def _site_sections() -> tuple[list[str], list[str]]:
    """(the user pages, the design notes) as mkdocs.yml's nav sorts them."""
    user, design = [], []
    for item in yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]:
        title, value = next(iter(item.items())) if isinstance(item, dict) else ("", item)
        (design if title == DESIGN_NOTES else user).extend(_nav_pages(value) if isinstance(value, list) else [value])
    return user, design


def _front_matter(page: Path) -> dict:
    text = page.read_text()
    return yaml.safe_load(text.split("---\n", 2)[1]) if text.startswith("---\n") else {}


def test_the_user_pages_speak_in_users_terms() -> None:
    """The README, the changelog and every page outside the design notes: no "issue 18", no "seeds 000/001", no
    "the issue"."""
    user, design = _site_sections()
    assert len(design) >= 10 and "team-keys.md" in user and "decisions.md" in design
    found = []
    for path in [ROOT / "README.md", ROOT / "CHANGELOG.md"] + [DOCS / page for page in user]:
        prose = CODE.sub("", path.read_text())
        found += [f"{path.relative_to(ROOT)}: {m.group(0)!r} in ...{prose[max(0, m.start() - 40):m.end() + 20]!r}"
                  for m in JARGON.finditer(prose)]
    assert found == []


def test_the_design_notes_rank_below_the_user_pages_in_search() -> None:
    """mkdocs-material's search multiplies a page's score by its front matter's search.boost: every design note
    lowers its own (a search for "budget" listed two design notes above the Team keys page), no user page does."""
    user, design = _site_sections()
    lowered = {page: _front_matter(DOCS / page).get("search", {}).get("boost", 1) for page in design}
    assert {page: boost for page, boost in lowered.items() if not boost < 1} == {}
    assert [page for page in user if _front_matter(DOCS / page).get("search", {}).get("boost", 1) < 1] == []


def test_the_readme_carries_no_figure_a_commit_must_keep_in_step() -> None:
    """The README is a landing page, not a record of runs: no test count, no CI minutes (they went stale with every
    commit, and commits were made only to refresh them). docs/performance.md is the one page of figures, and it is
    generated (bench/run.py --page)."""
    readme = (ROOT / "README.md").read_text()
    assert not re.findall(r"\b[\d,]{3,} tests\b", readme)
    assert not re.findall(r"[\d.]+ minutes", readme)
    assert "generated" in (DOCS / "performance.md").read_text().split("## How to reproduce")[0]


# The manual, apart from the notebook: the site's words as `wc -w` counts the pages of the nav (103,877 when the
# limit was set, the history of runs and the story of each change included). Pages for capabilities added after
# the limit was set are not counted, each named here with the capability it documents. Issue 69 asked for text on
# counted pages (decoding's rule and cost per format in reservations.md, a toy door in adding-a-door.md, the stored
# chain's cost back from bench/run.py): 1,500 words more for them. Issue 71 adds rows to the generated settings
# reference (sign-in's settings) and sections on counted pages (agent sessions, the request log): 600 more. Issue 72
# adds its settings' rows and the module map's rows of its rooms: 400 more.
SITE_WORD_LIMIT = 62_300 + 1_500 + 600 + 400
NOT_COUNTED = {
    "teams-of-keys.md",  # teams of keys (a team's shared limits and budgets), added after the limit was set
    "mcp.md",  # the MCP gateway (issue 58), added after the limit was set
    "responses-websocket.md",  # the Responses API over a WebSocket (issue 57), added after the limit was set
    "interactions.md",  # Google's Interactions API (issue 57), added after the limit was set
    "compatibility.md",  # generated by tools/compatibility.py (issue 70), in place of agents.md's own matrix
    "signin.md",  # sign-in with an OpenID provider, people (issue 71), added after the limit was set
    "console.md",  # the console's pages and /admin/v1/ (issue 71), added after the limit was set
    "mcp-auth.md",  # /mcp as an OAuth protected resource (issue 72), added after the limit was set
    "backends/argo-per-person.md",  # ARGO usernames per person and per key (issue 72), added after the limit was set
    "mcp-credentials.md",  # each person's credentials to remote MCP servers (issue 72), added after the limit was set
}


def test_the_site_stays_within_its_word_limit() -> None:
    """A page says what a user or a contributor needs, current, once: figures of past runs, dated measurements and
    how something was found belong to git history (docs/performance.md is generated by bench/run.py --page)."""
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert NOT_COUNTED <= set(nav), "a page listed as not counted is no longer in the nav"
    words = {page: len((DOCS / page).read_text().split()) for page in nav if page not in NOT_COUNTED}
    largest = sorted(words.items(), key=lambda item: -item[1])[:8]
    assert sum(words.values()) <= SITE_WORD_LIMIT, f"{sum(words.values())} words; the largest pages: {largest}"
