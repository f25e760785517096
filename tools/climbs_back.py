"""How often a request, followed statically through the product's code, climbs back to a module it had left
(issue 70: at most 8 from `Gateway.api` through the OpenAI backend, and at most 8 from `Gateway.forward`).

Nothing is run: the code is read with Python's `ast`. The rules:

- The walk starts at a function and its parameter that holds the request (`Gateway.api`'s and `Gateway.forward`'s
  `call`). A name holds the request when it is that parameter, or a local it is assigned to as it is (`run = call`).
- A function's statements are read in source order, every branch one after the other (if and else, a try's body,
  else and finally, a loop's body once, each match case); an except clause and a `raise` are a failure's way,
  not the request's, and are not read. A statement spread over continuation lines is one node, so every call in
  it is seen; in a statement, calls come in the order Python makes them (callee and arguments first). A nested
  function or lambda runs later, if at all, and is not read.
- A call is followed when it hands the request on: an argument is a name holding it, or the call is a method of
  a name holding it. In the callee, the parameters given it (and `self`, for such a method) hold it.
- The callee is resolved in argoproxy/: a function or class of the module, or imported from another
  (`from argoproxy.x import f`, `from argoproxy import x` then `x.f`, through re-exports), a class standing for
  its `__init__`; a method through the type of the value it is called on: `self`, a parameter or local whose
  annotation names a product class (`T`, `T | None`, `Optional[T]`, `"T"`), an attribute whose type its class
  says (a class-level annotation, `self.x: T = ...`, `self.x = T(...)`, `self.x = param` with `param: T`, either
  arm of `a if c else b`), a call's return annotation; a method is looked up in the class, then its bases (as
  written, so a default the class inherits is walked: before this held, `OpenAIBackend`'s base resolved through
  STANDS_FOR back to itself, and the walk missed the defaults it inherits, `prepare`, `upstream_streams`,
  `transforms_answers`, `complete`: 16 climbs back at 6516c38 by that walk, 19 by this one). An
  interface stands for the class that serves a chat request through the OpenAI backend (STANDS_FOR: `Backend`
  is `OpenAIBackend`, whose `encode` and `decode` are walked; the door's `AnswerEncoder` is `ChatAnswers`).
- A function is followed once: a call to one already followed is not entered again. An interface's method (its
  body a docstring, `...`, `pass` or `raise NotImplementedError`: a Protocol's, an abstract one) holds no code
  and is not entered; nor are calls that resolve to nothing in the product (the libraries, a callable held in a
  variable, a collaborator typed by a Protocol).

Counted: a move is a followed call from a function in one module to a function in another (a return is no
move: the sequence calling its steps, which return values, climbs nowhere); a climb back is a move into a
module the walk had been in before.

    .venv/bin/python tools/climbs_back.py [--start FILE:FUNCTION:PARAM] [--moves]
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "argoproxy"
REQUEST = "argoproxy/pipeline/gateway.py:Gateway.api:call"
FORWARDED = "argoproxy/pipeline/gateway.py:Gateway.forward:call"
# interfaces, and the class that serves a chat request through the OpenAI backend behind each
STANDS_FOR = {
    ("argoproxy.pipeline.backend", "Backend"): ("argoproxy.providers.openai.backend", "OpenAIBackend"),
    ("argoproxy.providers.base", "Backend"): ("argoproxy.providers.openai.backend", "OpenAIBackend"),
    ("argoproxy.pipeline.door_api", "AnswerEncoder"): ("argoproxy.pipeline.chat_answers", "ChatAnswers"),
}

ClassRef = tuple[str, str]  # (module, class name)
BLOCKS = ("body", "orelse", "finalbody", "cases")  # a statement's inner blocks the walk reads
FuncDef = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class Module:
    name: str
    path: str  # relative to the checkout
    imports: dict[str, tuple[str, str | None]]  # local name -> (module, name in it; None: the module itself)
    functions: dict[str, FuncDef]
    classes: dict[str, ast.ClassDef]


@dataclass
class Function:
    module: Module
    node: FuncDef
    owner: str | None  # the class a method is defined in

    @property
    def qualname(self) -> str:
        return f"{self.owner}.{self.node.name}" if self.owner else self.node.name


# ------------------------------------------------------------------ modules
def _module_path(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def module(name: str) -> Module | None:
    """The product module `name`, read (None outside argoproxy/ or when there is no such file)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    path = _module_path(name)
    if path is None:
        return None
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imports: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, package)
            for alias in node.names:
                imports[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imports[alias.asname or alias.name.partition(".")[0]] = (alias.name if alias.asname
                                                                        else alias.name.partition(".")[0], None)
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    return Module(name, str(path.relative_to(ROOT)), imports, functions, classes)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[:len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def lookup(mod: Module, name: str) -> tuple[Module, str] | None:
    """Where `name`, as `mod` sees it, is defined (a function or class), following imports and re-exports."""
    for _ in range(8):  # a re-export of a re-export...
        if name in mod.functions or name in mod.classes:
            return mod, name
        source = mod.imports.get(name)
        if source is None or source[1] is None:
            return None
        target = module(source[0]) or module(f"{source[0]}.{source[1]}")
        if target is None:
            return None
        mod, name = target, source[1]
    return None


# ------------------------------------------------------------------ types
def annotation_class(mod: Module, node: ast.expr | None) -> ClassRef | None:
    """The product class an annotation names (`T`, `T | None`, `Optional[T]`, `"T"`, `pkg.T`), an interface
    standing for the class that serves (STANDS_FOR)."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return annotation_class(mod, ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return annotation_class(mod, node.left) or annotation_class(mod, node.right)
    if isinstance(node, ast.Subscript):
        return annotation_class(mod, node.slice) if _name(node.value) == "Optional" else None
    ref = named_class(mod, node)
    return STANDS_FOR.get(ref, ref) if ref is not None else None


def named_class(mod: Module, node: ast.expr) -> ClassRef | None:
    """The product class a name or dotted name is, as written (a base class: never what stands for it)."""
    name = _name(node)
    found = lookup(mod, name) if name and "." not in name else _dotted(mod, name)
    if found is None or found[1] not in found[0].classes:
        return None
    return found[0].name, found[1]


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _name(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _dotted(mod: Module, name: str) -> tuple[Module, str] | None:
    head, _, rest = name.partition(".")
    source = mod.imports.get(head)
    if not rest or "." in rest or source is None:
        return None
    target = module(source[0] if source[1] is None else f"{source[0]}.{source[1]}")
    return lookup(target, rest) if target is not None else None


def class_def(ref: ClassRef) -> tuple[Module, ast.ClassDef] | None:
    mod = module(ref[0])
    return (mod, mod.classes[ref[1]]) if mod is not None and ref[1] in mod.classes else None


def mro(ref: ClassRef) -> Iterator[tuple[Module, ast.ClassDef]]:
    """The class, then its product bases, depth first (a base as written: `OpenAIBackend(Backend)` inherits the
    interface's defaults, which STANDS_FOR would turn back into OpenAIBackend)."""
    found = class_def(ref)
    if found is None:
        return
    yield found
    mod, node = found
    for base in node.bases:
        base_ref = named_class(mod, base)
        if base_ref is not None and base_ref != ref:
            yield from mro(base_ref)


def method(ref: ClassRef, name: str) -> Function | None:
    for mod, node in mro(ref):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name:
                return Function(mod, item, node.name)
    return None


@cache
def attribute_types(ref: ClassRef) -> dict[str, ClassRef]:
    """The types of a class's attributes, as its body and its methods' assignments to `self.x` say."""
    types: dict[str, ClassRef] = {}
    for mod, node in reversed(list(mro(ref))):
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                _note(types, item.target.id, annotation_class(mod, item.annotation))
        for fn in (i for i in node.body if isinstance(i, (ast.FunctionDef, ast.AsyncFunctionDef))):
            params = {a.arg: annotation_class(mod, a.annotation) for a in _params(fn)}
            for stmt in ast.walk(fn):
                for target, value, annotation in _assignments(stmt):
                    if isinstance(target, ast.Attribute) and _name(target.value) == "self":
                        _note(types, target.attr, annotation_class(mod, annotation) if annotation is not None
                              else _value_class(mod, value, params))
    return types


def _note(types: dict[str, ClassRef], name: str, ref: ClassRef | None) -> None:
    if ref is not None:
        types.setdefault(name, ref)


def _params(fn: FuncDef) -> list[ast.arg]:
    a = fn.args
    return [*a.posonlyargs, *a.args, *a.kwonlyargs]


def _assignments(stmt: ast.AST) -> Iterator[tuple[ast.expr, ast.expr | None, ast.expr | None]]:
    """(target, value, annotation) of each name an assignment statement binds (tuples paired up)."""
    if isinstance(stmt, ast.AnnAssign):
        yield stmt.target, stmt.value, stmt.annotation
    elif isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            if isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple) \
                    and len(target.elts) == len(stmt.value.elts):
                yield from ((t, v, None) for t, v in zip(target.elts, stmt.value.elts))
            else:
                yield target, stmt.value, None


def _value_class(mod: Module, value: ast.expr | None, params: dict[str, ClassRef | None]) -> ClassRef | None:
    """The class of `self.x = value` where the value says it: a constructor call, an annotated parameter."""
    if isinstance(value, ast.IfExp):
        return _value_class(mod, value.body, params) or _value_class(mod, value.orelse, params)
    if isinstance(value, ast.Name):
        return params.get(value.id)
    if isinstance(value, ast.Call):
        return annotation_class(mod, value.func)
    return None


# ------------------------------------------------------------------ the walk
@dataclass
class Walk:
    stays: list[tuple[str, str]] = field(default_factory=list)  # (module path, function) entered by each move
    followed: set[tuple[str, str]] = field(default_factory=set)

    @property
    def climbs_back(self) -> int:
        return len(self.stays) - len({path for path, _ in self.stays})

    def enter(self, fn: Function, holders: set[str], caller: Function | None = None) -> None:
        key = (fn.module.path, fn.qualname)
        if key in self.followed or _stub(fn.node):
            return
        self.followed.add(key)
        if caller is None or caller.module.path != fn.module.path:
            self.stays.append((fn.module.path, fn.qualname))
        Reader(self, fn, holders).read()


class Reader:
    """One followed function read: its locals' types, the names holding the request, the calls handing it on."""

    def __init__(self, walk: Walk, fn: Function, holders: set[str]) -> None:
        self.walk, self.fn, self.holders = walk, fn, set(holders)
        mod = fn.module
        self.types: dict[str, ClassRef] = {}
        for arg in _params(fn.node):
            _note(self.types, arg.arg, annotation_class(mod, arg.annotation))
        if fn.owner is not None:
            self.types["self"] = (mod.name, fn.owner)

    def read(self) -> None:
        for stmt in self.fn.node.body:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Raise)):
            return  # a nested definition runs when called, through a name the walk does not follow; a raise is a failure's way
        for call in _calls(stmt):
            self.call(call)
        self.bind(stmt)
        for block in BLOCKS:
            for inner in getattr(stmt, block, ()):  # statements, or except clauses and match cases holding them
                for each in [inner] if isinstance(inner, ast.stmt) else inner.body:
                    self.statement(each)

    def bind(self, stmt: ast.stmt) -> None:
        """Locals that now hold the request, and locals whose type the assignment says."""
        pairs = list(_assignments(stmt))
        if isinstance(stmt, (ast.For, ast.AsyncFor)):
            pairs.append((stmt.target, stmt.iter, None))
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            pairs.extend((i.optional_vars, i.context_expr, None) for i in stmt.items if i.optional_vars)
        for target, value, annotation in pairs:
            names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
            if isinstance(value, ast.Name) and value.id in self.holders:  # another name for it, not a part
                self.holders.update(names)
            ref = annotation_class(self.fn.module, annotation) if annotation is not None else \
                self.type_of(value) if value is not None else None
            if ref is not None and isinstance(target, ast.Name):
                self.types[target.id] = ref

    def reads(self, node: ast.AST) -> bool:
        """Is `node` the request itself (a name holding it)?"""
        return isinstance(node, ast.Name) and node.id in self.holders

    def type_of(self, node: ast.expr) -> ClassRef | None:
        if isinstance(node, ast.Name):
            return self.types.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.type_of(node.value)
            return attribute_types(owner).get(node.attr) if owner is not None else None
        if isinstance(node, ast.Call):
            callee = self.resolve(node.func)
            if isinstance(callee, tuple):
                return callee
            if callee is not None:
                return annotation_class(callee.module, callee.node.returns)
        return None

    def resolve(self, func: ast.expr) -> Function | ClassRef | None:
        """The product function a callee expression names (a class: the class itself)."""
        mod = self.fn.module
        if isinstance(func, ast.Name):
            found = lookup(mod, func.id)
        elif isinstance(func, ast.Attribute):
            owner = self.type_of(func.value)
            if owner is not None:
                return method(owner, func.attr)
            found = _dotted(mod, _name(func))
        else:
            return None
        if found is None:
            return None
        where, name = found
        if name in where.classes:
            return STANDS_FOR.get((where.name, name), (where.name, name))
        return Function(where, where.functions[name], None)

    def call(self, node: ast.Call) -> None:
        callee = self.resolve(node.func)
        if isinstance(callee, tuple):
            callee = method(callee, "__init__")
        if callee is None:
            return
        holders = self.handed(node, callee)
        if not holders:
            return
        self.walk.enter(callee, holders, self.fn)

    def handed(self, node: ast.Call, callee: Function) -> set[str]:
        """The callee's parameters given the request (and `self`, for a method of a value holding it)."""
        params = [a.arg for a in _params(callee.node)]
        bound = callee.owner is not None and params[:1] in (["self"], ["cls"])
        holders = {"self"} if bound and isinstance(node.func, ast.Attribute) and self.reads(node.func.value) else set()
        positional = params[1:] if bound else params
        for at, arg in enumerate(node.args):
            if at < len(positional) and self.reads(arg):
                holders.add(positional[at])
        holders.update(k.arg for k in node.keywords if k.arg is not None and self.reads(k.value))
        return holders


def _stub(fn: FuncDef) -> bool:
    """An interface's method (a Protocol's, an abstract one): a docstring, `...`, `pass` or `raise
    NotImplementedError`; control never stays there."""
    for stmt in fn.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # the docstring, or ...
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.unparse(stmt):
            continue
        return False
    return True


def _calls(stmt: ast.stmt) -> Iterator[ast.Call]:
    """The calls a statement makes itself (not those of its inner blocks), callee and arguments first."""
    for name, value in ast.iter_fields(stmt):
        if name in BLOCKS or name == "handlers":  # inner blocks are read as statements; except clauses not at all
            continue
        for node in value if isinstance(value, list) else [value]:
            if isinstance(node, ast.AST):
                yield from _evaluated(node)


def _evaluated(node: ast.AST) -> Iterator[ast.Call]:
    if isinstance(node, (ast.Lambda, ast.FunctionDef)):
        return  # runs later, if at all
    for child in ast.iter_child_nodes(node):
        yield from _evaluated(child)
    if isinstance(node, ast.Call):
        yield node


def follow(start: str) -> Walk:
    """The walk from FILE:FUNCTION:PARAM (a method as Class.method)."""
    path, qualname, param = start.split(":")
    mod = module(".".join(Path(path).with_suffix("").parts))
    if mod is None:
        raise SystemExit(f"no product module at {path}")
    owner, _, name = qualname.rpartition(".")
    fn = method((mod.name, owner), name) if owner else Function(mod, mod.functions[name], None)
    if fn is None:
        raise SystemExit(f"no {qualname} in {path}")
    walk = Walk()
    walk.enter(fn, {param})
    return walk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", action="append", help=f"FILE:FUNCTION:PARAM (default: {REQUEST} and {FORWARDED})")
    parser.add_argument("--moves", action="store_true", help="print each stay")
    args = parser.parse_args(argv)
    for start in args.start or [REQUEST, FORWARDED]:
        walk = follow(start)
        if args.moves:
            seen: set[str] = set()
            for path, fn in walk.stays:
                print(f"  {'back' if path in seen else '    '} {path} {fn}")
                seen.add(path)
        print(f"{start}: {walk.climbs_back} climbs back, {len(walk.stays)} stays, {len(walk.followed)} functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
