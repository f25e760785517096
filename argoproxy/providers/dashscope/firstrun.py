"""The dashscope provider's part of ./run_app.sh's first run (argoproxy/firstrun.py): where its key goes."""

from __future__ import annotations

from typing import Any

from argoproxy.config.first_run import FirstRun, say


def questions() -> dict[str, Any]:
    say("Set DASHSCOPE_API_KEY in the environment or in .env (else clients' own keys are sent upstream).")
    return {}


FIRST_RUN = FirstRun("DashScope (Alibaba Cloud)", questions,
                     "backend: dashscope    # and DASHSCOPE_API_KEY in the environment or .env",
                     ("DASHSCOPE_API_KEY", "TARGET_BASE_URL", "OPENAI_BASE_URL"), example_model="qwen-max")
