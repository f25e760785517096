"""What a price table must be to be read: it is data, and may come from anywhere (`prices refresh --url`, a file
the `prices` setting names), so it is checked as data before any of it is used (at load, at start-up, and by
`prices refresh` before it writes).

- Its shape: providers with an id, an API pattern and models of [id, clause, prices], as refresh.py writes them.
- Prices: numbers, finite, from 0 to 1,000,000 dollars (a negative price made a key's spend go down: never
  refused); tiers start at whole token counts; dates and times readable.
- Regular expressions (a model's `regex` clause, a provider's `api_pattern`) whose matching time cannot run away:
  Python's engine backtracks, and `^(a+)+$` took 2.56 s of a worker's CPU on a 27-character model name (x4 for each
  two characters more). Refused: a repeated group holding a repeat (`(a+)+`, `(a|b?)*`, `(.*x){4}`), a repeated
  group whose alternatives may begin alike (`(a|ab)+`: only distinct literal first characters pass), more than
  MOST_UNBOUNDED unbounded repeats in one pattern (`\\d*\\d*\\d*x` costs seconds on 256 characters), back-references,
  conditionals and verbose mode (not read here), and a pattern past PATTERN_MOST characters. What passes is matched
  in time polynomial of a low degree in the name (at most NAME_MOST = 256 characters, pricer.py).

The check reads a pattern's syntax itself (the standard library's parser is not a public API): a conservative
reading, enough for the patterns genai-prices writes (anchors, classes, `\\d{8}`, optional groups, a lookahead).
"""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Any

PATTERN_MOST = 1000  # characters of one regular expression
MOST_UNBOUNDED = 2  # unbounded repeats in one pattern (each one more multiplies the worst case by the name's length)
LONG = 16  # a repeat of more than this many counts as unbounded
PRICE_MOST = Decimal(1_000_000)  # dollars per unit (per million tokens): the `prices` setting's bound
TEXT_CLAUSES = ("equals", "starts_with", "ends_with", "contains")


class TableError(ValueError):
    """A table that breaks a rule: its message names the entry."""


def check_table(data: Any) -> None:
    """TableError naming the first entry that breaks a rule."""
    problem = table_problem(data)
    if problem:
        raise TableError(problem)


def table_problem(data: Any) -> str | None:
    providers = data.get("providers") if isinstance(data, dict) else None
    if not isinstance(providers, list):
        return "no list of `providers`"
    for i, row in enumerate(providers):
        problem = _provider_problem(i, row)
        if problem:
            return problem
    return None


def _provider_problem(i: int, row: Any) -> str | None:
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
        return f"providers[{i}]: expected an object with an `id`"
    pid = row["id"]
    problem = pattern_problem(row.get("api_pattern"))
    if problem:
        return f"provider {pid!r}: api_pattern: {problem}"
    fallback = row.get("fallback") or []
    if not isinstance(fallback, list) or not all(isinstance(f, str) for f in fallback):
        return f"provider {pid!r}: fallback: expected a list of provider ids"
    models = row.get("models")
    if not isinstance(models, list):
        return f"provider {pid!r}: models: expected a list"
    for j, model in enumerate(models):
        if not isinstance(model, list) or len(model) != 3 or not isinstance(model[0], str):
            return f"provider {pid!r}: models[{j}]: expected [id, clause, prices]"
        problem = clause_problem(model[1]) or prices_problem(model[2])
        if problem:
            return f"model {pid}/{model[0]}: {problem}"
    return None


def clause_problem(spec: Any) -> str | None:
    if not isinstance(spec, dict) or len(spec) != 1:
        return f"a clause is an object of one key, got {_shown(spec)}"
    (kind, value), = spec.items()
    if kind in ("or", "and"):
        if not isinstance(value, list) or not value:
            return f"`{kind}`: expected a list of clauses"
        return next((p for p in map(clause_problem, value) if p), None)
    if kind == "regex":
        problem = pattern_problem(value)
        return f"regex {_shown(value)}: {problem}" if problem else None
    if kind not in TEXT_CLAUSES:
        return f"unknown clause {_shown(kind)}"
    return None if isinstance(value, str) else f"`{kind}`: expected text, got {_shown(value)}"


# ---------------------------------------------------------------- prices
def prices_problem(prices: Any) -> str | None:
    if not isinstance(prices, list):
        return rates_problem(prices)
    for row in prices:
        if not isinstance(row, dict):
            return f"expected dated prices, got {_shown(row)}"
        problem = rates_problem(row.get("prices")) or _when_problem(row)
        if problem:
            return problem
    return None


def rates_problem(rates: Any) -> str | None:
    if rates is None:  # a model priced only by what no usage reports: unpriced
        return None
    if not isinstance(rates, dict):
        return f"expected rates, got {_shown(rates)}"
    for key, value in rates.items():
        if isinstance(value, dict):
            tiers = value.get("tiers")
            problem = price_problem(value.get("base")) or (None if isinstance(tiers, list) else "no list of tiers")
            for tier in tiers if isinstance(tiers, list) else ():
                problem = problem or _tier_problem(tier)
        else:
            problem = price_problem(value)
        if problem:
            return f"{key}: {problem}"
    return None


def price_problem(value: Any) -> str | None:
    """None for a price from 0 to PRICE_MOST dollars (decimal text, as refresh.py writes it, or a number)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"expected a price in dollars, got {_shown(value)}"
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return f"expected a price in dollars, got {_shown(value)}"
    if not number.is_finite() or not 0 <= number <= PRICE_MOST:
        return f"expected a price from 0 to {PRICE_MOST} dollars, got {_shown(value)}"
    return None


def _tier_problem(tier: Any) -> str | None:
    if not isinstance(tier, list) or len(tier) != 2 or isinstance(tier[0], bool) or not isinstance(tier[0], int) \
            or tier[0] < 0:
        return f"a tier is [start, price] with a whole number of tokens, got {_shown(tier)}"
    return price_problem(tier[1])


def _when_problem(row: dict[str, Any]) -> str | None:
    try:
        if "start_date" in row:
            date.fromisoformat(row["start_date"])
        for key in ("start_time", "end_time"):
            if key in row:
                time.fromisoformat(row[key])
    except (TypeError, ValueError):
        return f"unreadable start_date, start_time or end_time in {_shown(row)}"
    if ("start_time" in row) != ("end_time" in row):
        return "start_time and end_time go together"
    return None


# ---------------------------------------------------------------- regular expressions
class _Refused(Exception):
    pass


class _Item:
    """One atom with its repeat: `low` to `high` times (None: unbounded)."""
    __slots__ = ("char", "branches", "low", "high")

    def __init__(self, char: str | None, branches: list[list[_Item]] | None) -> None:
        self.char = char  # a literal character; None: a class, an escape, `.`, an anchor or a group
        self.branches = branches  # a group's alternatives
        self.low: int = 1
        self.high: int | None = 1

    @property
    def repeats(self) -> bool:
        return self.high is None or self.high > 1

    @property
    def varies(self) -> bool:
        return self.low != self.high

    @property
    def unbounded(self) -> bool:
        return self.high is None or self.high > LONG

    def items(self) -> list[_Item]:
        """This item and every item inside it."""
        return [self] + [inner for branch in self.branches or () for item in branch for inner in item.items()]


def pattern_problem(pattern: Any) -> str | None:
    """Why `pattern` may not be a price table's regular expression (see the module), or None."""
    if not isinstance(pattern, str):
        return f"expected a regular expression, got {_shown(pattern)}"
    if len(pattern) > PATTERN_MOST:
        return f"longer than {PATTERN_MOST} characters"
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        return f"not a regular expression: {exc}"
    try:
        whole = _Reader(pattern).read()
    except _Refused as exc:
        return str(exc)
    return _backtracks(whole)


def _backtracks(whole: _Item) -> str | None:
    items = whole.items()
    for item in items:
        if item.branches is None or not item.repeats:
            continue
        inner = item.items()
        if any(other.varies for other in inner[1:]):
            return "a repeated group holds a repeat (as (a+)+): its matching time can grow exponentially"
        if any(not _distinct_starts(group.branches) for group in inner if group.branches and len(group.branches) > 1):
            return "a repeated group's alternatives may begin alike (as (a|ab)+): its matching time can grow " \
                   "exponentially"
    if sum(item.unbounded for item in items) > MOST_UNBOUNDED:
        return f"more than {MOST_UNBOUNDED} unbounded repeats: its matching time grows with a high power of the " \
               "name's length"
    return None


def _distinct_starts(branches: list[list[_Item]]) -> bool:
    firsts = [branch[0].char if branch and not branch[0].varies else None for branch in branches]
    return None not in firsts and len({c.lower() for c in firsts if c is not None}) == len(firsts)


_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")
_FLAGS = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?([:)])")


class _Reader:
    """Reads Python's regular expression syntax as far as the check needs: groups, alternatives and repeats."""

    def __init__(self, pattern: str) -> None:
        self.text, self.at = pattern, 0

    def read(self) -> _Item:
        whole = _Item(None, self._alternatives())
        if self.at < len(self.text):
            raise _Refused("unbalanced parentheses")
        return whole

    def _alternatives(self) -> list[list[_Item]]:
        branches: list[list[_Item]] = [[]]
        text = self.text
        while self.at < len(text) and text[self.at] != ")":
            if text[self.at] == "|":
                branches.append([])
                self.at += 1
                continue
            item = self._atom()
            if item is not None:
                self._repeat(item)
                branches[-1].append(item)
        return branches

    def _atom(self) -> _Item | None:
        text, at = self.text, self.at
        char = text[at]
        if char == "(":
            return self._group()
        if char == "[":
            self._class()
            return _Item(None, None)
        if char == "\\":
            return self._escape()
        self.at += 1
        return _Item(None if char in ".^$" else char, None)

    def _group(self) -> _Item | None:
        text = self.text
        head = text[self.at:self.at + 4]
        flags = _FLAGS.match(text, self.at)
        if flags is not None:
            if "x" in flags[1] + (flags[2] or ""):
                raise _Refused("verbose mode (?x) is not read here")
            self.at = flags.end()
            if flags[3] == ")":
                return None  # flags for the whole pattern
        elif head.startswith(("(?P=", "(?(")):
            raise _Refused("back-references and conditionals are not allowed")
        elif head.startswith("(?#"):
            self.at = text.index(")", self.at) + 1
            return None
        elif head.startswith("(?P<"):
            self.at = text.index(">", self.at) + 1
        elif head.startswith(("(?<=", "(?<!")):
            self.at += 4
        elif head.startswith(("(?:", "(?=", "(?!", "(?>")):
            self.at += 3
        elif head.startswith("(?"):
            raise _Refused(f"unknown group {head!r}")
        else:
            self.at += 1
        branches = self._alternatives()
        if self.at >= len(text):
            raise _Refused("unbalanced parentheses")
        self.at += 1  # ")"
        return _Item(None, branches)

    def _class(self) -> None:
        text, at = self.text, self.at + 1
        if text[at:at + 1] == "^":
            at += 1
        if text[at:at + 1] == "]":
            at += 1
        while text[at] != "]":
            at += 2 if text[at] == "\\" else 1
        self.at = at + 1

    def _escape(self) -> _Item:
        text, at = self.text, self.at
        char = text[at + 1]
        if char in "123456789":
            raise _Refused("back-references are not allowed")
        self.at = at + 2
        if char == "N" and text[self.at:self.at + 1] == "{":
            self.at = text.index("}", self.at) + 1
        elif char in "xuU":
            self.at += {"x": 2, "u": 4, "U": 8}[char]
        elif char == "0":
            while self.at < at + 4 and text[self.at:self.at + 1] in tuple("01234567"):
                self.at += 1
        return _Item(None if char.isalnum() else char, None)

    def _repeat(self, item: _Item) -> None:
        text = self.text
        char = text[self.at:self.at + 1]
        repeats: dict[str, tuple[int, int | None]] = {"*": (0, None), "+": (1, None), "?": (0, 1)}
        low, high = repeats.get(char, (1, 1))
        if char in ("*", "+", "?"):
            self.at += 1
        elif char == "{":
            counts = _REPEAT.match(text, self.at)
            if counts is None or not (counts[1] or counts[3] or counts[2]):
                return  # a literal "{"
            low = int(counts[1] or 0)
            high = int(counts[3]) if counts[3] else (None if counts[2] else low)
            self.at = counts.end()
        else:
            return
        if text[self.at:self.at + 1] in ("?", "+"):  # lazy or possessive: the same repeat for this check
            self.at += 1
        item.low, item.high = low, high


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
