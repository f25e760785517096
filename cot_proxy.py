"""cot_proxy entry points: `cot_proxy:app` for Gunicorn (settings from config.yaml and the environment),
and `python cot_proxy.py [config] [flags]`, which serves under Gunicorn with the flags on top."""

from __future__ import annotations

_app = None


def __getattr__(name: str):
    # Built on first use, in the worker process, so that `python cot_proxy.py` never builds it twice.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        from argoproxy import gunicorn_errors
        from argoproxy.app import create_app
        from argoproxy.server import settings_or_exit
        gunicorn_errors.install()  # also when started as `gunicorn cot_proxy:app` without gunicorn.conf.py
        _app = create_app(settings_or_exit())
    return _app


if __name__ == "__main__":
    from argoproxy.cli import main
    main()
