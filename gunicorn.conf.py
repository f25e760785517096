"""Gunicorn configuration: everything comes from cot_proxy's settings (config.yaml < .env < environment),
read by the loader every entry point uses. Used by the Docker image: `gunicorn -c gunicorn.conf.py cot_proxy:app`
(the app named here too, so `gunicorn -c gunicorn.conf.py` alone, as the docs write it, starts the same)."""

from argoproxy.serve.gunicorn_app import startup_options

wsgi_app = "cot_proxy:app"  # a command line's own app name wins
globals().update(startup_options()[1])
