"""Timeout override with plain HTTP: a `timeout` field (seconds) in the body sets how long the proxy waits for
the upstream on this request only; it is the proxy's and is never sent upstream (docs/timeout-override.md)."""

import requests

from _common import BASE_URL, MODEL

response = requests.post(f"{BASE_URL}/chat/completions", json={
    "model": MODEL,
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "timeout": 30,  # the proxy gives the upstream 30 s instead of its configured `timeout`
}, timeout=60)  # and this client waits a little longer than the proxy does
response.raise_for_status()
print(response.json()["choices"][0]["message"]["content"])
