"""POST /v1/chat/completions with "stream": true, reading the server-sent events."""

import json

import requests

from _common import BASE_URL, MODEL

with requests.post(f"{BASE_URL}/chat/completions", stream=True, timeout=120, json={
    "model": MODEL, "stream": True,
    "messages": [{"role": "user", "content": "Tell me a short story about a robot."}],
}) as response:
    response.raise_for_status()
    for line in response.iter_lines():
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        for choice in json.loads(line[6:])["choices"]:
            print(choice["delta"].get("content") or "", end="", flush=True)
print()
