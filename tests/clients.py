"""The official SDKs (openai, anthropic, google-genai) as the tests' clients of a running proxy: no retries (a retry would hide the failure a test
looks for) and a timeout that ends a hung test rather than the suite's own."""

from __future__ import annotations

import anthropic
import openai
from google import genai
from google.genai import types as genai_types

from tests.proxy_process import ProxyProcess


def openai_sdk(proxy: ProxyProcess, key: str = "sk-client", timeout: float = 30) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0, timeout=timeout)


def anthropic_sdk(proxy: ProxyProcess, key: str = "sk-client", timeout: float = 30) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0, timeout=timeout)


def google_sdk(proxy: ProxyProcess, key: str = "sk-client", timeout: float = 30,
               version: str | None = None) -> genai.Client:
    """google-genai pointed at the proxy's Google door, as a Gemini API key user points it (version: the API
    version in its paths, v1 unless given). Keep the Client bound while using it: collected, it closes its
    HTTP client."""
    options = genai_types.HttpOptions(base_url=proxy.url, timeout=int(timeout * 1000), api_version=version)
    return genai.Client(api_key=key, http_options=options)
