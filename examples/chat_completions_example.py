"""POST /v1/chat/completions with plain HTTP."""

import requests

from _common import BASE_URL, MODEL

response = requests.post(f"{BASE_URL}/chat/completions", json={
    "model": MODEL,
    "messages": [{"role": "system", "content": "You are a helpful assistant."},
                 {"role": "user", "content": "What is the capital of France?"}],
}, timeout=120)
response.raise_for_status()
print(response.json()["choices"][0]["message"]["content"])
