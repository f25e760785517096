"""`cot-proxy keys ...` (also `python cot_proxy.py keys ...` and `./run_app.sh keys ...`): team keys in the
store the running proxy reads, so a change takes effect without a restart.

    keys create NAME [--models GLOBS] [--rpm N] [--tpm N] [--budget TOKENS/PERIOD] [--budget-usd DOLLARS/PERIOD]
                [--max-parallel N] [--tool-rpm N] [--tool-parallel N] [--priority N] [--expires DATE] [--team TEAM]
                [--owner EMAIL] [--argo-user NAME]
    keys list
    keys update NAME [--models GLOBS] [--rpm N] [--tpm N] [--budget TOKENS/PERIOD] [--budget-usd DOLLARS/PERIOD]
                [--max-parallel N] [--tool-rpm N] [--tool-parallel N] [--priority N] [--expires DATE]
                [--team TEAM|none] [--owner EMAIL|none] [--argo-user NAME|none]
    keys revoke NAME
    keys usage [--since YYYY-MM-DD] [--csv] [--tools | --sessions]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable

from argoproxy.people.argo_user import parse_argo_user
from argoproxy.spend import dollars
from argoproxy.teamkeys.audit import cli_entry
from argoproxy.teamkeys.records import (TEAM_WINDOWS, TOOL_WINDOWS, KeyRecord, TeamRecord, digest, globs_meet, parse_budget,
                                        parse_budget_usd, parse_count, parse_expires, parse_models, parse_name,
                                        parse_owner, parse_priority, parse_tools)
from argoproxy.teamkeys.session_usage import by_session
from argoproxy.teamkeys.store import KeyExists, SQLiteKeyStore


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{prog} keys", description="Team keys: each with its own models, "
                                     "limits and usage, in the store the running proxy reads (no restart).")
    parser.add_argument("--keys-db", help="the store (default: KEYS_DB, else keys.db next to the config in force)")
    parser.add_argument("--config", help="config.yaml whose keys_db (or directory) names the store")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{create,list,update,revoke,usage}")
    create = commands.add_parser("create", help="make a key; it is printed once")
    create.add_argument("name", help="a name for the key, by which `keys list`, `usage`, `update` and `revoke` "
                        "know it (1-64 letters, digits, '.', '_', '@' or '-'; the key itself is made for you)")
    limit_options(create, lifting=False)
    create.add_argument("--team", help="the team whose limits it shares too (`teams create`)")
    create.add_argument("--owner", help="the email of the person it belongs to (they signed in once: `people list`)")
    create.add_argument("--argo-user", help="the ARGO username its requests carry (else its owner's: "
                        "docs/backends/argo-per-person.md)")
    commands.add_parser("list", help="the keys, their limits and state (never the keys themselves)")
    update = commands.add_parser("update", help="change an active key's models or limits, keeping the key and "
                                 "what it used (every worker within a second)")
    update.add_argument("name", help="the key's name, as `keys create` was given it")
    limit_options(update, lifting=True)
    update.add_argument("--team", help="the team whose limits it shares too (none: no team)")
    update.add_argument("--owner", help="the email of the person it belongs to (none: a service key)")
    update.add_argument("--argo-user", help="the ARGO username its requests carry (none: its owner's)")
    revoke = commands.add_parser("revoke", help="refuse a key from now on (every worker within a second)")
    revoke.add_argument("name", help="the key's name, as `keys create` was given it")
    usage = commands.add_parser("usage", help="requests, tokens and cost per key, model and day")
    usage.add_argument("--since", default="", type=_day_arg, help="first day, YYYY-MM-DD")
    usage.add_argument("--csv", action="store_true", help="CSV instead of a table")
    usage.add_argument("--tools", action="store_true", help="MCP tool calls per key, server, tool and day instead")
    usage.add_argument("--sessions", action="store_true", help="requests, tokens and cost per key and agent session "
                       "instead (over the days since --since; requests that named no session are not listed)")
    return parser


def limit_options(command: argparse.ArgumentParser, lifting: bool, who: str = "this key") -> None:
    """The options of a key's (or a team's) models and limits: `lifting` (update), 0 / none / never / '*' lift one."""
    if lifting:
        command.add_argument("--models", help="comma-separated globs ('*': whatever ALLOWED_MODELS allows)")
    else:
        command.add_argument("--models", default="", help=f"comma-separated globs {who} may use (within "
                             "ALLOWED_MODELS)")
    command.add_argument("--tools", help=f"comma-separated globs of the MCP tools {who} may list and call "
                         "(prefixed names: git__*,docs__read_*; docs/mcp.md)" + ("; '*': every tool" if lifting else ""))
    lift = {True: (" (0: no limit)", " (none: no budget)", " (none: no dollar budget)", " (0: no cap)",
                   " (0: ADMISSION_WEIGHTS', else 1)", " (never: no expiry)"), False: ("",) * 6}[lifting]
    command.add_argument("--rpm", help="requests per minute" + lift[0])
    command.add_argument("--tpm", help="tokens per minute" + lift[0])
    command.add_argument("--budget", help="tokens per period: TOKENS/hour, /day, /week or /month (UTC calendar)" + lift[1])
    command.add_argument("--budget-usd", help="US dollars per period, at the models' prices: DOLLARS/hour, /day, /week "
                         "or /month (e.g. 50/month)" + lift[2])
    command.add_argument("--max-parallel", help="requests in flight at once (429 beyond)" + lift[3])
    command.add_argument("--tool-rpm", help="MCP tool calls per minute, apart from model requests (docs/mcp.md)"
                         + lift[0])
    command.add_argument("--tool-parallel", help="MCP tool calls at once" + lift[3])
    command.add_argument("--priority", "--weight", help="its weight in the admission queue, 1-1000 (default: "
                         "ADMISSION_WEIGHTS', else 1): priority 4 gets four times the slots of priority 1 while "
                         "both wait" + lift[4])
    command.add_argument("--expires", help="YYYY-MM-DD (end of that day, UTC) or an ISO date-time" + lift[5])


def _day_arg(text: str) -> str:
    if not text:  # the default: every day
        return ""
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


# The entry point's settings reader (serve/gunicorn_app.py's loaded_or_exit: a bad setting ends the process with
# one line naming it), handed by the command line that runs `keys`: flags -> Settings.
SettingsOf = Callable[[dict[str, Any]], Any]


def open_cli_store(args: argparse.Namespace, settings_of: SettingsOf) -> Any:
    """The store the proxy reads: --keys-db, else Redis when REDIS_URL is set, else the settings' keys_db.
    Whether those settings turn auth on is kept on `args.auth_on` (None: --keys-db, no settings read)."""
    args.auth_on = None
    if args.keys_db:
        return SQLiteKeyStore(args.keys_db)
    flags = {"config_path": args.config} if args.config else {}
    settings = settings_of(flags)
    args.auth_on = getattr(settings, "enable_auth", None)  # a stand-in Settings may leave it out
    if settings.redis_url:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        return RedisKeyStore(settings.redis_url)
    return SQLiteKeyStore(settings.keys_db)


def main(argv: list[str], settings_of: SettingsOf, prog: str = "cot-proxy") -> int:
    """`keys ...`; `settings_of`: how the entry point reads the settings (argoproxy/cli.py, firstrun.py)."""
    args = build_parser(prog).parse_args(argv)
    store = open_cli_store(args, settings_of)
    return run_command(COMMANDS[args.command], store, args, "keys")


def run_command(command: Callable[[Any, argparse.Namespace], int], store: Any, args: argparse.Namespace,
                name: str) -> int:
    """A `keys` or `teams` subcommand run, each change written to the audit log: a refusal (ValueError) is its one
    line and exit 2; a store that failed (Redis down, a locked file) one line and exit 1, its URL's credentials
    masked."""
    try:
        done = command(store, args)
        change = cli_entry(name, args, _changes) if done == 0 else None
        if change is not None:  # the audit log (teamkeys/audit.py): every change, whoever made it
            store.add_audit(change)
        return done
    except ValueError as exc:
        print(f"cot_proxy {name}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the store itself failed: one line
        from argoproxy.redaction import mask_url
        print(f"cot_proxy {name}: the key store {mask_url(str(store.path))} failed: {type(exc).__name__}: "
              f"{mask_url(str(exc))}", file=sys.stderr)
        return 1


def create(store: SQLiteKeyStore, args: argparse.Namespace) -> int:
    from argoproxy.config.listener import generate_key
    key = generate_key()
    record = KeyRecord(parse_name(args.name), digest(key), key[:12], parse_models(args.models),
                       parse_count(args.rpm, "--rpm") if args.rpm else 0,
                       parse_count(args.tpm, "--tpm") if args.tpm else 0,
                       parse_budget(args.budget) if args.budget else None,
                       parse_expires(args.expires) if args.expires else 0.0, time.time(),
                       max_parallel=parse_count(args.max_parallel, "--max-parallel") if args.max_parallel else 0,
                       priority=parse_priority(args.priority) if args.priority else 0,
                       budget_usd=parse_budget_usd(args.budget_usd) if args.budget_usd else None,
                       team=parse_name(args.team, "team") if args.team else "",
                       tools=parse_tools(args.tools) if args.tools else (),
                       tool_rpm=parse_count(args.tool_rpm, "--tool-rpm") if args.tool_rpm else 0,
                       tool_parallel=parse_count(args.tool_parallel, "--tool-parallel") if args.tool_parallel else 0,
                       owner=owner_id(store, args.owner) if args.owner else "",
                       argo_user=parse_argo_user(args.argo_user) if args.argo_user else "")
    try:
        store.create(record)
    except KeyExists as exc:
        raise ValueError(str(exc)) from None
    print(key)
    _warn_models(store, record)
    from argoproxy.redaction import mask_url
    print(f"# key {record.name!r} created in {mask_url(str(store.path))}; it is shown only now (the store keeps its hash).",
          file=sys.stderr)
    warn_auth_off(args)
    return 0


def owner_id(store: Any, email: str) -> str:
    """The id of the person of that email (`--owner`): they must have signed in once."""
    person = store.person_by_email(parse_owner(email))
    if person is None:
        raise ValueError(f"no person with the email {email.strip()[:80]!r}: a person is recorded at their first "
                         "sign-in (`people list` lists them)")
    return str(person.id)


def warn_auth_off(args: argparse.Namespace) -> None:
    """A key made while auth is off does nothing: said, not refused, since keys are often made first and auth
    turned on after (refusing would make that order impossible)."""
    if args.auth_on is False:
        print("cot_proxy: warning: auth is off (ENABLE_AUTH is not set here or in the config file), so the proxy "
              "takes every request without a key and this key's limits do nothing: start the proxy with "
              "ENABLE_AUTH=true (or enable_auth: true in config.yaml) to require keys", file=sys.stderr)


def list_keys(store: SQLiteKeyStore, args: argparse.Namespace) -> int:
    rows: list[tuple[str, ...]] = [("NAME", "KEY", "MODELS", "RPM", "TPM", "BUDGET", "BUDGET_USD", "PARALLEL", "PRIORITY",
                                    "TOOL_RPM", "TOOL_PARALLEL", "EXPIRES", "TEAM", "STATE", "OWNER")]
    now = time.time()
    emails = {p.id: p.email or p.id for p in store.people()}
    for r in store.records():
        state = "revoked" if r.revoked else "expired" if r.expires and r.expires <= now else \
            "owner disabled" if r.owner_disabled else "active"
        rows.append((r.name, r.prefix + "...", ",".join(r.models) or "*", str(r.rpm or "-"), str(r.tpm or "-"),
                     str(r.budget or "-"), str(r.budget_usd or "-"), str(r.max_parallel or "-"), str(r.priority or "-"),
                     str(r.tool_rpm or "-"), str(r.tool_parallel or "-"), _day(r.expires) if r.expires else "-", r.team or "-", state,
                     emails.get(r.owner, r.owner) or "-"))
    _table(rows)
    return 0


def update(store: SQLiteKeyStore, args: argparse.Namespace) -> int:
    changes = key_changes(store, args)
    if not changes:
        raise ValueError("nothing to change: give --models, --tools, --rpm, --tpm, --budget, --budget-usd, --max-parallel, "
                         "--tool-rpm, --tool-parallel, --priority, --expires, --team, --owner or --argo-user")
    if not store.update(args.name, changes):
        raise ValueError(f"no active key named {args.name!r}")
    said = ", ".join(f"{name} {_shown(value)}" for name, value in changes.items())
    print(f"updated {args.name!r}: {said}; in force on every worker within a second", file=sys.stderr)
    if "models" in changes or changes.get("team"):
        record = next((r for r in store.records() if r.name == args.name and not r.revoked), None)
        if record is not None:
            _warn_models(store, record)
    return 0


def _warn_models(store: Any, record: KeyRecord) -> None:
    """A key whose globs and its team's have no model in common is said to (it can use none)."""
    team = store.team(record.team) if record.team else None
    if team is not None:
        warn_no_models(record, team)


def warn_no_models(key: KeyRecord, team: TeamRecord) -> None:
    """A key whose globs and its team's have no model in common: it can use none (said, not refused)."""
    if not globs_meet(key.models, team.models):
        print(f"cot_proxy: warning: key {key.name!r} can use no model: its --models ({','.join(key.models)}) and "
              f"team {team.name!r}'s ({','.join(team.models)}) have none in common", file=sys.stderr)


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    """The record fields the options change (KeyRecord's names): 0 / none / never / * lift a limit."""
    changes: dict[str, Any] = {}
    for field, parse, everything in (("models", parse_models, "whatever ALLOWED_MODELS allows"),
                                     ("tools", parse_tools, "every tool")):
        text = getattr(args, field)
        if text is not None:
            globs = () if text.strip() == "*" else parse(text)
            if not globs and text.strip() != "*":  # an empty variable would open the key to every one
                raise ValueError(f"--{field} needs globs ('*': {everything})")
            changes[field] = globs
    for field in ("rpm", "tpm", "max_parallel", "tool_rpm", "tool_parallel"):
        value = getattr(args, field)
        if value is not None:
            changes[field] = 0 if value == "0" else parse_count(value, f"--{field.replace('_', '-')}")
    if args.priority is not None:
        changes["priority"] = 0 if args.priority == "0" else parse_priority(args.priority)
    if args.budget is not None:
        changes["budget"] = None if args.budget.lower() == "none" else parse_budget(args.budget)
    if args.budget_usd is not None:
        changes["budget_usd"] = None if args.budget_usd.lower() == "none" else parse_budget_usd(args.budget_usd)
    if args.expires is not None:
        changes["expires"] = 0.0 if args.expires.lower() == "never" else parse_expires(args.expires)
    if getattr(args, "team", None) is not None:
        changes["team"] = "" if args.team.lower() == "none" else parse_name(args.team, "team")
    if getattr(args, "argo_user", None) is not None:  # the command line's: the console's is an admin's (keys_api.py)
        changes["argo_user"] = parse_argo_user(args.argo_user)
    return changes


def key_changes(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    """A key's changes: its limits', and its owner (none: a service key)."""
    changes = _changes(args)
    if args.owner is not None:
        changes["owner"] = "" if args.owner.strip().lower() == "none" else owner_id(store, args.owner)
    return changes


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "*"
    if isinstance(value, float):
        return _day(value) if value else "never"
    return str(value or "none")


def revoke(store: SQLiteKeyStore, args: argparse.Namespace) -> int:
    if not store.revoke(args.name):
        raise ValueError(f"no active key named {args.name!r}")
    print(f"revoked {args.name!r}: refused by every worker within a second", file=sys.stderr)
    return 0


def usage(store: SQLiteKeyStore, args: argparse.Namespace) -> int:
    """One row per key, model and day: its cost in US dollars (exact, at the rates of each request's day) and the
    requests whose model had no price (not in the cost: flagged). With --tools: one row per key, MCP server, tool and
    day (docs/mcp.md)."""
    if args.sessions:
        rows = session_rows("key", store.session_usage(args.since),
                            lambda name: not name.startswith((TEAM_WINDOWS, TOOL_WINDOWS)))
    elif args.tools:
        rows = [("key", "server", "tool", "day", "calls", "errors", "seconds", "bytes_in", "bytes_out", "cost_usd"),
                *[(*map(str, row[:6]), f"{row[6] / 1000:.3f}", str(row[7]), str(row[8]), dollars(row[9]))
                  for row in store.tool_usage(args.since) if not row[0].startswith(TEAM_WINDOWS)]]  # `teams usage`
    else:
        rows = [("key", "model", "day", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests"),
                *[(*map(str, row[:6]), dollars(row[6]), str(row[7])) for row in store.usage(args.since)
                  if not row[0].startswith((TEAM_WINDOWS, TOOL_WINDOWS))]]  # a team's rows: `teams usage`
    if args.csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
    else:
        _table([tuple(h.upper() for h in rows[0]), *rows[1:]])
    return 0


def session_rows(who: str, rows: list[Any], named: Callable[[str], bool]) -> list[tuple[str, ...]]:
    """`usage --sessions`: one row per key (or team) and agent session, summed over models and days."""
    return [(who, "session", "requests", "input_tokens", "output_tokens", "cost_usd"),
            *[(name, session, str(requests), str(prompt), str(completion), dollars(cost))
              for name, session, requests, prompt, completion, cost in by_session(rows, named)]]


COMMANDS: dict[str, Any] = {"create": create, "list": list_keys, "update": update, "revoke": revoke, "usage": usage}


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
