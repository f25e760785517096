"""The register of other libraries' private names (argoproxy/private_names.py): each listed name still exists
in the installed library, none is stale, and no module of argoproxy/ uses one that is not listed.

The scan reads the source: an attribute with a leading underscore (`x._fp`, `getattr(x, "_fp")`) that no
argoproxy module defines, or a `from library import _name`, is another library's private name; an assignment
to a name of an imported library (`ChunkedReader.parse_chunk_size = ...`, `util.write_error = ...`,
`setattr(wsgi, "Response", ...)`) replaces one; a server's own environ key (`environ.get("gunicorn.socket")`)
is one too. Overriding a library class's method in a subclass is listed by hand (the fast path's)."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from argoproxy.private_names import PRIVATE_NAMES
from tests.unit.test_fastpath_contract import _resolve
from tests.source_tree import parsed

PACKAGE = Path(__file__).resolve().parents[2] / "argoproxy"


def module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Documented public API despite the underscore: namedtuple's methods, os._exit.
PUBLIC = frozenset({"_replace", "_asdict", "_fields", "_make", "_exit"})


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC


def trees() -> dict[str, ast.AST]:
    return {module_of(p): parsed(p) for p in PACKAGE.rglob("*.py")}


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


# Environ keys a WSGI server may set beyond PEP 3333's (`wsgi.*` and CGI's upper-case names are the standard).
SERVER_KEY = re.compile(r"^(gunicorn|werkzeug|gevent|uwsgi)\.")
ENVIRON_ENTRY = re.compile(r'^environ\["(.+)"\]$')


def foreign_names(tree: ast.AST) -> set[str]:
    """The local names a module binds to another library's modules and objects (`import gunicorn.util`,
    `from gunicorn.http import wsgi`, `from gunicorn.http.body import ChunkedReader`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if not a.name.startswith("argoproxy"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and not (node.module or "").startswith("argoproxy"):
            names.update(a.asname or a.name for a in node.names)
    return names


def _rooted_in(node: ast.AST, names: set[str]) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in names


def replacements(module: str, tree: ast.AST) -> set[tuple[str, str]]:
    """(module, name) of every assignment that replaces a name of an imported library."""
    foreign = foreign_names(tree)
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        found.update((module, t.attr) for t in targets if isinstance(t, ast.Attribute) and _rooted_in(t.value, foreign))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and len(node.args) >= 2 and _rooted_in(node.args[0], foreign) \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            found.add((module, node.args[1].value))
    return found


def _is_environ(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "environ" in name


def server_keys(module: str, tree: ast.AST) -> set[tuple[str, str]]:
    """(module, 'environ["key"]') of every server-specific key a module reads from or writes to an environ
    (`environ["key"]`, `environ.get("key")`)."""
    keys: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            keys.append(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop") \
                and _is_environ(node.func.value) and node.args:
            keys.append(node.args[0])
    return {(module, f'environ["{k.value}"]') for k in keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str) and SERVER_KEY.match(k.value)}


def foreign_uses(all_trees: dict[str, ast.AST]) -> set[tuple[str, str]]:
    """(argoproxy module, name) of every use of a private name that argoproxy does not define, every replacement
    of a library's name and every server-specific environ key."""
    own = own_names(all_trees)
    uses: set[tuple[str, str]] = set()
    for module, tree in all_trees.items():
        uses |= replacements(module, tree) | server_keys(module, tree)
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


def short(name: str) -> str:
    """How a use is named: an environ key whole, a dotted name by its last part."""
    return name if ENVIRON_ENTRY.match(name) else name.split(".")[-1]


def listed() -> set[tuple[str, str]]:
    return {(p.used_in, short(p.name)) for p in PRIVATE_NAMES}


@pytest.mark.parametrize("entry", PRIVATE_NAMES, ids=lambda p: f"{p.module}.{p.name}")
def test_every_listed_name_still_exists(entry):
    key = ENVIRON_ENTRY.match(entry.name)
    if key:  # set by the library: its source still writes it
        assert f'"{key[1]}"' in inspect.getsource(importlib.import_module(entry.module)), \
            f"{entry.module} no longer sets {key[1]}: re-check {entry.used_in}"
        return
    assert _resolve(entry.module, entry.name), f"{entry.module}.{entry.name} is gone: re-check {entry.used_in}"


@pytest.mark.parametrize("entry", PRIVATE_NAMES, ids=lambda p: f"{p.module}.{p.name}")
def test_no_listed_name_is_stale(entry):
    path = PACKAGE.parent / (entry.used_in.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / entry.used_in.replace(".", "/") / "__init__.py"
    key = ENVIRON_ENTRY.match(entry.name)
    assert (key[1] if key else short(entry.name)) in path.read_text(), f"{entry.used_in} no longer uses {entry.name}"


def test_every_private_use_is_listed():
    unlisted = foreign_uses(trees()) - listed()
    assert not unlisted, f"private names used but not in argoproxy/private_names.py: {sorted(unlisted)}"


def test_the_scan_finds_a_replaced_library_name_and_a_server_key():
    tree = ast.parse("from gunicorn.http.body import ChunkedReader\nfrom gunicorn import util\nimport http.client\n"
                     "def f(environ, obj):\n    ChunkedReader.parse_chunk_size = f\n    util.write_error = f\n"
                     "    http.client.parse_headers = f\n    setattr(util, 'close', f)\n    obj.mine = 1\n"
                     "    return environ.get('gunicorn.socket'), environ['wsgi.input']\n")
    assert foreign_uses({"argoproxy.example": tree}) == {
        ("argoproxy.example", "parse_chunk_size"), ("argoproxy.example", "write_error"),
        ("argoproxy.example", "parse_headers"), ("argoproxy.example", "close"),
        ("argoproxy.example", 'environ["gunicorn.socket"]')}


def test_the_scan_finds_a_private_use():
    tree = ast.parse("import urllib3\ndef f(r):\n    return r._fp, getattr(r, '_length')\n"
                     "from gevent.hub import _get_hub\n")
    assert foreign_uses({"argoproxy.example": tree}) == {
        ("argoproxy.example", "_fp"), ("argoproxy.example", "_length"), ("argoproxy.example", "_get_hub")}
