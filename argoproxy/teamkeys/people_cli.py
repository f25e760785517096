"""`cot-proxy people ...`: the people who signed in (argoproxy/people/), in the store the running proxy reads.

    people list
    people disable EMAIL|ID    every key they own and every console session of theirs stops within a second
    people enable EMAIL|ID
    people update EMAIL|ID --argo-user NAME|none
                               the ARGO username their requests carry (docs/backends/argo-per-person.md)
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from argoproxy.people import Person
from argoproxy.people.argo_user import parse_argo_user
from argoproxy.people.membership import inactive
from argoproxy.teamkeys.cli import SettingsOf, _day, _table, open_cli_store, run_command


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{prog} people", description="People who signed in with the "
                                     "organization's OpenID provider (docs/signin.md).")
    parser.add_argument("--keys-db", help="the store (default: KEYS_DB, else keys.db next to the config in force)")
    parser.add_argument("--config", help="config.yaml whose keys_db (or directory) names the store")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,disable,enable,update}")
    commands.add_parser("list", help="each person: email, name, admin, groups, state, last sign-in, keys owned, "
                        "ARGO username")
    for name, what in (("disable", "stop every key they own and every console session of theirs (within a "
                                   "second)"), ("enable", "let them sign in and their keys work again")):
        command = commands.add_parser(name, help=what)
        command.add_argument("person", help="their email, or their id as `people list` shows it")
    update = commands.add_parser("update", help="set what an admin sets of a person")
    update.add_argument("person", help="their email, or their id as `people list` shows it")
    update.add_argument("--argo-user", required=True, help="the ARGO username their requests and their keys' carry "
                        "(a key's own --argo-user comes first; none: theirs cleared)")
    return parser


def main(argv: list[str], settings_of: SettingsOf, prog: str = "cot-proxy") -> int:
    args = build_parser(prog).parse_args(argv)
    store = open_cli_store(args, settings_of)
    args.inactive_days = getattr(settings_of({"config_path": args.config} if args.config else {}),
                                 "oidc_inactive_days", 0.0) if not args.keys_db else 0.0
    return run_command(COMMANDS[args.command], store, args, "people")


def list_people(store: Any, args: argparse.Namespace) -> int:
    rows: list[tuple[str, ...]] = [("EMAIL", "NAME", "ID", "ADMIN", "GROUPS", "STATE", "LAST_SIGN_IN", "KEYS",
                                    "ARGO_USER")]
    owned: dict[str, int] = {}
    for key in store.records():
        if key.owner and not key.revoked:
            owned[key.owner] = owned.get(key.owner, 0) + 1
    now = time.time()
    for p in store.people():
        state = "disabled" if p.disabled else "inactive" if inactive(p, now, args.inactive_days) else "active"
        rows.append((p.email or "-", p.name or "-", p.id, "yes" if p.admin else "-", ",".join(p.groups) or "-", state,
                     _day(p.last_seen) if p.last_seen else "-", str(owned.get(p.id, 0)), p.argo_user or "-"))
    _table(rows)
    return 0


def found(store: Any, named: str) -> Person:
    person = store.person(named.strip()) or (store.person_by_email(named) if "@" in named else None)
    if person is None:
        raise ValueError(f"no person {named.strip()[:80]!r} (`people list` lists them)")
    return person  # type: ignore[no-any-return]


def disable(store: Any, args: argparse.Namespace) -> int:
    person = found(store, args.person)
    store.set_person_disabled(person.id, True, time.time())
    print(f"disabled {person.email or person.id}: their keys and console sessions are refused by every worker within "
          "a second", file=sys.stderr)
    return 0


def enable(store: Any, args: argparse.Namespace) -> int:
    person = found(store, args.person)
    store.set_person_disabled(person.id, False, time.time())
    print(f"enabled {person.email or person.id}", file=sys.stderr)
    return 0


def update(store: Any, args: argparse.Namespace) -> int:
    argo_user = parse_argo_user(args.argo_user)
    person = found(store, args.person)
    store.set_person_argo_user(person.id, argo_user)
    print(f"updated {person.email or person.id}: ARGO username {argo_user or 'none'}; in force on every worker within "
          "a second", file=sys.stderr)
    return 0


COMMANDS: dict[str, Any] = {"list": list_people, "disable": disable, "enable": enable, "update": update}
