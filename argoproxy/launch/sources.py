"""What `cot-proxy run` and `cot-proxy agents` read besides the user's own environment and command line.

The working directory is often someone else's: a cloned repository brings a `.env` and a `config.yaml` of its
own, which would choose the upstream the user's key is sent to and the variables every process run starts has.
So from the working directory the launcher reads nothing (no `.env`, no `config.yaml`, no `keys.db` or
`responses.db`) unless the user
- names the file: `--config FILE` (or the config argument, or CONFIG_PATH), `--env-file FILE`; or
- trusted the directory: asked once, on a terminal only, the answer kept in the user's own config
  (`trusted_dirs`: one absolute path a line). Without a terminal the files are left out, said in one line.
  The user's own config directory and the checkout run's code comes from need no answer.
- the config file the first run's questions wrote (in the checkout, where ./run_app.sh was started): its path is
  recorded in the user's own config directory (`first_config`), which run trusts as it trusts that directory,
  so `run` from any other directory finds it (after the user's own ~/.config/argoproxy/config.yaml).

Whatever a file says, a variable that makes a program load code or its start-up files (LD_PRELOAD, PYTHONPATH,
NODE_OPTIONS, BASH_ENV, PATH, HOME, ...) is never taken from it: those come from the user's environment only.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from argoproxy.config.code_loaders import loads_code
from argoproxy.config.settings import CONFIG_SEARCH_PATH

ENV_FILE = ".env"
CONFIG_FILE = "config.yaml"
DATA_FILES = ("keys.db", "responses.db")  # where team keys and stored responses default to, without a config
USER_SEARCH = tuple(p for p in CONFIG_SEARCH_PATH if p.startswith("~"))  # the user's own config.yaml
USER_DIR = Path(USER_SEARCH[0]).parent  # ~/.config/argoproxy: the user's config, key file and, here, data
# The checkout run's own code comes from (where ./run_app.sh writes config.yaml): trusted as its code is.
CHECKOUT = Path(__file__).resolve().parents[2]

@dataclass(frozen=True)
class Sources:
    """The files this run reads: a config named or in a trusted directory (else the user's own, if any, is
    found on `search`), an env file, and where team keys and stored responses go when nothing names them."""
    config: Path | None
    env_file: Path | None
    search: tuple[str, ...]
    data_dir: Path | None  # when no config names it; None: as the proxy has it (next to the config, else here)


Ask = Callable[[str], "bool | None"]  # a yes/no question; None: there is no terminal to ask on


def choose(directory: Path, named_config: str | None, named_env: str | None, ask: Ask,
           say: Callable[[str], None], environ: Mapping[str, str] = os.environ) -> Sources:
    """The files to read for a run started in `directory` (see the module's docstring)."""
    here = directory.resolve()
    config = Path(named_config).expanduser().absolute() if named_config else None
    env_file = Path(named_env).expanduser().absolute() if named_env else None
    present = [name for name in _directory_files(config is not None, env_file is not None) if (here / name).exists()]
    trusted_here = here in (USER_DIR.expanduser().resolve(), CHECKOUT) or here in trusted(environ)
    if present and not trusted_here:
        trusted_here = _asked(here, present, ask, environ)
        if not trusted_here:
            say(f"not reading {', '.join(present)} in {here} (a directory you have not trusted): name a file with "
                "--config or --env-file, or run on a terminal to be asked once")
    recorded = recorded_config(environ)
    if not trusted_here:  # nothing of the directory's, and no keys.db made in it either
        return Sources(config, env_file, (*USER_SEARCH, *recorded), None if config else USER_DIR.expanduser())
    if env_file is None and (here / ENV_FILE).is_file():
        env_file = here / ENV_FILE
    return Sources(config, env_file, (*CONFIG_SEARCH_PATH, *recorded), None)


def _directory_files(config_named: bool, env_named: bool) -> list[str]:
    return ([] if env_named else [ENV_FILE]) + ([] if config_named else [CONFIG_FILE, *DATA_FILES])


def _asked(here: Path, present: list[str], ask: Ask, environ: Mapping[str, str]) -> bool:
    where = trusted_dirs_file(environ)
    answer = ask(f"{here} has {', '.join(present)}: they choose the proxy's upstream (where your key goes) and "
                 f"settings. Use them, now and for later runs here (kept in {where})? [y/N] ")
    if answer:
        remember(here, environ)
    return bool(answer)


def ask_on_terminal(question: str) -> bool | None:
    """A yes/no question on the terminal; None when stdin or stderr is not one (nothing is asked then)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


# ---- the user's trusted directories --------------------------------------------------------------------------

def trusted_dirs_file(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CONFIG_HOME/argoproxy/trusted_dirs, else ~/.config/argoproxy/trusted_dirs (beside the user's config)."""
    base = environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / USER_DIR.name / "trusted_dirs"


def trusted(environ: Mapping[str, str] = os.environ) -> set[Path]:
    """The directories the user trusted. A list another user could have written to is not theirs: ignored."""
    return {Path(line) for line in _own_lines(trusted_dirs_file(environ)) if line.startswith("/")}


def _own_lines(path: Path) -> list[str]:
    """The lines of a file of the user's own; none when another user could have written to it."""
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return []
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def first_config_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the first run records the config it wrote: beside trusted_dirs."""
    return trusted_dirs_file(environ).with_name("first_config")


def record_config(config: Path, environ: Mapping[str, str] = os.environ) -> None:
    """The first run wrote `config`: kept for `run` started in any other directory (one absolute path)."""
    path = first_config_file(environ)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600), "w", encoding="utf-8") as out:
        out.write(f"{config.absolute()}\n")


def recorded_config(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The config the first run recorded, as a search path entry (none when there is no record of the user's)."""
    return tuple(line for line in _own_lines(first_config_file(environ))[:1] if line.startswith("/"))


def remember(directory: Path, environ: Mapping[str, str] = os.environ) -> None:
    path = trusted_dirs_file(environ)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as out:
        out.write(f"{directory}\n")


# ---- env files -------------------------------------------------------------------------------------------------

def env_file_values(path: Path) -> dict[str, str]:
    """An env file's variables as python-dotenv reads them for the proxy (`${VAR}` from the environment), every
    line checked; one that is not NAME=value is a bad setting (SettingsError naming it)."""
    from dotenv import dotenv_values

    from argoproxy.serve.gunicorn_app import dotenv_text
    values = dotenv_values(stream=io.StringIO(dotenv_text(path)))
    return {name: value for name, value in values.items() if value is not None}


def without_code_loaders(values: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the variables a file may set, the names left out because they load code)."""
    kept = {name: value for name, value in values.items() if not loads_code(name)}
    return kept, sorted(set(values) - set(kept))
