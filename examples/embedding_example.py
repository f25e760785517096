"""POST /v1/embeddings with the OpenAI request and response shapes."""

import requests

from _common import BASE_URL

response = requests.post(f"{BASE_URL}/embeddings", json={
    "model": "argo:text-embedding-3-small", "input": ["What is your name?", "What is your favorite color?"],
}, timeout=120)
response.raise_for_status()
for item in response.json()["data"]:
    print(item["index"], len(item["embedding"]), item["embedding"][:3])
