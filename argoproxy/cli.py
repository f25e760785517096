"""The command line: `python cot_proxy.py [config] [flags]`; every flag is a setting (see --help).
Subcommands: `keys` (team keys), `run -- AGENT [ARGS]` and `agents` (coding agents pointed at the proxy)."""

from __future__ import annotations

import argparse
import signal

import sys
from typing import Any

from argoproxy import __version__
from argoproxy.config.settings import SETTING_FIELDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(  # prog: how it was started (cot_proxy.py, cot-proxy or argo-proxy)
        description="OpenAI-compatible gateway. Settings: defaults < config.yaml < .env < environment < these flags.",
        epilog="Subcommands: keys (team keys; keys --help), run [flags] -- AGENT [ARGS] (a coding agent pointed at "
               "the proxy: claude, codex, gemini, opencode, aider), agents (the set-up each agent on PATH gets).")
    parser.add_argument("config", nargs="?", help="config.yaml to read (same as --config / CONFIG_PATH)")
    for f in SETTING_FIELDS.values():
        flags = f.metadata["flags"]
        if not flags:
            continue
        env = ", ".join(f.metadata["env"])
        help_text = f"{f.metadata['help']} [{env}]" if env else f.metadata["help"]
        if f.type in ("bool", bool):
            parser.add_argument(*flags, dest=f.name, action="store_const", const=True, default=None, help=help_text)
            if f.metadata["negative_flags"]:
                parser.add_argument(*f.metadata["negative_flags"], dest=f.name, action="store_const", const=False,
                                    help=f"Turn off {flags[0]}.")
        else:
            parser.add_argument(*flags, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)
    # openai-forward's (seed 004) names for --mode non_stream / --mode stream.
    parser.add_argument("--NON_STREAM_SERVER_MODE", dest="upstream_mode", action="store_const", const="non_stream",
                        help="Same as --mode non_stream.")
    parser.add_argument("--STREAM_SERVER_MODE", dest="upstream_mode", action="store_const", const="stream",
                        help="Same as --mode stream.")
    parser.add_argument("--timeout", dest="timeout_ms", default=None, metavar="MS",
                        help="Upstream read timeout in milliseconds (kept for older command lines; TIMEOUT and "
                             "--request-timeout take seconds).")
    parser.add_argument("--show", action="store_true", help="Print the resolved settings (secrets masked) and exit.")
    parser.add_argument("--version", "-V", action="version", version=f"cot_proxy {__version__}")
    return parser


def parse_flags(argv: list[str]) -> tuple[dict[str, Any], argparse.Namespace]:
    args = build_parser().parse_args(argv)
    flags = {name: value for name, value in vars(args).items() if name in SETTING_FIELDS and value is not None}
    if args.config and "config_path" not in flags:
        flags["config_path"] = args.config
    if args.timeout_ms is not None:
        try:
            flags["timeout"] = float(args.timeout_ms) / 1000
        except ValueError:
            print(f"cot_proxy: bad setting --timeout: expected milliseconds, got {args.timeout_ms!r}", file=sys.stderr)
            raise SystemExit(2) from None
    return flags, args


# Held blocked by run_app.sh's first-run process across its exec into this one (argoproxy.firstrun.serve).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def release_stop_signals() -> None:
    """Unblock the stop signals firstrun held across its exec: one sent meanwhile (a Ctrl+C just as the checks
    ended) is delivered now and ends the start quietly, where it used to be lost with the exec'd interpreter
    and the server then ran on."""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        check_interrupt()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def check_interrupt() -> None:
    """A Python call: a KeyboardInterrupt the signal handler flagged is raised on entering it."""


def main(argv: list[str] | None = None) -> None:
    from argoproxy.serve.gunicorn_app import loaded_or_exit, run

    release_stop_signals()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:  # the team keys subcommand, the same under every entry point
        from argoproxy.teamkeys.cli import main as keys_main
        raise SystemExit(keys_main(argv[1:], lambda flags: loaded_or_exit(flags).settings, prog=_prog()))
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
    run(flags)


def _prog() -> str:
    import os
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "cot-proxy"


if __name__ == "__main__":
    main()
