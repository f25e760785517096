"""Shared by the examples: where the proxy is (BASE_URL, default http://localhost:44497/v1) and the model."""

import os

BASE_URL = os.environ.get("BASE_URL", "http://localhost:44497/v1").rstrip("/")
MODEL = os.environ.get("MODEL", "argo:gpt-4o")
API_KEY = os.environ.get("API_KEY", "not-needed")
