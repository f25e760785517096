"""POST /v1/chat with "stream": true: ARGO's raw text, as it arrives."""

import requests

from _common import BASE_URL, MODEL

with requests.post(f"{BASE_URL}/chat", stream=True, timeout=120, json={
    "model": MODEL, "stream": True, "prompt": ["Tell me a joke."],
}) as response:
    response.raise_for_status()
    for piece in response.iter_content(chunk_size=None, decode_unicode=True):
        print(piece, end="", flush=True)
print()
