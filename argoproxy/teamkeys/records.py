"""A team key's record and the text forms of its limits, as `cot-proxy keys create` takes them."""

from __future__ import annotations

import hashlib
import re
from fnmatch import fnmatchcase
from dataclasses import dataclass
from functools import cached_property
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

from argoproxy.spend import NANO, dollars

PERIODS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def digest(key: str) -> str:
    """How a key is stored and looked up: its SHA-256, never the key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Budget:
    tokens: int
    period: str  # hour, day, week, month (calendar periods in UTC; month: the calendar month)

    def __str__(self) -> str:
        return f"{self.tokens}/{self.period}"


@dataclass(frozen=True)
class MoneyBudget:
    nanos: int  # US dollars in nano-dollars (10^-9), so that spend adds up exactly
    period: str  # as Budget's

    def __str__(self) -> str:
        return f"${dollars(self.nanos)}/{self.period}"


@dataclass(frozen=True)
class KeyRecord:
    name: str
    digest: str
    prefix: str  # the key's first characters, to tell keys apart in listings
    models: tuple[str, ...] = ()  # globs; empty: whatever ALLOWED_MODELS allows
    rpm: int = 0
    tpm: int = 0
    budget: Budget | None = None
    expires: float = 0.0  # epoch seconds; 0: never
    created: float = 0.0
    revoked: float = 0.0  # epoch seconds; 0: active
    max_parallel: int = 0  # requests in flight at once; 0: no cap
    priority: int = 0  # its weight in admission's fair queue (routing/seating.py); 0: ADMISSION_WEIGHTS', else 1
    budget_usd: MoneyBudget | None = None  # dollars per period, at the prices of argoproxy/spend/
    team: str = ""  # the team whose limits it shares (`keys create --team`); "": none
    team_record: TeamRecord | None = None  # that team's record, read with the key's (None: no team, or none found)
    tools: tuple[str, ...] = ()  # MCP tool globs on prefixed names (`git__*`, docs/mcp.md); empty: every tool
    tool_rpm: int = 0  # MCP tool calls per minute; 0: no limit (counted apart from its model requests)
    tool_parallel: int = 0  # MCP tool calls at once; 0: no cap
    owner: str = ""  # the id of the person it belongs to (argoproxy/people/); "": a service key with no owner
    owner_disabled: float = 0.0  # read with the key: when its owner was disabled (0: not, or no owner)
    owner_seen: float = 0.0  # read with the key: its owner's last sign-in (OIDC_INACTIVE_DAYS)
    argo_user: str = ""  # the key's own ARGO username (`keys create --argo-user`); "": its owner's, if any
    owner_argo_user: str = ""  # read with the key: its owner's ARGO username ("": none, or no owner)

    @property
    def argo_name(self) -> str:
        """The ARGO username its requests carry: its own, else its owner's ("": neither; the backend then goes on
        to USERNAME_PASSTHROUGH and the configured user: providers/argo/backend.py)."""
        return self.argo_user or self.owner_argo_user

    def is_key(self, key: str) -> bool:
        """Is `key` this record's key (compared by digest: the record never holds the key)?"""
        return digest(key) == self.digest

    def refusal(self, now: float) -> str | None:
        """Why this key is not accepted now, or None."""
        if self.revoked:
            return "This API key was revoked."
        if self.expires and now >= self.expires:
            return "This API key has expired."
        if self.owner_disabled:
            return "This API key's owner is disabled."
        team = self.team_record
        if team is not None and team.expires and now >= team.expires:
            return f"This API key's team {team.name!r} has expired."
        return None

    @property
    def allowed_models(self) -> tuple[str, ...]:
        """The globs a request's model must match: the key's, within its team's (one of each; empty: any)."""
        team = self.team_record.models if self.team_record is not None else ()
        if not team:
            return self.models
        if not self.models:
            return team
        return WithinTeam(self.models, team)

    @property
    def allowed_tools(self) -> tuple[tuple[str, ...], ...]:
        """The MCP tool globs a tool's prefixed name must match: one of each group given (the key's, its team's)."""
        team = self.team_record.tools if self.team_record is not None else ()
        return tuple(globs for globs in (self.tools, team) if globs)

    @property
    def windows(self) -> KeyRecord | None:
        """Its team's windows, counted as a key's are (None: no team, or a team without limits)."""
        team = self.team_record
        return team.windows if team is not None and team.limited else None

    @property
    def dollar_budgets(self) -> tuple[KeyRecord, ...]:
        """The windows whose dollar budgets its calls spend: its own and its team's, those that have one."""
        return tuple(owner for owner in (self, self.windows) if owner is not None and owner.budget_usd is not None)

    @cached_property
    def tool_windows(self) -> KeyRecord | None:
        """Its MCP tool calls' windows, counted as a key's requests are but apart from them: a record named
        TOOL_WINDOWS + its name with rpm and max_parallel its tool_rpm and tool_parallel, its team's likewise as its
        `windows` (None: neither the key nor its team limits tool calls)."""
        team = self.team_record
        team_tools = team.tool_team if team is not None and (team.tool_rpm or team.tool_parallel) else None
        if not (self.tool_rpm or self.tool_parallel) and team_tools is None:
            return None
        name = TOOL_WINDOWS + self.name
        return KeyRecord(name, digest(name), "", rpm=self.tool_rpm, max_parallel=self.tool_parallel,
                         team_record=team_tools)


def money_refusal(record: KeyRecord, owner: KeyRecord) -> str:
    """How the stores name a refusal by one of `record.dollar_budgets`: the key's "budget_usd", its team's
    "team_budget_usd"."""
    return ("" if owner is record else "team_") + "budget_usd"


class WithinTeam(tuple[str, ...]):
    """A key's globs within its team's: a model matches when it matches one of the key's (the tuple) and one of
    the team's (`within`, read by edge/validation.py's model_allowed)."""
    within: tuple[str, ...]

    def __new__(cls, models: tuple[str, ...], within: tuple[str, ...]) -> WithinTeam:
        globs = super().__new__(cls, models)
        globs.within = within
        return globs


TEAM_WINDOWS = "team/"  # a team's windows are named so in the stores: no key's name holds a '/'
TOOL_WINDOWS = "tools/"  # a key's MCP tool calls' windows (a team's: TEAM_WINDOWS + TOOL_WINDOWS + its name)


@dataclass(frozen=True)
class TeamRecord:
    """A team of keys: limits its keys share, as a key's are written (`cot-proxy teams create`)."""
    name: str
    models: tuple[str, ...] = ()  # globs its keys' models must match too; empty: any
    rpm: int = 0
    tpm: int = 0
    budget: Budget | None = None
    expires: float = 0.0
    created: float = 0.0
    max_parallel: int = 0
    priority: int = 0  # the weight of its keys in admission's fair queue; 0: each key's own
    budget_usd: MoneyBudget | None = None
    tools: tuple[str, ...] = ()  # MCP tool globs its keys' tools must match too; empty: any
    tool_rpm: int = 0  # MCP tool calls per minute of its keys together; 0: no limit
    tool_parallel: int = 0  # and at once; 0: no cap
    groups: tuple[str, ...] = ()  # the sign-in provider's groups whose members belong to it (argoproxy/people/)
    leads: tuple[str, ...] = ()  # its leads, by email

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm or self.budget or self.max_parallel or self.budget_usd)

    @cached_property
    def windows(self) -> KeyRecord:
        """The team's windows as the stores count a key's: a record named TEAM_WINDOWS + name (made once per record
        read: its digest names its slot in the shared cells)."""
        name = TEAM_WINDOWS + self.name
        return KeyRecord(name, digest(name), "", (), self.rpm, self.tpm, self.budget, self.expires, self.created, 0.0,
                         self.max_parallel, self.priority, self.budget_usd)

    @cached_property
    def tool_team(self) -> TeamRecord:
        """Its tool calls' limits as a team of their own, whose `windows` are named TEAM_WINDOWS + TOOL_WINDOWS + its
        name (no team's name holds a '/')."""
        return TeamRecord(TOOL_WINDOWS + self.name, rpm=self.tool_rpm, max_parallel=self.tool_parallel)


def globs_meet(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Whether some model name matches a glob of each (an empty tuple: any name)."""
    return not first or not second or any(_meet(a, b) for a in first for b in second)


def _meet(a: str, b: str) -> bool:
    """Whether fnmatch's globs `a` and `b` match a common name: a walk over both, '*' taking nothing or one more
    character of the other's (each '[...]' compared on the characters either names, and printable ASCII)."""
    x, y = _tokens(a), _tokens(b)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(x) and j == len(y):
            return True
        if i < len(x) and x[i] == "*":
            todo += [(i + 1, j)] + ([(i, j + 1)] if j < len(y) else [])
        elif j < len(y) and y[j] == "*":
            todo += [(i, j + 1)] + ([(i + 1, j)] if i < len(x) else [])
        elif i < len(x) and j < len(y) and _chars_meet(x[i], y[j]):
            todo.append((i + 1, j + 1))
    return False


def _tokens(glob: str) -> list[str]:
    """A glob's parts: '*', '?', a '[...]' set, or one character."""
    parts, i = [], 0
    while i < len(glob):
        end = glob.find("]", i + 2) if glob[i] == "[" else -1
        parts.append(glob[i:end + 1] if end > 0 else glob[i])
        i = end + 1 if end > 0 else i + 1
    return parts


def _chars_meet(a: str, b: str) -> bool:
    if a == "?" or b == "?":
        return True
    candidates = set(a + b) | {chr(c) for c in range(32, 127)}
    return any(fnmatchcase(c, a) and fnmatchcase(c, b) for c in candidates)


def parse_name(text: str, what: str = "key") -> str:
    if not NAME.fullmatch(text or ""):
        raise ValueError(f"a {what} name is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or "
                         f"digit, got {text!r}")
    return text


MAX_COUNT = 2**62  # counts are kept in 64-bit integers (SQLite, the workers' shared cells)


def whole_number(text: str) -> int | None:
    """ASCII digits as a number, else None: str.isdigit also takes "²" (which int() refuses) and other scripts'
    digits, and int() refuses more than 4,300 digits with a message naming no flag."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 30 else None


def parse_count(text: str, what: str) -> int:
    count = whole_number(text)
    if count is None or not 1 <= count <= MAX_COUNT:
        raise ValueError(f"{what} must be a whole number from 1 to {MAX_COUNT}, got {text!r}")
    return count


MAX_PRIORITY = 1000


def parse_priority(text: str, what: str = "--priority") -> int:
    """A key's weight in admission's queue: a whole number from 1 to MAX_PRIORITY."""
    priority = whole_number(text)
    if priority is None or not 1 <= priority <= MAX_PRIORITY:
        raise ValueError(f"{what} must be a whole number from 1 to {MAX_PRIORITY} (a key of priority 4 gets four "
                         f"times the share of the servers' slots of a key of priority 1 while both wait), got "
                         f"{text!r}")
    return priority


def parse_budget(text: str) -> Budget:
    """TOKENS/PERIOD: 1000000/day, 50000/hour, 2000000/month, 1e6/week."""
    tokens, _, period = text.partition("/")
    try:  # ASCII only: float() also reads other scripts' digits ("１０"); a fraction of a token is no count
        number = float(tokens.replace("_", "")) if tokens.isascii() else 0.0
        count = int(number) if number.is_integer() else 0
    except (ValueError, OverflowError):  # not a number; inf
        count = 0
    if not 1 <= count <= MAX_COUNT or period.lower() not in PERIODS:
        raise ValueError(f"--budget is TOKENS/PERIOD with PERIOD one of {', '.join(PERIODS)} "
                         f"(e.g. 1000000/day), got {text!r}")
    return Budget(count, period.lower())


MAX_NANOS = MAX_COUNT // 1024  # the most --budget-usd counts, in nano-dollars


def parse_budget_usd(text: str) -> MoneyBudget:
    """DOLLARS/PERIOD: 50/month, 2.5/day, $100/week (US dollars; at most a cent's fraction to the nano-dollar)."""
    amount, _, period = text.partition("/")
    amount = amount.strip().removeprefix("$").replace("_", "")
    try:  # ASCII only: Decimal also reads other scripts' digits ("１０")
        value = Decimal(amount) if amount.isascii() else Decimal(0)
    except InvalidOperation:
        value = Decimal(0)
    if not (value.is_finite() and value > 0) or period.lower() not in PERIODS:
        raise ValueError(f"--budget-usd is DOLLARS/PERIOD with PERIOD one of {', '.join(PERIODS)} (e.g. 50/month), "
                         f"got {text!r}")
    # compared before it is multiplied: 1e999999 overflows Decimal's context, and 1e99999 makes an int of as
    # many digits (minutes of work)
    if value > Decimal(MAX_NANOS) / NANO:  # counted in nano-dollars in 64-bit cells (SQLite, Redis)
        raise ValueError(f"--budget-usd is at most {MAX_NANOS // NANO:,} dollars a period, got {text!r}")
    nanos = int(value * NANO)
    if nanos < 1:
        raise ValueError(f"--budget-usd is at least a nano-dollar (0.000000001) a period, got {text!r}")
    return MoneyBudget(nanos, period.lower())


def parse_expires(text: str, now: datetime | None = None) -> float:
    """YYYY-MM-DD (the end of that day, UTC) or an ISO date-time; it must lie in the future."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=timezone.utc)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"--expires is a date (YYYY-MM-DD) or an ISO date-time, got {text!r}") from None
    if moment <= (now or datetime.now(timezone.utc)):
        raise ValueError(f"--expires must be in the future, got {text!r}")
    return moment.timestamp()


def parse_models(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


TOOL_GLOB = re.compile(r"[A-Za-z0-9_.*?\[\]!-]{1,200}")


def parse_tools(text: str) -> tuple[str, ...]:
    """MCP tool globs on the names `/mcp` lists (`git__*,docs__read_*`): what a tool name holds, and * ? [ ]."""
    globs = parse_models(text)
    for glob in globs:
        if not TOOL_GLOB.fullmatch(glob):
            raise ValueError(f"--tools takes globs of tool names such as git__*, got {glob[:60]!r}")
    return globs


MOST_GROUPS = 100


def parse_groups(text: str) -> tuple[str, ...]:
    """A team's provider groups: comma-separated names, as the provider's groups claim spells them."""
    groups = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not groups or len(groups) > MOST_GROUPS or any(len(g) > 256 or not g.isprintable() for g in groups):
        raise ValueError(f"--groups takes 1-{MOST_GROUPS} comma-separated group names of printable characters, "
                         f"got {text[:80]!r}")
    return groups


EMAIL = re.compile(r"[^@\s,]{1,64}@[^@\s,]{1,255}")


def parse_emails(text: str, what: str = "--leads") -> tuple[str, ...]:
    """Emails, comma-separated (kept in lower case: providers differ in the case they send)."""
    emails = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    bad = [e for e in emails if not EMAIL.fullmatch(e) or not e.isprintable()]
    if not emails or bad or len(emails) > MOST_GROUPS:
        raise ValueError(f"{what} takes comma-separated emails, got {(bad or [text])[0][:80]!r}")
    return emails


def parse_owner(text: str) -> str:
    """`keys create|update --owner EMAIL`: an email, as parse_emails reads one."""
    emails = parse_emails(text, "--owner")
    if len(emails) != 1:
        raise ValueError(f"--owner takes one email, got {text[:80]!r}")
    return emails[0]
