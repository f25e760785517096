"""Gunicorn configuration: everything comes from cot_proxy's settings (config.yaml < environment).
Used by the Docker image: `gunicorn -c gunicorn.conf.py cot_proxy:app`."""

from argoproxy.server import gunicorn_options, settings_or_exit

globals().update(gunicorn_options(settings_or_exit()))
