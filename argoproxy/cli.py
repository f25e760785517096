"""The command line: `cot-proxy [config] [flags]` (also `python cot_proxy.py`, `python app.py`); every flag is a
setting (argoproxy/config/command_line.py: the flags and the help, short with --help, whole with --help-all).
Subcommands: `keys` (team keys), `teams` (teams of keys), `people` (who signed in), `signin setup` (sign-in's
settings asked), `prices` (the price table), `run -- AGENT [ARGS]` and `agents` (coding agents
pointed at the proxy), `mcp list` (the running proxy's MCP servers), `demo` (the proxy in front of a demo model,
argoproxy/launch/demo.py).

Started in a terminal with nothing configured (argoproxy/config/unconfigured.py), it asks the first-run
questions run_app.sh asks (argoproxy/firstrun.py) and then starts the same command again with the config they
wrote; without a terminal, serving refuses with one line saying how to configure it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from argoproxy.stop_signals import release_stop_signals

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

# Each subcommand imports what it needs when it runs: `keys --keys-db` (which scripts and the tests run often)
# reads no settings, so it starts without the settings' table, the first run's checks or Gunicorn.


def __getattr__(name: str) -> Any:
    """build_parser and parse_flags (argoproxy/config/command_line.py), here as before, imported on first use."""
    if name in ("build_parser", "parse_flags"):
        from argoproxy.config import command_line
        return getattr(command_line, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def settings_of(flags: dict[str, Any]) -> Settings:
    """The settings the flags and the config in force give (a bad one: its one line, exit 2): how a subcommand
    that reads them gets them."""
    from argoproxy.serve.gunicorn_app import loaded_or_exit
    return loaded_or_exit(flags).settings


def main(argv: list[str] | None = None) -> None:
    release_stop_signals()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:  # the team keys subcommand, the same under every entry point
        from argoproxy.teamkeys.cli import main as keys_main
        raise SystemExit(keys_main(argv[1:], settings_of, prog=_prog()))
    if argv[:1] == ["teams"]:  # teams of keys, whose limits their keys share
        from argoproxy.teamkeys.teams_cli import main as teams_main
        raise SystemExit(teams_main(argv[1:], settings_of, prog=_prog()))
    if argv[:1] == ["people"]:  # the people who signed in (docs/signin.md)
        from argoproxy.teamkeys.people_cli import main as people_main
        raise SystemExit(people_main(argv[1:], settings_of, prog=_prog()))
    if argv[:1] == ["signin"]:  # `signin setup`: sign-in's settings asked and written into the config
        from argoproxy.signin.setup import main as signin_main
        raise SystemExit(signin_main(argv[1:], _prog()))
    if argv[:1] == ["prices"]:  # the price table: refreshed from genai-prices, a model's rates shown
        from argoproxy.spend import prices_main
        raise SystemExit(prices_main(argv[1:], prog=_prog(), settings_of=settings_of))
    from argoproxy.config.command_line import parse_flags
    from argoproxy.firstrun import set_up_and_serve
    from argoproxy.serve.gunicorn_app import loaded_or_exit, run
    if argv[:1] == ["demo"]:  # the proxy in front of a demo model of its own: no model server needed
        from argoproxy.launch.demo import main as demo_main
        raise SystemExit(demo_main(argv[1:], _prog(), parse_flags))
    if argv[:1] == ["mcp"]:  # the running proxy's MCP servers: `mcp list`
        from argoproxy.launch.mcp_list import main as mcp_main
        raise SystemExit(mcp_main(argv[1:], _prog(), parse_flags))
    if argv[:1] in (["run"], ["agents"]):  # coding agents pointed at the proxy (argoproxy/launch)
        from argoproxy.launch.run import main as launch_main
        raise SystemExit(launch_main(argv[0], argv[1:], _prog(), parse_flags))
    flags, args = parse_flags(argv)
    if args.show:
        loaded = loaded_or_exit(flags)
        for warning in loaded.warnings:
            print(f"cot_proxy: warning: {warning}", file=sys.stderr)
        for name, value in loaded.settings.public_items():
            # A value of a type of its own (LLM_PARAMS' rules, model_capabilities) as the user would write it.
            print(f"{name}: {(value.as_written() if hasattr(value, 'as_written') else value)!r}")
        if loaded.backend_reason:
            print(f"# {loaded.settings.backend} backend: {loaded.backend_reason}")
        return
    if asks_first(flags):
        command = this_command()
        set_up_and_serve(argv, flags, None, shown(command), command)
    run(flags)


def asks_first(flags: dict[str, Any]) -> bool:
    """In a terminal, with no config file and nothing that names the upstream: the first run's questions come
    first. (Without a terminal, serving refuses with one line: argoproxy/config/unconfigured.py.)"""
    from argoproxy.config.first_run import interactive
    if not interactive():
        return False
    from argoproxy.config.unconfigured import nothing_configured
    from argoproxy.serve.gunicorn_app import loaded_or_exit
    loaded = loaded_or_exit(flags)  # a bad setting: its one line now, before any question
    return not loaded.settings.config_path and nothing_configured(loaded)


def this_command() -> list[str]:
    """The interpreter and what it ran (a script, a console script, -m module), without the arguments: the
    first run starts the same command again once the config is written."""
    given = len(sys.argv) - 1
    return list(sys.orig_argv[:len(sys.orig_argv) - given] if given else sys.orig_argv)


def shown(command: list[str]) -> str:
    """`command` as the user would type it again: `cot-proxy`, `python cot_proxy.py`, `python -m argoproxy.cli`."""
    import shlex
    import shutil
    ran = command[1:]
    if len(ran) == 1 and not ran[0].endswith(".py"):  # a console script: its name when PATH finds it
        name = os.path.basename(ran[0])
        found = shutil.which(name)
        return name if found and os.path.realpath(found) == os.path.realpath(ran[0]) else ran[0]
    if ran and ran[-1].endswith(".py") and not os.path.relpath(ran[-1]).startswith(".."):
        ran = [*ran[:-1], os.path.relpath(ran[-1])]
    return shlex.join([os.path.basename(command[0]), *ran])


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "cot-proxy"


if __name__ == "__main__":
    main()
