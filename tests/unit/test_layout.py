"""The shape of argoproxy/ (issues 19 and 37): no import circles, and each folder keeps to its rule.

Imports are read from the source: every `import`, at module level, inside a function or under
`if TYPE_CHECKING:` (an import for the type checker alone still ties the two modules: a circle through one
is a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.source_tree import parsed

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "argoproxy"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, here: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules this module imports (`from package import name` counts as the submodule when `name` is
    one, else as the package)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = here.split(".") if is_package else here.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = imported(parsed(path), name, path.name == "__init__.py", set(modules))
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_imports_for_the_type_checker_count():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from argoproxy.config.settings import Settings\n")
    assert "argoproxy.config.settings" in imported(tree, "argoproxy.x", False, {"argoproxy.config.settings"})


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# ---------------------------------------------------------------- each folder's rule (issue 37)
# A folder's rule is the "May import:" line of its __init__.py's docstring (argoproxy/__init__.py's for the
# shared modules at the top). The command lines (cli.py, firstrun.py at the top, launch/) may import every folder.
COMMAND_LINES = frozenset({"cli", "firstrun"})
COMMAND_LINE_FOLDERS = frozenset({"launch"})
SHARED = "shared"

# Arrows a rule does not allow yet, each named by the importing module and the folder it imports, with why it
# is still there; each folder's docstring says so too. The test fails on a new one and on one that is gone
# (then strike it here and in the docstring).
EXCEPTIONS: dict[tuple[str, str], str] = {}


def folder_of(module: str) -> str:
    """The folder a module belongs to: argoproxy.<folder>..., SHARED for the shared modules at the top,
    "cli" for the command lines at the top."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in COMMAND_LINE_FOLDERS:
        return "cli"
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "cli" if len(parts) >= 2 and parts[1] in COMMAND_LINES else SHARED


def folders() -> list[str]:
    """The folders with a rule of their own (the command lines' folders go with the command lines)."""
    return sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py") if p.parent.name not in COMMAND_LINE_FOLDERS)


def stated_rule(init: Path) -> set[str]:
    """The folders an __init__.py's docstring says its folder may import."""
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    lines = [line for line in doc.splitlines() if line.startswith("May import: ")]
    assert len(lines) == 1, f"{init.relative_to(ROOT)}: its docstring states no 'May import: ...' line"
    words = {w.strip() for w in lines[0][len("May import: "):].rstrip(".").split(",")}
    everything = set(folders()) | {SHARED}
    if words == {"every folder"}:
        return everything | {"cli"}
    if words == {"every folder but the command lines"}:
        return everything
    allowed = {SHARED if w == "the shared modules" else w for w in words}
    unknown = allowed - everything
    assert not unknown, f"{init.relative_to(ROOT)} names no folder {sorted(unknown)}"
    return allowed


def rules() -> dict[str, set[str]]:
    stated = {name: stated_rule(PACKAGE / name / "__init__.py") for name in folders()}
    stated[SHARED] = stated_rule(PACKAGE / "__init__.py")
    stated["cli"] = set(folders()) | {SHARED}
    for name in COMMAND_LINE_FOLDERS:
        assert stated_rule(PACKAGE / name / "__init__.py") == stated["cli"] | {"cli"}
    return stated


def broken_rules(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(module, folder) of every import a module's folder rule does not allow."""
    return {(module, folder_of(target)) for module, targets in graph.items() for target in targets
            if folder_of(target) != folder_of(module) and folder_of(target) not in allowed[folder_of(module)]}


def test_each_folder_keeps_to_its_stated_rule():
    broken = broken_rules(import_graph(), rules())
    new = sorted(broken - set(EXCEPTIONS))
    assert not new, f"imports against the folder rules (each __init__.py's 'May import:'): {new}"
    gone = sorted(set(EXCEPTIONS) - broken)
    assert not gone, f"exceptions no longer needed: strike them from EXCEPTIONS and the folder's docstring: {gone}"


def test_the_stated_rules_have_no_circle():
    """The rules themselves are layers: no folder may import one that may import it back."""
    allowed = rules()
    assert cycles({name: {t for t in targets if t != name} for name, targets in allowed.items()}) == []


def test_the_rule_check_finds_a_broken_rule():
    graph = {"argoproxy.config.settings": {"argoproxy.providers.argo.settings"}, "argoproxy.providers.argo.settings": set(),
             "argoproxy.errors": set()}
    assert broken_rules(graph, {"config": {SHARED}, "providers": {SHARED, "config"}, SHARED: {SHARED}}) == {
        ("argoproxy.config.settings", "providers")}


def test_the_architecture_page_gives_each_folder_its_rule():
    """docs/architecture.md's module map is the rules as the code states them (a claim about the shape is a test):
    each folder's "may import" cell, in layer order (no folder may import one of a row below it), and the
    number of exceptions."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    allowed = rules()
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `")]
    seen: list[str] = []
    for cells in rows:
        name = cells[0].split("`")[1].rstrip("/")
        key = SHARED if name == "argoproxy" else name
        if key not in allowed:
            continue
        words = {w.strip() for w in cells[2].split(",")}
        stated = {SHARED if w == "the shared modules" else w for w in words}
        if words == {"every folder but the command lines"}:
            stated = set(folders()) | {SHARED}
        assert stated == allowed[key], f"docs/architecture.md: {name}/ may import {sorted(allowed[key])}"
        assert not any(key in allowed[earlier] for earlier in seen if earlier != key), \
            f"docs/architecture.md: {name}/ is listed below a folder that may import it"
        seen.append(key)
    assert set(seen) == set(allowed) - {"cli"}, sorted(set(allowed) - {"cli"} - set(seen))
    assert f"({len(EXCEPTIONS)} today" in text


# The Gateway is no hub (docs/architecture.md, "Nothing on the way returns to a module it left"): it is handed its
# collaborators when it is built, routing knows it only by the send interface, and the core reads no stored state.
GATEWAY = "argoproxy.pipeline.gateway"


def gateway_attributes_set_elsewhere() -> list[str]:
    """Assignments to a Gateway's attributes outside Gateway.__init__: `self.x = ` in its other methods, and
    `<...>gateway.x = ` anywhere in argoproxy/."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = parsed(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "Gateway" and module_name(path) == GATEWAY:
                for method in node.body:
                    if isinstance(method, ast.FunctionDef) and method.name != "__init__":
                        found += [f"Gateway.{method.name}: self.{t}" for t in assigned_on(method, "self")]
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and ast.unparse(target.value).endswith("gateway"):
                        found.append(f"{module_name(path)}:{node.lineno}: {ast.unparse(target)}")
    return found


def assigned_on(function: ast.FunctionDef, name: str) -> list[str]:
    return [t.attr for node in ast.walk(function) if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == name]


def test_the_gateway_is_handed_its_collaborators_when_built():
    assert gateway_attributes_set_elsewhere() == []


# The sequences a route takes, which the door picks (docs/architecture.md, "One request takes one sequence").
SEQUENCES = ("api", "count_tokens", "relay_native", "forward", "passthrough")


def gateway_calls() -> dict[str, set[str]]:
    """Each Gateway method -> the Gateway methods it calls as `self.name(...)`, lambdas and nested functions
    included."""
    tree = ast.parse((PACKAGE / "pipeline" / "gateway.py").read_text())
    gateway = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Gateway")
    methods = {m.name: m for m in gateway.body if isinstance(m, ast.FunctionDef)}
    return {name: {node.func.attr for node in ast.walk(method) if isinstance(node, ast.Call)
                   and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                   and node.func.value.id == "self" and node.func.attr in methods}
            for name, method in methods.items()}


def reached(calls: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for callee in calls[todo.pop()] - seen:
            seen.add(callee)
            todo.append(callee)
    return seen


def test_one_request_takes_one_sequence_top_to_bottom():
    """No sequence of the Gateway enters another: the door picks one, and it runs to its answer."""
    calls = gateway_calls()
    assert set(SEQUENCES) <= set(calls)
    assert {name: sorted(reached(calls, name) & set(SEQUENCES)) for name in SEQUENCES} == \
        {name: [] for name in SEQUENCES}
    assert all("admit" in calls[name] for name in ("api", "count_tokens", "relay_native"))  # the one guard first


def test_routing_knows_the_gateway_only_by_its_send_interface():
    graph = import_graph()
    routing = {m: targets for m, targets in graph.items() if m.startswith("argoproxy.routing.")}
    assert [m for m, targets in routing.items() if GATEWAY in targets] == []
    assert "argoproxy.pipeline.collaborators" in graph["argoproxy.routing.dispatch"]


def test_stored_state_is_a_service_of_the_doors_that_keep_state():
    """state/ (issue 56): imported by the API doors alone (and what they hand the sequence, fronts/kept.py), never
    by serve/ or another folder; it imports no door, so none can be picked by name inside it."""
    graph = import_graph()
    importers = sorted({m for m, targets in graph.items() for t in targets
                        if t.startswith("argoproxy.state") and not m.startswith("argoproxy.state")})
    assert importers and all(m.startswith("argoproxy.fronts.") for m in importers), importers
    assert [(m, t) for m, targets in graph.items() if m.startswith("argoproxy.state")
            for t in targets if t.startswith("argoproxy.fronts")] == []
    state_text = " ".join(p.read_text() for p in (PACKAGE / "state").glob("*.py"))
    assert "front_named" not in state_text and 'front="' not in state_text


def test_the_core_imports_nothing_of_stored_responses():
    """Stored Responses (state/) are the Responses door's: the pipeline, routing, the door and what builds it know
    them only through pipeline/collaborators.py's StoredResponses (serve/proxy.py hands them in)."""
    graph = import_graph()
    core = [m for m in graph if m.startswith(("argoproxy.pipeline.", "argoproxy.routing."))
            or m in ("argoproxy.serve.door", "argoproxy.serve.build")]
    assert "argoproxy.serve.door" in core and "argoproxy.serve.build" in core
    assert [(m, t) for m in core for t in graph[m] if t.startswith("argoproxy.state")] == []


# A capability is a room (issue 56): tracing and admission each live in one package, and only the folders that
# call their hooks import it (docs/architecture.md's module map names them).
ROOM_CALLERS = {
    "tracing": {"serve"},  # serve/build.py builds the tracer and hands its hooks to the door and the client
    "admission": {"routing", "serve", "observe"},  # routing seats requests; serve builds it; the status page
}


def room_importers(graph: dict[str, set[str]], room: str) -> set[str]:
    return {folder_of(module) for module, targets in graph.items() for target in targets
            if folder_of(target) == room and folder_of(module) != room}


def test_each_capability_room_is_entered_by_its_callers_only():
    graph = import_graph()
    for room, callers in ROOM_CALLERS.items():
        assert room_importers(graph, room) == callers, room


def test_the_room_check_finds_an_intruder():
    graph = {"argoproxy.pipeline.gateway": {"argoproxy.tracing.tracer"}, "argoproxy.tracing.tracer": set()}
    assert room_importers(graph, "tracing") == {"pipeline"}


# One face per room (issue 70): each capability room exports what the others use from its package (`__init__`: its
# names, each read from its inner module on first use, argoproxy/room_face.py), and no module outside the room
# imports a module inside it.
FACED_ROOMS = ("spend", "meter", "admission", "tracing")


def reaches_inside(graph: dict[str, set[str]], room: str) -> list[tuple[str, str]]:
    """(importer, inner module) of every import of a module inside `room` by a module outside it."""
    return sorted((module, target) for module, targets in graph.items() for target in targets
                  if target.startswith(f"argoproxy.{room}.") and folder_of(module) != room)


def test_each_room_is_entered_by_its_face_only():
    graph = import_graph()
    assert {room: reaches_inside(graph, room) for room in FACED_ROOMS} == {room: [] for room in FACED_ROOMS}


def test_the_face_check_finds_a_reach_inside():
    tree = ast.parse("from argoproxy.meter import tokens\nfrom argoproxy.spend.units import dollars\n")
    modules = {"argoproxy.meter", "argoproxy.meter.tokens", "argoproxy.spend", "argoproxy.spend.units"}
    graph = {"argoproxy.pipeline.gateway": imported(tree, "argoproxy.pipeline.gateway", False, modules),
             "argoproxy.meter.used": {"argoproxy.spend.units", "argoproxy.meter.tokens"}}
    assert reaches_inside(graph, "meter") == [("argoproxy.pipeline.gateway", "argoproxy.meter.tokens")]
    assert reaches_inside(graph, "spend") == [("argoproxy.meter.used", "argoproxy.spend.units"),
                                              ("argoproxy.pipeline.gateway", "argoproxy.spend.units")]


def face_of(room: str) -> dict[str, tuple[str, str]]:
    """What a room's `__init__` shows the type checker: exported name -> (inner module, its name there)."""
    tree = parsed(PACKAGE / room / "__init__.py")
    return {alias.asname or alias.name: (node.module or "", alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"argoproxy.{room}.")
            for alias in node.names}


def test_each_face_gives_what_it_shows_the_type_checker():
    """The names a face exports at run time (`__all__`, read lazily) are those its TYPE_CHECKING imports name, each
    the very object of its inner module."""
    import importlib
    for room in FACED_ROOMS:
        package, face = importlib.import_module(f"argoproxy.{room}"), face_of(room)
        assert face and sorted(package.__all__) == sorted(face), room
        for name, (module, inner) in face.items():
            assert getattr(package, name) is getattr(importlib.import_module(module), inner), f"{room}.{name}"


def test_a_face_imports_nothing_until_a_name_is_read():
    """Reading one name loads its module alone: a worker without media imports no decoder through the meter's face
    (tests/unit/test_meter_decoded.py), one without tracing no OpenTelemetry."""
    import subprocess
    import sys
    rooms = ", ".join(f"argoproxy.{room}" for room in FACED_ROOMS)
    code = (f"import sys, {rooms}; from argoproxy.meter import usage_block; "
            "print(sorted(m for m in sys.modules if m.split('.')[1:2] and m.split('.')[1] in "
            f"{FACED_ROOMS!r} and m.count('.') == 2))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "['argoproxy.meter.tokens']"


def class_definitions(paths: list[Path]) -> dict[str, list[str]]:
    """Each class name -> where it is defined (path:line), nested classes included."""
    found: dict[str, list[str]] = {}
    for path in paths:
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ClassDef):
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.setdefault(node.name, []).append(f"{shown}:{node.lineno}")
    return found


def test_no_class_name_is_defined_twice():
    """One name, one class, in the product (issue 70: two `Guard`s and two `Exchange`s, 27 names in all, were): a
    name read anywhere says which class it is."""
    product = sorted(PACKAGE.rglob("*.py")) + [ROOT / "cot_proxy.py", ROOT / "app.py"]
    assert {name: where for name, where in class_definitions(product).items() if len(where) > 1} == {}


def test_the_class_name_check_finds_a_second_one(tmp_path):
    for name, text in (("a.py", "class Guard:\n    class Head: ...\n"), ("b.py", "def f():\n    class Head: ...\n")):
        (tmp_path / name).write_text(text)
    found = class_definitions([tmp_path / "a.py", tmp_path / "b.py"])
    assert len(found["Head"]) == 2 and len(found["Guard"]) == 1


def test_each_door_and_provider_has_a_test_package_of_its_own():
    """The unit tests mirror the product's folders where a folder holds one package per door or per provider
    (issue 56, item 5): tests/unit/fronts/<door>/ and tests/unit/providers/<provider>/."""
    tests = ROOT / "tests" / "unit"
    for folder in ("fronts", "providers"):
        for package in sorted(p.parent for p in (PACKAGE / folder).glob("*/__init__.py")):
            mirrored = tests / folder / package.name
            assert (mirrored / "__init__.py").is_file() and list(mirrored.glob("test_*.py")), \
                f"argoproxy/{folder}/{package.name}/ has no test package tests/unit/{folder}/{package.name}/"
