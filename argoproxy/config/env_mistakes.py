"""Environment variables that look like a setting mistyped (THINKMODE, ENABLE_AUTHENTICATION): a warning naming
the setting meant, never an error (settings.py's loader prints it)."""

from __future__ import annotations

import difflib
import functools
from typing import Mapping

FAMILIAR = frozenset({"OPENAI_API_BASE"})  # other tools' spellings a user may well export for them


def _other_word(name: str, known: str) -> bool:
    """One is the other with a word more in front (CORS_ALLOWED_ORIGINS, REQUEST_TIMEOUT): another tool's."""
    return name.endswith("_" + known) or known.endswith("_" + name)


def misspelled(environ: Mapping[str, str], env_names: frozenset[str]) -> tuple[str, ...]:
    """Environment variables that look like a setting mistyped (THINKMODE, ENABLE_AUTHENTICATION): not used,
    and a user who set ENABLE_AUTHENTICATION=true believes the proxy is guarded."""
    out = []
    for name in environ:
        if name in FAMILIAR or name in env_names or not name.isupper() or name.rstrip("0123456789") in env_names:
            continue  # (Marathon's PORT0)
        meant = _meant(name, env_names)
        if meant:
            out.append(f"{name} is set, but it is not a setting (did you mean {meant}?), so it is not used")
    return tuple(out)


@functools.lru_cache(maxsize=1024)  # the settings are read several times in a process, and a worker inherits this
def _meant(name: str, env_names: frozenset[str]) -> str | None:
    """The setting a variable's name looks like a mistyping of, if any."""
    close = [known for known in difflib.get_close_matches(name, env_names, n=3, cutoff=0.85)
             if len(known) >= 8 and not _other_word(name, known)] or \
        [known for known in env_names if len(known) >= 8 and name.startswith(known) and name[len(known):].isalpha()]
    return close[0] if close else None
