"""The register of other libraries' private names (argoproxy/private_names.py): each listed name still exists
in the installed library, none is stale, and no module of argoproxy/ uses one that is not listed.

The scan reads the source: an attribute with a leading underscore (`x._fp`, `getattr(x, "_fp")`) that no
argoproxy module defines, or a `from library import _name`, is another library's private name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from argoproxy.private_names import PRIVATE_NAMES
from tests.unit.test_fastpath_contract import _resolve

PACKAGE = Path(__file__).resolve().parents[2] / "argoproxy"


def module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Documented public API despite the underscore: namedtuple's methods, os._exit.
PUBLIC = frozenset({"_replace", "_asdict", "_fields", "_make", "_exit"})


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC


def trees() -> dict[str, ast.AST]:
    return {module_of(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}


def own_names(all_trees: dict[str, ast.AST]) -> set[str]:
    """Every private name argoproxy defines: functions, classes, assignments, attributes it sets, slots."""
    found: set[str] = set()
    for tree in all_trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                found.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found.add(node.target.id)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                      for t in node.targets):
                found.update(c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)
                             and isinstance(c.value, str))
            elif isinstance(node, ast.arg):
                found.add(node.arg)
    return {name for name in found if private(name)}


def foreign_uses(all_trees: dict[str, ast.AST]) -> set[tuple[str, str]]:
    """(argoproxy module, name) of every use of a private name that argoproxy does not define."""
    own = own_names(all_trees)
    uses: set[tuple[str, str]] = set()
    for module, tree in all_trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and private(node.attr) and node.attr not in own:
                uses.add((module, node.attr))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                  and private(node.args[1].value) and node.args[1].value not in own):
                uses.add((module, node.args[1].value))
            elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith("argoproxy") \
                    and node.level == 0:
                uses.update((module, alias.name) for alias in node.names if private(alias.name))
    return uses


def listed() -> set[tuple[str, str]]:
    return {(p.used_in, p.name.split(".")[-1]) for p in PRIVATE_NAMES}


@pytest.mark.parametrize("entry", PRIVATE_NAMES, ids=lambda p: f"{p.module}.{p.name}")
def test_every_listed_name_still_exists(entry):
    assert _resolve(entry.module, entry.name), f"{entry.module}.{entry.name} is gone: re-check {entry.used_in}"


@pytest.mark.parametrize("entry", PRIVATE_NAMES, ids=lambda p: f"{p.module}.{p.name}")
def test_no_listed_name_is_stale(entry):
    path = PACKAGE.parent / (entry.used_in.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / entry.used_in.replace(".", "/") / "__init__.py"
    assert entry.name.split(".")[-1] in path.read_text(), f"{entry.used_in} no longer uses {entry.name}"


def test_every_private_use_is_listed():
    unlisted = foreign_uses(trees()) - listed()
    assert not unlisted, f"private names used but not in argoproxy/private_names.py: {sorted(unlisted)}"


def test_the_scan_finds_a_private_use():
    tree = ast.parse("import urllib3\ndef f(r):\n    return r._fp, getattr(r, '_length')\n"
                     "from gevent.hub import _get_hub\n")
    assert foreign_uses({"argoproxy.example": tree}) == {
        ("argoproxy.example", "_fp"), ("argoproxy.example", "_length"), ("argoproxy.example", "_get_hub")}
