"""The official openai client talking to an o3 model through the proxy (seed: o3_chat_example_pyclient.py).

o-series models take no system role and no temperature: the proxy turns the system message into a user
message, and the client asks with max_completion_tokens as OpenAI's API does for reasoning models."""

from openai import OpenAI

from _common import API_KEY, BASE_URL

client = OpenAI(base_url=BASE_URL, api_key=API_KEY)
response = client.chat.completions.create(
    model="argo:gpt-o3-mini",
    messages=[{"role": "system", "content": "Answer in one sentence."},
              {"role": "user", "content": "What is the capital of France?"}],
    max_completion_tokens=1000,
)
print(response.choices[0].message.content)
