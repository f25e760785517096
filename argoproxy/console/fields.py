"""A change's JSON body read into the `keys` and `teams` commands' own options, so the API and the command line
parse every value with the same code (teamkeys/cli.py's `_changes`, records.py's parsers): a field is the option's
name (`budget_usd` for `--budget-usd`), its value a string as the option takes it, a whole number for a count,
a list of globs for `models` and `tools`, and `null` to lift a limit (as 0, none, never or '*' do). An unknown
field, a value of another type or one the parser refuses is a 400 naming the field."""

from __future__ import annotations

import argparse
import re
from typing import Any, Mapping

from argoproxy.errors import ProxyError
from argoproxy.people.argo_user import parse_argo_user
from argoproxy.teamkeys.cli import _changes

LIMITS = ("models", "tools", "rpm", "tpm", "budget", "budget_usd", "max_parallel", "tool_rpm", "tool_parallel",
          "priority", "expires")
KEY_FIELDS = frozenset(LIMITS + ("team",))
TEAM_FIELDS = frozenset(LIMITS)
GLOBS = frozenset({"models", "tools"})
COUNTS = frozenset({"rpm", "tpm", "max_parallel", "tool_rpm", "tool_parallel", "priority"})
LIFTED = {"models": "*", "tools": "*", "budget": "none", "budget_usd": "none", "expires": "never", "team": "none"}
TEXT_MAX = 4096  # characters of one field's value


def changes(body: Mapping[str, Any], allowed: frozenset[str], ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The record fields (KeyRecord's or TeamRecord's names) the body changes, parsed as the command line does."""
    unknown = sorted(set(body) - allowed - ignore)
    if unknown:
        raise invalid(f"Unknown field `{unknown[0][:100]}`; this takes {', '.join(sorted(allowed | ignore))}.",
                      unknown[0], "unknown_field")
    options = argparse.Namespace(**dict.fromkeys(KEY_FIELDS))
    for name in sorted(set(body) & allowed):
        setattr(options, name, option_text(name, body[name]))
    try:
        return _changes(options)
    except ValueError as exc:
        raise invalid(re.sub(r"--([a-z-]+)", lambda m: m.group(1).replace("-", "_"), str(exc)), None,
                      "invalid_value") from None


def option_text(name: str, value: Any) -> str:
    """A field's value as its command-line option would be written."""
    if value is None:
        return LIFTED.get(name, "0")
    if name in GLOBS and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value) or "*"
    elif name in COUNTS and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        kind = "a list of globs" if name in GLOBS else "a whole number" if name in COUNTS else "a string"
        raise invalid(f"`{name}` must be {kind} (or null to lift it).", name, "invalid_value")
    if len(value) > TEXT_MAX:
        raise invalid(f"`{name}` is longer than {TEXT_MAX} characters.", name, "invalid_value")
    return value


def name_of(body: Mapping[str, Any], what: str) -> str:
    from argoproxy.teamkeys.records import parse_name
    name = body.get("name")
    if not isinstance(name, str):
        raise invalid(f"`name` (the {what}'s name) is required, a string.", "name", "invalid_value")
    try:
        return parse_name(name, what)
    except ValueError as exc:
        raise invalid(str(exc), "name", "invalid_value") from None


def invalid(message: str, param: str | None, code: str) -> ProxyError:
    return ProxyError(400, message, param=param, code=code)


def argo_user_field(value: Any) -> str:
    """`argo_user` as an admin gives it (people_api.py, keys_api.py), read as `--argo-user` is (parse_argo_user):
    an ARGO username; "" or "none" for none. Anything else is refused as the command line refuses it."""
    if not isinstance(value, str) or len(value) > TEXT_MAX:
        raise invalid("`argo_user` is an ARGO username, or \"\" for none.", "argo_user", "invalid_value")
    try:
        return parse_argo_user(value, "argo_user")
    except ValueError as exc:
        raise invalid(str(exc), "argo_user", "invalid_value") from None
