"""The audit log: every change made to keys and teams, through `/admin/v1/` (argoproxy/console/) or the `keys` and
`teams` commands, as one AuditEntry: who (the admin key, a person's email, or `cli:` and the OS user), what (an
action, its target and the fields it changed, shown as text: never a key), when, and from where (the client's
address and user agent). The key stores keep the entries (SQLite: the audit table; Redis: a stream), newest
first, a page at a time by an opaque cursor."""

from __future__ import annotations

import argparse
import getpass
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

PAGE = 50  # entries a page
TEXT_MAX = 200  # each text an entry keeps (a user agent, a value) is cut to this many characters


@dataclass(frozen=True)
class AuditEntry:
    at: float
    who: str
    action: str  # "keys.create", "keys.update", "keys.revoke", "teams.create", "teams.update", "teams.delete"
    target: str  # the key's or team's name
    fields: Mapping[str, str] = field(default_factory=dict)  # what changed, as text
    address: str = ""  # the client's address ("" from the command line)
    agent: str = ""  # its User-Agent, or the command run
    cursor: str = ""  # the store's id of the entry (set when read)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.cursor, "at": self.at, "who": self.who, "action": self.action, "target": self.target,
                "fields": dict(self.fields), "address": self.address, "agent": self.agent}


def entry(who: str, action: str, target: str, changes: Mapping[str, Any], address: str = "",
          agent: str = "") -> AuditEntry:
    """An entry for a change now, its values shown as text and every text bounded."""
    return AuditEntry(time.time(), cut(who), action, cut(target), {cut(k): cut(shown(v)) for k, v in changes.items()},
                      cut(address), cut(agent))


def cut(text: str) -> str:
    return text if len(text) <= TEXT_MAX else text[:TEXT_MAX] + "…"


def shown(value: Any) -> str:
    """A changed field's value as `keys list` would say it: globs joined ('*': every one), an expiry as a UTC
    time ('never'), a lifted limit as 'none'."""
    if isinstance(value, tuple):
        return ",".join(value) or "*"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else "never"
    return str(value) if value not in (None, "", 0) else "none"


CLI_CHANGES = {("keys", "create"), ("keys", "update"), ("keys", "revoke"), ("teams", "create"), ("teams", "update"),
               ("teams", "delete")}


def cli_entry(name: str, args: argparse.Namespace,
              changes: Callable[[argparse.Namespace], dict[str, Any]]) -> AuditEntry | None:
    """The entry for a `keys` or `teams` command that changed the store (None: it changed nothing);
    `changes`: the command line's reading of its options (teamkeys/cli.py's)."""
    if (name, args.command) not in CLI_CHANGES:
        return None
    fields: dict[str, Any] = {}
    if args.command in ("create", "update"):  # create's options default to "": the same as not given
        fields = changes(argparse.Namespace(**{k: v if v != "" else None for k, v in vars(args).items()}))
    if args.command == "delete":
        fields = {"move_keys_out": bool(args.move_keys_out)}
    return entry(f"cli:{os_user()}", f"{name}.{args.command}", args.name, fields, agent=f"cot-proxy {name}")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        import os
        return str(os.getuid())
