"""The product's source files parsed once per test process. The layout and shape tests each walk the whole tree
(0.8 s of CPU to parse it), and one process runs several of them: they share these trees and never change them."""

from __future__ import annotations

import ast
import functools
from pathlib import Path


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))
