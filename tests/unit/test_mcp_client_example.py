"""docs/mcp.md's client example (the official Python SDK, the key sent on every request): it compiles inside an
async function, and every name it imports is the installed SDK's. It had no key, so against a proxy with auth on
it got 401."""

from __future__ import annotations

import ast
import importlib
import re
import textwrap

import pytest

from tests.proxy_process import ROOT

pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")


def test_the_client_example_sends_the_key_and_imports_what_the_sdk_has():
    page = (ROOT / "docs" / "mcp.md").read_text()
    code = re.search(r"## Clients\n.*?```python\n(.*?)```", page, re.S).group(1)
    assert 'headers=key' in code and "Bearer {os.environ['COT_PROXY_KEY']}" in code
    tree = ast.parse("async def example():\n" + textwrap.indent(code, "    "))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module or "")
            assert all(hasattr(module, alias.name) for alias in node.names), ast.unparse(node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
