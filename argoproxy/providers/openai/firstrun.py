"""The openai provider's part of ./run_app.sh's first run (argoproxy/firstrun.py): the server's base URL."""

from __future__ import annotations

from typing import Any

from argoproxy.config.first_run import FirstRun, ask_base_url, say


def questions() -> dict[str, Any]:
    url = ask_base_url()
    say("If the server needs an API key, set OPENAI_API_KEY in the environment or in .env (not in the config).")
    return {"target_base_url": url}


FIRST_RUN = FirstRun("An OpenAI-compatible server (vLLM, llama.cpp, Ollama, LiteLLM, OpenAI, ...)", questions,
                     "backend: openai\n    target_base_url: http://localhost:8000/v1    # your server [TARGET_BASE_URL]",
                     ("TARGET_BASE_URL", "OPENAI_BASE_URL", "MODELS"),
                     comments={"target_base_url": "The OpenAI-compatible server's base URL. [TARGET_BASE_URL]"})
