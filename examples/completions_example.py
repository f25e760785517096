"""POST /v1/completions (legacy text completions)."""

import requests

from _common import BASE_URL, MODEL

response = requests.post(f"{BASE_URL}/completions", json={"model": MODEL, "prompt": "Write a haiku about autumn."},
                         timeout=120)
response.raise_for_status()
print(response.json()["choices"][0]["text"])
