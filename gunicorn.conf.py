"""Gunicorn configuration: everything comes from cot_proxy's settings (config.yaml < .env < environment),
read by the loader every entry point uses. Used by the Docker image: `gunicorn -c gunicorn.conf.py cot_proxy:app`."""

from argoproxy.serve.gunicorn_app import startup_options

globals().update(startup_options()[1])
