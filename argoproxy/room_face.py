"""A room's face: the names a capability's package (spend/, meter/, admission/, tracing/) exports from its
`__init__`, each imported from its inner module on first use (PEP 562's module `__getattr__`). The rest of the
product imports a room by its face alone (tests/unit/test_layout.py holds it); a worker pays only for the modules
it reads through it, as it did when it imported them one by one (a worker without media never imports Pillow, one
without tracing never imports OpenTelemetry)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_face(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: `names` maps each exported name to its inner module ("pricer": the same
    name there; "refresh:main": another). A name read once is then the package's own attribute."""

    def __getattr__(name: str) -> Any:
        where = names.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, inner = where.partition(":")
        value = getattr(importlib.import_module(f"{package}.{module}"), inner or name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
