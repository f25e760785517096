"""The manual names what a user can type or see: every flag, subcommand, error code, metric and header the code
defines is named in the README or a page under docs/ (settings: tests/unit/test_docs_site.py holds the settings
reference to what the settings declare). Collected from the code, so that shortening a page cannot lose one."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from tests.proxy_process import ROOT
from tests.source_tree import parsed

METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary"}
HEADER = re.compile(r"[Xx]-[A-Za-z][A-Za-z-]+")
NOT_HEADERS = {"x-ai"}  # a provider's id in the price table's makers, spelled as a header is
# Named by the code but not (yet) by the manual. Shrink this list; never grow it to pass a shortened page.
NOT_IN_THE_MANUAL = {
    "flag": {"--NON_STREAM_SERVER_MODE", "--STREAM_SERVER_MODE", "--version"},
    "error code": {
        "client_closed_request", "duplicate_parameter", "file_not_found",
        "invalid_form", "invalid_query", "invalid_type", "method_not_allowed", "missing_model",
        "missing_required_parameter", "mutually_exclusive_parameters", "previous_response_in_progress",
        "proxy_connect_timeout", "proxy_dns_error", "proxy_error", "seal_key_unavailable",
        "unsupported_content_encoding", "unsupported_parameter", "upstream_connection_error",
        "upstream_empty_answer", "upstream_invalid_json", "upstream_invalid_response", "upstream_no_response",
        "upstream_redirect", "upstream_tls_error"},
}


def _class_codes(node: ast.ClassDef) -> set[str]:
    """Error codes a class declares as its `code` (the upstream failure family: argoproxy/upstream/failures.py)."""
    return {stmt.value.value for stmt in node.body if isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "code" for t in stmt.targets)
            and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)}


def _called(node: ast.Call) -> str | None:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)


KINDS = ("error code", "flag", "header", "metric", "subcommand")


@functools.cache  # read when a test asks, not as each test process collects (the code's whole AST)
def named_by_the_code() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for path in sorted((ROOT / "argoproxy").rglob("*.py")) + [ROOT / "cot_proxy.py"]:
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ClassDef):
                found["error code"].update(_class_codes(node))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and HEADER.fullmatch(node.value) \
                    and node.value not in NOT_HEADERS:
                found["header"].add(node.value)
            if not isinstance(node, ast.Call):
                continue
            called = _called(node)
            strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if called == "add_argument":
                found["flag"].update(s for s in strings if s.startswith("--"))
            elif called == "add_parser" and strings:
                found["subcommand"].add(strings[0])
            elif called in METRIC_CLASSES and strings and strings[0].startswith("cot_proxy"):
                found["metric"].add(strings[0])
            found["error code"].update(kw.value.value for kw in node.keywords if kw.arg == "code"
                                       and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str))
    return found


@functools.cache
def the_manual() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join(page.read_text() for page in pages).lower()


@pytest.mark.parametrize("kind", KINDS)
def test_the_manual_names_everything_the_code_defines(kind: str) -> None:
    manual, named = the_manual(), named_by_the_code()
    assert named[kind], f"no {kind} collected: the collector lost its way"
    missing = {name for name in named[kind] if name.lower() not in manual} - NOT_IN_THE_MANUAL.get(kind, set())
    assert not missing, f"the manual no longer names these {kind}s: {sorted(missing)}"


def test_the_list_of_what_the_manual_lacks_is_current() -> None:
    """A name the manual now carries, or the code no longer has, leaves NOT_IN_THE_MANUAL."""
    manual, named = the_manual(), named_by_the_code()
    stale = {kind: {n for n in names if n.lower() in manual or n not in named[kind]}
             for kind, names in NOT_IN_THE_MANUAL.items()}
    assert not any(stale.values()), f"take these out of NOT_IN_THE_MANUAL: {stale}"
