"""The argo provider's part of ./run_app.sh's first run (argoproxy/firstrun.py): the ANL username question,
asked again when the loader refuses it, and the connectivity checks with real payloads."""

from __future__ import annotations

import re
from typing import Any

from argoproxy.config.first_run import Check, FirstRun, ask, say


def username_problem(name: str) -> str | None:
    if not name:
        return "Error: Username cannot be empty"
    if any(ch.isspace() for ch in name):
        return "Error: Username cannot contain spaces"
    if name.lower() == "cels":
        return "Error: 'cels' is not allowed as a username"
    if not re.fullmatch(r"[A-Za-z0-9._@-]+", name):
        return "Error: Username may contain only letters, digits, '.', '_', '@' and '-'"
    return None


def ask_username() -> str:
    while True:
        name = ask("Enter your username: ")
        problem = username_problem(name)
        if problem is None:
            return name
        say(problem)


def questions() -> dict[str, Any]:
    say("ARGO answers inside Argonne's network (on site, VPN or an SSH tunnel) to registered ANL usernames.")
    return {"user": ask_username()}


def checks(settings: Any) -> list[Check]:
    if settings.use_native_openai:
        return [("ARGO OpenAI API", "GET", settings.native_openai_base_url + "models", None, False)]
    return [("chat API", "POST", settings.argo_url,
             {"user": settings.user, "model": "gpt4o", "messages": [{"role": "user", "content": "What are you?"}]},
             True),
            ("embedding API", "POST", settings.argo_embedding_url,
             {"user": settings.user, "model": "v3small", "prompt": ["hello"]}, True)]


FIRST_RUN = FirstRun(
    "ARGO, Argonne's LLM gateway", questions, "backend: argo\n    user: your_anl_username    # [ARGO_USER]",
    ("ARGO_USER",), checks=checks, example_model="argo:gpt-4o",
    unreachable=("ARGO answers only inside Argonne's network (on site, VPN or an SSH tunnel); an unregistered",
                 "username is refused: ask the CELS Helpdesk for access."),
    asks_again={"user": ask_username},
    comments={"user": "Your ANL username, sent as `user` on every ARGO call. [ARGO_USER]"})
