"""The command line as a source of settings: every setting's flags (SETTING_FIELDS), parsed by name, and the
help of the serving command line: short (the subcommands, then the settings most users need), or every
setting's flag (--help-all). Used by each entry point that reads flags (argoproxy/cli.py, argoproxy/firstrun.py
for ./run_app.sh, and `run`, which is handed parse_flags)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from argoproxy import __version__
from argoproxy.config.settings import SETTING_FIELDS
from argoproxy.redaction import url_credentials

# The settings --help shows, with a line each (--help-all: every setting, with its full help).
COMMON = {
    "target_base_url": "your server's base URL, e.g. http://localhost:8000/v1 (nothing configured: in a terminal, "
                       "the first run asks for it)",
    "backend": "openai (any OpenAI-compatible server: the default), argo or dashscope",
    "port": "port to listen on (default 5000)",
    "host": "address to listen on (default 127.0.0.1, this machine only; 0.0.0.0: every interface)",
    "socket": "listen on this Unix socket instead (private on a shared machine)",
    "enable_auth": "clients must send a key (they keep it in COT_PROXY_KEY)",
    "api_key_file": "the clients' keys, one a line",
    "debug": "one log line per request",
}
# A negative flag's help where "Turn off --flag." does not say what it does.
NEGATIVE = {"debug": "no log line per request nor upstream details (the default; wins over DEBUG or VERBOSE set "
                     "in config.yaml or the environment)"}
COMMANDS = """commands:
  (none)      serve; in a terminal with nothing configured, it asks the setup questions first
  run         start a coding agent pointed at the proxy: claude, codex, gemini, opencode, aider (run --help)
  agents      the set-up run gives each agent found on PATH
  keys        team keys: create, list, update, revoke, usage (keys --help)
  teams       teams of keys, whose limits they share: create, list, update, delete, usage (teams --help)
  people      the people who signed in: list, disable, enable (people --help)
  signin      setup: sign-in with your OpenID Connect provider, its settings asked and written to the config
  prices      the price table: refresh it from genai-prices, show a model's rates (prices --help)
  mcp list    the running proxy's MCP servers: their state and their tools
  demo        the proxy in front of a demo model of its own: try it with no model server"""
METAVARS = {"target_base_url": "URL", "host": "ADDRESS", "socket": "PATH", "api_key_file": "FILE"}
KEYS = """Keys: the upstream's in the environment or .env, never a flag (OPENAI_API_KEY, DASHSCOPE_API_KEY);
the clients' in their own shell as COT_PROXY_KEY (`run` and the first run's lines read it from there)."""


class _HelpAll(argparse.Action):
    """--help-all: every setting's flag, then exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        build_parser(full=True, prog=parser.prog).print_help()
        parser.exit()


def build_parser(full: bool = False, prog: str | None = None) -> argparse.ArgumentParser:
    """The serving command line; its help is the short one unless `full` (--help-all)."""
    parser = argparse.ArgumentParser(  # prog: how it was started (cot_proxy.py, cot-proxy or argo-proxy)
        prog=prog, add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [config.yaml] [flags]\n"
              "       %(prog)s run [config.yaml] [flags] [--model NAME] -- AGENT [ARGS]\n"
              "       %(prog)s agents [config.yaml] [flags]\n"
              "       %(prog)s keys {create,list,update,revoke,usage} ...\n"
              "       %(prog)s teams {create,list,update,delete,usage} ...\n"
              "       %(prog)s prices {refresh,show} ...\n"
              "       %(prog)s mcp list [config.yaml] [flags]",
        description=f"OpenAI-compatible gateway in front of an OpenAI-compatible server, ARGO or DashScope.\n\n"
                    f"{COMMANDS}",
        epilog=("" if full else "Every setting's flag: %(prog)s --help-all.\n") +
               "Each setting is also a config.yaml key and an environment variable (docs/reference/settings.md),\n"
               "read as defaults < config.yaml < .env < environment < these flags.")
    common = parser.add_argument_group("the settings most users need", KEYS)
    common.add_argument("config", nargs="?", help="config.yaml to read (default ./config.yaml, then "
                                                  "~/.config/argoproxy/config.yaml; same as --config)")
    others = parser.add_argument_group("every other setting") if full else parser.add_argument_group()
    for f in sorted(SETTING_FIELDS.values(), key=lambda f: f.name not in COMMON):
        if f.metadata["flags"]:
            _add_setting(common if f.name in COMMON else others, f, full)
    # openai-forward's (seed 004) names for --mode non_stream / --mode stream.
    shown = None if full else argparse.SUPPRESS
    others.add_argument("--NON_STREAM_SERVER_MODE", dest="upstream_mode", action="store_const", const="non_stream",
                        help=shown or "Same as --mode non_stream.")
    others.add_argument("--STREAM_SERVER_MODE", dest="upstream_mode", action="store_const", const="stream",
                        help=shown or "Same as --mode stream.")
    others.add_argument("--timeout", dest="timeout_ms", default=None, metavar="MS",
                        help=shown or "Upstream read timeout in milliseconds (kept for older command lines; TIMEOUT "
                                      "and --request-timeout take seconds).")
    command = parser.add_argument_group("this command")
    command.add_argument("--show", action="store_true", help="print the resolved settings (secrets masked) and exit")
    command.add_argument("-h", "--help", action="help", help="this help" if not full else "the short help")
    command.add_argument("--help-all", action=_HelpAll, help="every setting's flag")
    command.add_argument("--version", "-V", action="version", version=f"cot_proxy {__version__}")
    return parser


def _add_setting(group: Any, f: Any, full: bool) -> None:
    flags = f.metadata["flags"]
    env = ", ".join(f.metadata["env"])
    text = f.metadata["help"] if full or f.name not in COMMON else COMMON[f.name]
    help_text = argparse.SUPPRESS if not full and f.name not in COMMON else (f"{text} [{env}]" if env else text)
    if f.type in ("bool", bool):
        group.add_argument(*flags, dest=f.name, action="store_const", const=True, default=None, help=help_text)
        if f.metadata["negative_flags"]:
            group.add_argument(*f.metadata["negative_flags"], dest=f.name, action="store_const", const=False,
                               help=argparse.SUPPRESS if help_text == argparse.SUPPRESS else
                               NEGATIVE.get(f.name, f"Turn off {flags[0]}."))
    else:
        metavar = f.name.upper() if full else METAVARS.get(f.name, f.name.upper())
        group.add_argument(*flags, dest=f.name, default=None, metavar=metavar, help=help_text)


def parse_flags(argv: list[str]) -> tuple[dict[str, Any], argparse.Namespace]:
    args = build_parser().parse_args(argv)
    flags = {name: value for name, value in vars(args).items() if name in SETTING_FIELDS and value is not None}
    for name, value in flags.items():
        if isinstance(value, str) and url_credentials(value):
            field = SETTING_FIELDS[name].metadata
            print(f"cot_proxy: bad setting {field['flags'][0]}: a flag's credential can be read by every process on "
                  f"this machine (/proc/PID/cmdline, ps): set {field['env'][0]} in the environment or .env instead",
                  file=sys.stderr)
            raise SystemExit(2)
    if args.config and "config_path" not in flags:
        flags["config_path"] = args.config
    if args.timeout_ms is not None:
        try:
            flags["timeout"] = float(args.timeout_ms) / 1000
        except ValueError:
            print(f"cot_proxy: bad setting --timeout: expected milliseconds, got {args.timeout_ms!r}", file=sys.stderr)
            raise SystemExit(2) from None
    return flags, args
