"""Shared by the examples: where the proxy is (BASE_URL, default http://localhost:5000/v1, the proxy's default port),
the model (MODEL: ARGO's alias by default; `demo` against `./run_app.sh demo`) and the client's key (COT_PROXY_KEY,
as everywhere in the project; API_KEY, the original examples' name, is read too)."""

import os

BASE_URL = os.environ.get("BASE_URL", "http://localhost:5000/v1").rstrip("/")
MODEL = os.environ.get("MODEL", "argo:gpt-4o")
API_KEY = os.environ.get("COT_PROXY_KEY") or os.environ.get("API_KEY", "not-needed")
