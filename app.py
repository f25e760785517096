"""`python app.py [config] [flags]`: the way seeds 001, 003 and 004 start their servers, here the same as
`python cot_proxy.py` (every flag, the `keys` subcommand, --show, --help); and `app:app`, the same WSGI
application as `cot_proxy:app` for Gunicorn."""

from __future__ import annotations

import cot_proxy


def __getattr__(name: str):
    # `app` is built on first use in the worker process, by cot_proxy (one application, however it is named).
    return getattr(cot_proxy, name)


if __name__ == "__main__":
    cot_proxy._in_project_environment()
    from argoproxy.cli import main
    main()
