"""Timeout override with the openai client: the proxy's per-request `timeout` goes in `extra_body` (the
client's own `timeout=` is how long the client waits, which is a different thing); streaming too."""

from openai import OpenAI

from _common import API_KEY, BASE_URL, MODEL

client = OpenAI(base_url=BASE_URL, api_key=API_KEY, timeout=60)
reply = client.chat.completions.create(model=MODEL, extra_body={"timeout": 30},
                                       messages=[{"role": "user", "content": "What is the capital of France?"}])
print(reply.choices[0].message.content)
for chunk in client.chat.completions.create(model=MODEL, stream=True, extra_body={"timeout": 30},
                                            messages=[{"role": "user", "content": "And again?"}]):
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
