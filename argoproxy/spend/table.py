"""The price table (refresh.py writes it), read once per process the first time a request is priced.

A provider is found by the URL of its API (its `api_pattern`, matched at the URL's start) or by its id; a model
of a provider by its name, lower-cased, against each model's clauses in the table's order, then in the
providers it falls back to (a cloud that resells another's models), then once more with a compact date suffix
written with dashes (gpt-5.2-20251211 as gpt-5.2-2025-12-11), as genai-prices finds them. A model's rates on a
day: the last of its dated or hourly prices in force then (historic prices start on a UTC day; off-peak hours
are UTC times), else its first.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from argoproxy.config.price_settings import refreshed_table
from argoproxy.spend.table_rules import TableError, check_table
from argoproxy.spend.units import Price, Rates, Tiered

Match = Callable[[str], bool]


@dataclass(frozen=True)
class When:
    """When a model's price is in force: from a UTC day, or between two UTC times of day (seconds into the
    day); neither: always. Read against epoch seconds."""
    starts: float | None = None  # the UTC day's first second
    start_time: float | None = None
    end_time: float | None = None

    def holds(self, moment: float) -> bool:
        if self.starts is not None:
            return moment >= self.starts
        if self.start_time is None or self.end_time is None:
            return True
        now = moment % 86400
        if self.end_time < self.start_time:  # across midnight
            return now >= self.start_time or now < self.end_time
        return self.start_time <= now < self.end_time


class Model:
    __slots__ = ("id", "matches", "raw", "_prices")

    def __init__(self, id: str, matches: Match, raw: Any) -> None:
        self.id, self.matches, self.raw = id, matches, raw
        self._prices: list[tuple[When, Rates | None]] | None = None  # read from `raw` when first priced

    @property
    def prices(self) -> list[tuple[When, Rates | None]]:
        if self._prices is None:
            self._prices = _prices(self.raw)
        return self._prices

    def rates(self, moment: float | datetime) -> Rates | None:
        """Its rates at `moment` (epoch seconds, or a datetime); None: the table has none this proxy can charge (a
        model priced only by what no usage reports, such as audio hours). Empty rates: the model is free."""
        prices = self.prices
        if not prices:
            return None
        if isinstance(moment, datetime):
            moment = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
        return next((rates for when, rates in reversed(prices) if when.holds(moment)), prices[0][1])


class PricedProvider:
    __slots__ = ("id", "pattern", "fallback", "models")

    def __init__(self, id: str, pattern: str, fallback: tuple[str, ...], models: list[Model]) -> None:
        self.id, self.pattern, self.fallback, self.models = id, re.compile(pattern), fallback, models

    def own(self, name: str) -> Model | None:
        return next((m for m in self.models if m.matches(name)), None)


class PriceTable:
    """Each provider is made from its rows when first asked for (a worker prices a few providers' models), each
    model's rates when first charged."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.about: dict[str, Any] = data.get("about") or {}
        self._rows = {row["id"]: row for row in data["providers"]}
        self._patterns = [(re.compile(row["api_pattern"]), row["id"]) for row in data["providers"]]
        self._by_id: dict[str, PricedProvider] = {}
        self._lock = threading.Lock()

    @property
    def providers(self) -> list[PricedProvider]:
        return [self.provider(pid) for _, pid in self._patterns]  # type: ignore[misc]

    def provider_for_url(self, url: str) -> PricedProvider | None:
        url = _matched_form(url)
        return next((self.provider(pid) for pattern, pid in self._patterns if pattern.match(url)), None)

    def provider(self, provider_id: str) -> PricedProvider | None:
        provider_id = provider_id.lower()
        found = self._by_id.get(provider_id)
        if found is None and provider_id in self._rows:
            with self._lock:
                found = self._by_id.get(provider_id) or _provider(self._rows[provider_id])
                self._by_id[provider_id] = found
        return found

    def model(self, provider: PricedProvider, name: str) -> Model | None:
        name = name.lower()
        found = self._model(provider, name)
        if found is None:
            dashed = COMPACT_DATE.sub(_dashed, name)
            if dashed != name:
                found = self._model(provider, dashed)
        return found

    def by_name(self, name: str, moment: float) -> tuple[PricedProvider, Model] | None:
        """A model found by its name alone, wherever it is served: at its maker's (the first of MAKERS listing it),
        else at the dearest provider listing it (by its rates at `moment` for a million tokens in and out)."""
        for maker in MAKERS:
            provider = self.provider(maker)
            model = self.model(provider, name) if provider is not None else None
            if model is not None:
                return provider, model  # type: ignore[return-value]
        listed = [(provider, model) for provider in self.providers
                  if (model := self.model(provider, name)) is not None]
        return max(listed, key=lambda found: _dearness(found[1], moment), default=None)

    def _model(self, provider: PricedProvider, name: str) -> Model | None:
        found = provider.own(name)
        for other in provider.fallback:
            if found is not None:
                break
            fallback = self.provider(other)
            found = fallback.own(name) if fallback is not None else None
        return found


# The table's providers that sell the models they make, in the order a name several of them list is taken
# (genai-prices does not say who made a model): what a relay of such a model is most likely paying.
MAKERS = ("openai", "anthropic", "google", "mistral", "deepseek", "x-ai", "cohere", "meta", "moonshotai", "zai",
          "zhipuai", "minimax", "perplexity", "arcee", "voyageai", "elevenlabs", "cursor")


def _dearness(model: Model, moment: float) -> int:
    rates = model.rates(moment)
    return rates.most_nanos(1_000_000, 1_000_000) if rates is not None else -1


COMPACT_DATE = re.compile(r"-(20\d\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


def _dashed(m: re.Match[str]) -> str:
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return m[0]
    return f"-{m[1]}-{m[2]}-{m[3]}"


# ---------------------------------------------------------------- reading the file
def _provider(row: dict[str, Any]) -> PricedProvider:
    models = [Model(mid, clause(match), prices) for mid, match, prices in row["models"]]
    return PricedProvider(row["id"], row["api_pattern"], tuple(row.get("fallback") or ()), models)


def clause(spec: dict[str, Any]) -> Match:
    """A model's name clause as a test of a lower-cased name (genai-prices' clauses: equals, starts_with,
    ends_with and contains compare lower-cased; regex is searched as written)."""
    (kind, value), = spec.items()
    if kind == "or":
        parts = [clause(c) for c in value]
        return lambda name: any(part(name) for part in parts)
    if kind == "and":
        parts = [clause(c) for c in value]
        return lambda name: all(part(name) for part in parts)
    if kind == "regex":
        pattern: re.Pattern[str] = re.compile(value)
        return lambda name: pattern.search(name) is not None
    text: str = value.lower()
    if kind == "equals":
        return text.__eq__
    if kind == "starts_with":
        return lambda name: name.startswith(text)
    if kind == "ends_with":
        return lambda name: name.endswith(text)
    if kind == "contains":
        return lambda name: text in name
    raise ValueError(f"unknown clause {kind!r}")


def _prices(prices: Any) -> list[tuple[When, Rates | None]]:
    if not isinstance(prices, list):
        return [(When(), _rates(prices))]
    found = []
    for row in prices:
        when = When(_day_starts(row["start_date"]) if "start_date" in row else None,
                    _seconds(row["start_time"]) if "start_time" in row else None,
                    _seconds(row["end_time"]) if "end_time" in row else None)
        found.append((when, _rates(row["prices"])))
    return found


def _day_starts(day: str) -> float:
    start = date.fromisoformat(day)
    return datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp()


def _seconds(moment: str) -> float:
    t = time.fromisoformat(moment)
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def _rates(prices: dict[str, Any] | None) -> Rates | None:
    return Rates({key: _price(value) for key, value in prices.items()}) if prices is not None else None


def _price(value: Any) -> Price:
    if isinstance(value, dict):
        return Tiered(Decimal(value["base"]), tuple((int(start), Decimal(p)) for start, p in value["tiers"]))
    return Decimal(value)


# ---------------------------------------------------------------- one copy per process
SHIPPED = Path(__file__).with_name("table.json")
_tables: dict[str, PriceTable] = {}
_lock = threading.Lock()


def default_table() -> Path:
    """The table read when the `prices` setting names none: the user's refreshed one when there is one, else the
    package's own."""
    return refreshed_table() or SHIPPED


def load_table(path: str | Path | None = None) -> PriceTable:
    """The table at `path` (default: default_table()), read once per process. A table another file holds is
    checked whole first; the package's own is as trusted as the code beside it (tests/unit/test_prices.py checks
    it), so a start does not check it again: that was 40 ms of CPU in every start of the proxy and of each
    command that prices."""
    where = str(path or default_table())
    table = _tables.get(where)
    if table is None:
        with _lock:
            table = _tables.get(where)
            if table is None:
                with open(where, encoding="utf-8") as f:
                    data = json.load(f)
                if where != str(SHIPPED):
                    check_table(data)  # refused whole, naming the entry: nothing of a hostile table is used
                table = _tables[where] = PriceTable(data)
    return table


def table_problem(path: str) -> str | None:
    """Why the table at `path` cannot be read (for the start-up check), or None."""
    where = Path(path).expanduser()
    if where.exists() and not where.is_file():  # a FIFO's open waits for a writer: start-up hung there
        return f"cannot read the price table {path}: not a file"
    try:
        load_table(where)
    except OSError as exc:
        return f"cannot read the price table {path}: {exc.strerror or exc}"
    except TableError as exc:
        return f"the price table {path} is refused: {exc}"
    except Exception as exc:  # noqa: BLE001 - whatever reading a file that is no table raises (a bad api_pattern's
        # re.error, a JSON nesting's RecursionError...): one line, not a traceback
        return f"{path} is not a price table (`cot-proxy prices refresh --output` writes one): {type(exc).__name__}: {exc}"
    return None


def _matched_form(url: str) -> str:
    """A URL as the table's patterns read it: without a user or password before its host (which matched
    https://api.openai.com@elsewhere as OpenAI's, and missed https://user:pw@api.openai.com), its host in
    lower case."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url
    if not parts.netloc:
        return url
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme.lower(), netloc + (f":{port}" if port else ""), parts.path, parts.query, ""))
