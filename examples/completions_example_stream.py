"""POST /v1/completions with "stream": true."""

import json

import requests

from _common import BASE_URL, MODEL

with requests.post(f"{BASE_URL}/completions", stream=True, timeout=120,
                   json={"model": MODEL, "prompt": "Count from one to five.", "stream": True}) as response:
    response.raise_for_status()
    for line in response.iter_lines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            for choice in json.loads(line[6:])["choices"]:
                print(choice["text"], end="", flush=True)
print()
