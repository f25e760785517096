"""The official openai client pointed at the proxy, with and without streaming."""

from openai import OpenAI

from _common import API_KEY, BASE_URL, MODEL

client = OpenAI(base_url=BASE_URL, api_key=API_KEY)
reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}])
print(reply.choices[0].message.content)
for chunk in client.chat.completions.create(model=MODEL, stream=True,
                                            messages=[{"role": "user", "content": "Say hello again."}]):
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
