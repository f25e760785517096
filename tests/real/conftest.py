"""Real servers for tests/real, started once per session (LiteLLM's proxy takes tens of seconds to start)."""

from __future__ import annotations

import os

import pytest

from tests.real.servers import HOW_TO_INSTALL, litellm_proxy, llama_cpp_server

# litellm (the client, and anything importing it) fetches a price list from GitHub at import without this.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def litellm_server():
    with litellm_proxy() as server:
        yield server


@pytest.fixture(scope="session")
def llama():
    """llama.cpp's own server, one slot: small prompts and a few tokens each (it reads ~100-500 prompt tokens a
    second on CI's 2 busy cores)."""
    with llama_cpp_server(n_ctx=2048) as server:
        yield server


@pytest.fixture(scope="session")
def litellm_client():
    """litellm as a client library."""
    try:
        import litellm
    except ImportError:
        pytest.skip(f"litellm (client) not installed: {HOW_TO_INSTALL}")
    return litellm


@pytest.fixture(scope="session")
def chat_openai():
    """langchain-openai's ChatOpenAI."""
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        pytest.skip(f"langchain-openai not installed: {HOW_TO_INSTALL}")
    return ChatOpenAI
