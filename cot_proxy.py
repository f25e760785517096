"""cot_proxy entry points: `cot_proxy:app` for Gunicorn (settings from config.yaml and the environment),
and `python cot_proxy.py [config] [flags]`, which serves under Gunicorn with the flags on top."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

_app = None
# Modules without which nothing starts: a Python that lacks one is not the project's environment.
_NEEDED = ("flask", "gunicorn", "requests", "yaml")


def __getattr__(name: str):
    # Built on first use, in the worker process, so that `python cot_proxy.py` never builds it twice.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        from argoproxy.serve import gunicorn_errors
        from argoproxy.serve.flask_app import create_app
        from argoproxy.serve.gunicorn_app import worker_settings
        gunicorn_errors.install()  # also when started as `gunicorn cot_proxy:app` without gunicorn.conf.py
        _app = create_app(worker_settings())
    return _app


def _in_project_environment() -> None:
    """Run in the project's .venv when this Python lacks the dependencies; else say in one line what to do."""
    missing = next((name for name in _NEEDED if importlib.util.find_spec(name) is None), None)
    if missing is None:
        return
    here = Path(__file__).resolve().parent
    venv = here / ".venv"
    python = venv / "bin" / "python"
    if python.exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(python), [str(python), str(here / "cot_proxy.py"), *sys.argv[1:]])
    print(f"cot_proxy: {sys.executable} has no '{missing}' module: start it with ./run_app.sh (it creates .venv "
          "and installs requirements.txt), or run `pip install -r requirements.txt` (or `pip install .`) first",
          file=sys.stderr)
    raise SystemExit(1)


if __name__ == "__main__":
    _in_project_environment()
    from argoproxy.cli import main
    main()
