"""Only a version check: pyproject.toml holds the package's metadata. pip does not check requires-python for a
local directory before resolving its pinned dependencies, so on Python 3.10 `pip install .` ended with
"No matching distribution found for pillow" instead of naming the Python it needs."""

import sys

if sys.version_info < (3, 11):
    sys.exit(f"cot_proxy needs Python 3.11 or newer; this is Python {sys.version.split()[0]} ({sys.executable}). "
             "Install it with python3.11 -m pip install . (or a newer python3.X).")

from setuptools import setup  # noqa: E402

setup()
