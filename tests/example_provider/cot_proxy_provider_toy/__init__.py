"""The toy provider: a made-up wire protocol (deliberately not OpenAI's) behind the proxy's OpenAI API, written
as a provider package outside argoproxy/, as docs/adding-a-backend.md describes. Its tests
(tests/integration/test_example_backend.py) copy this directory into a temporary one, put that on the proxy's
PYTHONPATH and serve it under the real Gunicorn app with BACKEND=toy and as a routing entry's backend: no
file of the proxy names it.

Modules:
  backend  - the ToyBackend (chat only): OpenAI request -> toy request, toy answer -> OpenAI objects
  settings - its settings fragment: TOY_API_KEY
"""

from argoproxy.providers import Provider, register
from cot_proxy_provider_toy.settings import ToySettings

register(Provider("toy", "cot_proxy_provider_toy.backend:ToyBackend", settings=ToySettings,
                  default_target_url="http://127.0.0.1:9/toy/", key_setting="toy_api_key",
                  summary="a made-up protocol, the tests' example provider"))
