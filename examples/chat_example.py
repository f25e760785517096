"""POST /v1/chat: ARGO's own request and response JSON (the proxy sets the user and maps the model)."""

import requests

from _common import BASE_URL, MODEL

response = requests.post(f"{BASE_URL}/chat", json={
    "model": MODEL,
    "system": "You are a helpful assistant.",
    "prompt": ["What is the capital of France?"],
}, timeout=120)
response.raise_for_status()
print(response.json()["response"])
