"""A provider's part of the first run (`./run_app.sh`, or `cot-proxy` in a terminal with nothing configured), and
the questions it is made of: the `FirstRun` record a provider names in its `Provider` record (`first_run`), the
checks it may list, the question primitives (`ask`, `ask_yes`, `ask_base_url`, `say`) and `set_key`, which writes one
key of a config the first run made (`signin setup` writes sign-in's with it).
argoproxy/firstrun.py, the command line, runs them; a provider's firstrun.py imports them from here, so no
provider imports a command line.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from argoproxy.config.setting_fields import as_base_url

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings


class Abort(Exception):
    """Stop the first run with this message and exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def say(text: str = "") -> None:
    print(text, flush=True)


def interactive() -> bool:
    return sys.stdin.isatty()


def ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        say()
        raise Abort("Aborting: no answer (end of input).", 2) from None


def ask_yes(prompt: str, default: bool) -> bool:
    answer = ask(f"{prompt} [{'Y/n' if default else 'y/N'}] ").lower()
    return default if not answer else answer.startswith("y")


# ---- the config file's keys -------------------------------------------------------------------------------

def yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def set_key(config: Path, key: str, value: Any) -> None:
    """Replace the `key: ...` line of the config (appended when absent), keeping everything else."""
    text = config.read_text(encoding="utf-8")
    line = f"{key}: {yaml_value(value)}"
    text, found = re.subn(rf"(?m)^{re.escape(key)}:.*$", lambda _: line, text, count=1)
    if not found:
        text = text.rstrip("\n") + "\n" + line + "\n"
    config.write_text(text, encoding="utf-8")


# ---- the questions ---------------------------------------------------------------------------------------


def ask_base_url() -> str:
    say("No model server yet? Stop here (Ctrl+C) and try the proxy in front of a demo model of its own: "
        "`./run_app.sh demo` (or `cot-proxy demo`).")
    while True:
        answer = ask("Base URL of the OpenAI-compatible server (e.g. http://localhost:8000/v1): ")
        try:
            url = as_base_url(answer)
        except ValueError as exc:
            say(f"Error: {exc}")
            continue
        if url:
            return url
        say("Error: the URL cannot be empty")


# One endpoint to try before serving: (label, method, URL, JSON body, success needed).
Check = tuple[str, str, str, dict[str, Any] | None, bool]


def no_questions() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class FirstRun:
    """A provider's part of the first run (its Provider record names it: Provider.first_run)."""

    title: str  # its answer to "which backend?"
    ask: Callable[[], dict[str, Any]] = no_questions  # its questions -> the config keys they set
    needs: str = ""  # the keys a hand-written config needs, for the no-terminal message
    env_keys: tuple[str, ...] = ()  # any of these in the environment sets it up without a config file
    checks: Callable[[Settings], list[Check]] | None = None  # None: GET its URL's /models, any answer will do
    example_model: str = ""  # the model of the request printed at the end; "": the first its /models lists
    unreachable: tuple[str, ...] = ()  # what to say when its upstream does not answer
    asks_again: Mapping[str, Callable[[], Any]] = field(default_factory=dict)  # a refused setting -> its question
    comments: Mapping[str, str] = field(default_factory=dict)  # config comments for the keys its questions set
