"""`cot-proxy teams ...` (also `python cot_proxy.py teams ...` and `./run_app.sh teams ...`): teams of keys, whose
limits their keys share, in the store the running proxy reads (no restart).

    teams create NAME [--models GLOBS] [--rpm N] [--tpm N] [--budget TOKENS/PERIOD] [--budget-usd DOLLARS/PERIOD]
                 [--max-parallel N] [--tool-rpm N] [--tool-parallel N] [--priority N] [--expires DATE]
                 [--groups G1,G2] [--leads EMAIL,...]
    teams list
    teams update NAME [the same options; 0 / none / never / '*' lift one]
    teams delete NAME [--move-keys-out]
    teams usage NAME [--since YYYY-MM-DD] [--csv] [--tools | --sessions]

A key joins a team with `keys create NAME --team TEAM` or `keys update NAME --team TEAM` (`--team none` leaves).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from typing import Any, Callable

from argoproxy.spend import dollars
from argoproxy.teamkeys.cli import (SettingsOf, _changes, _day, _day_arg, _shown, _table, limit_options, open_cli_store,
                                    run_command, session_rows,
                                    warn_no_models)
from argoproxy.teamkeys.records import (TEAM_WINDOWS, KeyRecord, TeamRecord, parse_budget, parse_budget_usd, parse_count,
                                        parse_emails, parse_expires, parse_groups, parse_models, parse_name,
                                        parse_priority, parse_tools)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{prog} teams", description="Teams of keys: limits and budgets their "
                                     "keys share, in the store the running proxy reads (no restart).")
    parser.add_argument("--keys-db", help="the store (default: KEYS_DB, else keys.db next to the config in force)")
    parser.add_argument("--config", help="config.yaml whose keys_db (or directory) names the store")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{create,list,update,delete,usage}")
    create = commands.add_parser("create", help="make a team (`keys create NAME --team TEAM` puts keys in it)")
    create.add_argument("name", help="the team's name (1-64 letters, digits, '.', '_', '@' or '-')")
    limit_options(create, lifting=False, who="its keys together")
    people_options(create)
    commands.add_parser("list", help="the teams, their limits and how many active keys each has")
    update = commands.add_parser("update", help="change a team's models or limits, keeping its keys and what they "
                                 "used (every worker within a second)")
    update.add_argument("name", help="the team's name, as `teams create` was given it")
    limit_options(update, lifting=True, who="its keys together")
    people_options(update, " (none: no one)")
    delete = commands.add_parser("delete", help="delete a team (refused while it has keys, unless --move-keys-out)")
    delete.add_argument("name", help="the team's name, as `teams create` was given it")
    delete.add_argument("--move-keys-out", action="store_true", help="its keys leave it, keeping their own limits")
    usage = commands.add_parser("usage", help="a team's requests, tokens and cost per model and day, and what is "
                                "left of its budgets")
    usage.add_argument("name", help="the team's name, as `teams create` was given it")
    usage.add_argument("--since", default="", type=_day_arg, help="first day, YYYY-MM-DD")
    usage.add_argument("--csv", action="store_true", help="CSV instead of a table")
    usage.add_argument("--tools", action="store_true", help="its keys' MCP tool calls per server, tool and day instead")
    usage.add_argument("--sessions", action="store_true", help="its requests, tokens and cost per agent session "
                       "instead (over the days since --since)")
    return parser


def people_options(command: argparse.ArgumentParser, lift: str = "") -> None:
    command.add_argument("--groups", help="the sign-in provider's groups whose members belong to the team, "
                         "comma-separated (docs/signin.md)" + lift)
    command.add_argument("--leads", help="its leads, by email, comma-separated" + lift)


def people_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The team's groups and leads the options give ("none" clears one)."""
    changes: dict[str, Any] = {}
    if args.groups is not None:
        changes["groups"] = () if args.groups.strip().lower() == "none" else parse_groups(args.groups)
    if args.leads is not None:
        changes["leads"] = () if args.leads.strip().lower() == "none" else parse_emails(args.leads)
    return changes


def main(argv: list[str], settings_of: SettingsOf, prog: str = "cot-proxy") -> int:
    """`teams ...`; `settings_of`: how the entry point reads the settings (argoproxy/cli.py, firstrun.py)."""
    args = build_parser(prog).parse_args(argv)
    store = open_cli_store(args, settings_of)
    return run_command(COMMANDS[args.command], store, args, "teams")


def create(store: Any, args: argparse.Namespace) -> int:
    if args.name.lower() == "none":  # `keys update NAME --team none` leaves a team: such a team could not be joined
        raise ValueError("the team name 'none' is reserved (`keys update NAME --team none` takes a key out of its "
                         "team): choose another name")
    team = TeamRecord(parse_name(args.name, "team"), parse_models(args.models or ""),
                      parse_count(args.rpm, "--rpm") if args.rpm else 0,
                      parse_count(args.tpm, "--tpm") if args.tpm else 0,
                      parse_budget(args.budget) if args.budget else None,
                      parse_expires(args.expires) if args.expires else 0.0, time.time(),
                      parse_count(args.max_parallel, "--max-parallel") if args.max_parallel else 0,
                      parse_priority(args.priority) if args.priority else 0,
                      parse_budget_usd(args.budget_usd) if args.budget_usd else None,
                      parse_tools(args.tools) if args.tools else (),
                      parse_count(args.tool_rpm, "--tool-rpm") if args.tool_rpm else 0,
                      parse_count(args.tool_parallel, "--tool-parallel") if args.tool_parallel else 0,
                      **people_changes(args))
    store.create_team(team)
    print(f"team {team.name!r} created; `keys create NAME --team {team.name}` or `keys update NAME --team "
          f"{team.name}` puts keys in it", file=sys.stderr)
    return 0


def list_teams(store: Any, args: argparse.Namespace) -> int:
    rows: list[tuple[str, ...]] = [("NAME", "MODELS", "RPM", "TPM", "BUDGET", "BUDGET_USD", "PARALLEL", "PRIORITY",
                                    "TOOL_RPM", "TOOL_PARALLEL", "EXPIRES", "KEYS", "STATE", "GROUPS", "LEADS")]
    now = time.time()
    members = _members(store)
    for t in store.teams():
        rows.append((t.name, ",".join(t.models) or "*", str(t.rpm or "-"), str(t.tpm or "-"), str(t.budget or "-"),
                     str(t.budget_usd or "-"), str(t.max_parallel or "-"), str(t.priority or "-"),
                     str(t.tool_rpm or "-"), str(t.tool_parallel or "-"), _day(t.expires) if t.expires else "-", str(len(members.get(t.name, []))),
                     "expired" if t.expires and t.expires <= now else "active", ",".join(t.groups) or "-",
                     ",".join(t.leads) or "-"))
    _table(rows)
    return 0


def update(store: Any, args: argparse.Namespace) -> int:
    changes = _changes(args) | people_changes(args)
    if not changes:
        raise ValueError("nothing to change: give --models, --rpm, --tpm, --budget, --budget-usd, --max-parallel, "
                         "--tool-rpm, --tool-parallel, --priority, --expires, --groups or --leads")
    team = store.update_team(args.name, changes)
    said = ", ".join(f"{name} {_shown(value)}" for name, value in changes.items())
    print(f"updated team {args.name!r}: {said}; in force on every worker within a second", file=sys.stderr)
    if "models" in changes:
        for key in _members(store).get(team.name, []):
            warn_no_models(key, team)
    return 0


def delete(store: Any, args: argparse.Namespace) -> int:
    moved = store.delete_team(args.name, args.move_keys_out)
    out = f"; its keys {', '.join(moved)} left it, keeping their own limits" if moved else ""
    print(f"deleted team {args.name!r}{out}", file=sys.stderr)
    return 0


def usage(store: Any, args: argparse.Namespace) -> int:
    """The team's rows (its windows', records.TEAM_WINDOWS + its name: every key's requests while in it) by model
    and day; on stderr, what is left of its
    budgets in their current periods."""
    team = store.team(args.name)
    if team is None:
        raise ValueError(f"no team named {args.name!r}")
    counted = team.windows
    if args.sessions:  # its rows are named for its windows: shown by the team's name
        header, *named = session_rows("team", store.session_usage(args.since), lambda name: name == counted.name)
        rows = [header, *[(team.name, *row[1:]) for row in named]]
    else:
        rows = _tool_rows(store, team.name, args.since) if args.tools else [
            ("team", "model", "day", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests"),
            *[(team.name, *map(str, row[1:6]), dollars(row[6]), str(row[7])) for row in store.usage(args.since)
              if row[0] == counted.name]]
    if args.csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
    else:
        _table([tuple(h.upper() for h in rows[0]), *rows[1:]])
    now = time.time()
    if team.budget_usd is not None:
        spent = store.spent(counted, now)
        print(f"# team {team.name!r}: ${dollars(spent)} spent of its budget of {team.budget_usd} this "
              f"{team.budget_usd.period}", file=sys.stderr)
    if team.budget is not None and hasattr(store, "used_in_period"):
        print(f"# team {team.name!r}: {store.used_in_period(counted, now)} tokens used of its budget of "
              f"{team.budget} this {team.budget.period}", file=sys.stderr)
    return 0


def _tool_rows(store: Any, team: str, since: str) -> list[tuple[str, ...]]:
    """The team's MCP tool calls (its rows: every key's calls while in it) by server, tool and day."""
    named = TEAM_WINDOWS + team
    return [("team", "server", "tool", "day", "calls", "errors", "seconds", "bytes_in", "bytes_out", "cost_usd"),
            *[(team, *map(str, row[1:6]), f"{row[6] / 1000:.3f}", str(row[7]), str(row[8]), dollars(row[9]))
              for row in store.tool_usage(since) if row[0] == named]]


def _members(store: Any) -> dict[str, list[KeyRecord]]:
    """Each team's active keys."""
    members: dict[str, list[KeyRecord]] = {}
    for key in store.records():
        if key.team and not key.revoked:
            members.setdefault(key.team, []).append(key)
    return members


COMMANDS: dict[str, Any] = {"create": create, "list": list_teams, "update": update, "delete": delete, "usage": usage}
