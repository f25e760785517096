"""o1-preview takes no system role: the proxy turns the system message into a user message."""

import requests

from _common import BASE_URL

response = requests.post(f"{BASE_URL}/chat/completions", json={
    "model": "argo:o1-preview",
    "messages": [{"role": "system", "content": "Answer in one word."},
                 {"role": "user", "content": "What colour is the sky?"}],
}, timeout=300)
response.raise_for_status()
print(response.json()["choices"][0]["message"]["content"])
