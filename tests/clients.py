"""The official SDKs as the tests' clients of a running proxy: no retries (a retry would hide the failure a test
looks for) and a timeout that ends a hung test rather than the suite's own."""

from __future__ import annotations

import anthropic
import openai

from tests.proxy_process import ProxyProcess


def openai_sdk(proxy: ProxyProcess, key: str = "sk-client", timeout: float = 30) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0, timeout=timeout)


def anthropic_sdk(proxy: ProxyProcess, key: str = "sk-client", timeout: float = 30) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0, timeout=timeout)
