"""The `prices` setting (PRICES: the same as JSON): which price table the proxy reads and the prices given per
model over it (docs/spend.md).

    prices:
      table: /srv/prices.json       # a table `cot-proxy prices refresh --output` wrote; "none": only `models`
      models:                       # model name or glob -> USD per million tokens (requests_kcount: per 1,000)
        "llama-*": {input_mtok: 0.1, output_mtok: 0.2}
        "gpt-4o": {input_mtok: 2.5, output_mtok: 10, cache_read_mtok: 1.25}

A model given here is priced at these rates wherever it is served (the table is not asked); a rate it leaves out
is 0. Checked at start-up: a bad value stops it with one line naming PRICES.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from argoproxy.config.json_setting import json_setting

# The rates the proxy can charge from an answer's usage (argoproxy/spend/units.py says what each one counts).
PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_5m_mtok",
              "cache_write_1h_mtok", "output_reasoning_mtok", "input_audio_mtok", "output_audio_mtok",
              "cache_audio_read_mtok", "requests_kcount")
SHIPPED = ""  # `table` unset: the user's refreshed table when there is one, else the package's own
NO_TABLE = "none"


def refreshed_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Where `prices refresh` writes by default: the user's data directory ($XDG_DATA_HOME/argoproxy/prices.json,
    else ~/.local/share/...), not the package's table.json (a file of the checkout, which git tracks)."""
    base = environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "argoproxy" / "prices.json"


def refreshed_table() -> Path | None:
    """The user's refreshed table, read instead of the package's own while the `prices` setting names none."""
    path = refreshed_path()
    return path if path.is_file() else None


@dataclass(frozen=True)
class PriceSettings:
    table: str = SHIPPED  # a path, SHIPPED or NO_TABLE
    models: tuple[tuple[str, tuple[tuple[str, Decimal], ...]], ...] = ()  # (glob, ((price key, rate), ...))

    def __bool__(self) -> bool:
        return self.table != SHIPPED or bool(self.models)

    def as_written(self) -> dict[str, Any]:
        """As config.yaml writes it (--show, the settings reference)."""
        written: dict[str, Any] = {"table": self.table} if self.table else {}
        if self.models:
            written["models"] = {glob: {key: float(rate) for key, rate in rates} for glob, rates in self.models}
        return written


def parse_prices(value: Any) -> PriceSettings:
    """A YAML mapping, or JSON text (PRICES), with `table` and `models` (both optional)."""
    value = json_setting(value)
    if value is None:
        return PriceSettings()
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping with `table` and `models`, got {type(value).__name__}")
    unknown = sorted(set(value) - {"table", "models"})
    if unknown:
        raise ValueError(f".{unknown[0]}: unknown key (prices takes `table` and `models`)")
    table = value.get("table")
    if table is not None and (not isinstance(table, str) or not table.strip()):
        raise ValueError(".table: expected a file path, or none")
    models = {} if value.get("models") is None else value["models"]  # an empty list is no mapping either
    if not isinstance(models, dict):
        raise ValueError(f".models: expected a mapping of model name to rates, got {type(models).__name__}")
    return PriceSettings(_table(table), tuple((_glob(glob), _rates(glob, rates)) for glob, rates in models.items()))


def _table(table: str | None) -> str:
    if table is None:
        return SHIPPED
    # As the start-up check reads it (`~` expanded, `x/.` as x): every reader opens the path that check passed.
    return NO_TABLE if table.strip().lower() == NO_TABLE else str(Path(table.strip()).expanduser())


def _glob(glob: Any) -> str:
    if not isinstance(glob, str) or not glob.strip():
        raise ValueError(".models: model names must be non-empty strings")
    return glob.strip()


def _rates(glob: str, rates: Any) -> tuple[tuple[str, Decimal], ...]:
    if not isinstance(rates, dict) or not rates:
        raise ValueError(f".models.{glob}: expected rates such as {{input_mtok: 2.5, output_mtok: 10}}")
    parsed = []
    for key, rate in rates.items():
        if key not in PRICE_KEYS:
            raise ValueError(f".models.{glob}.{key}: not a rate the proxy charges (one of {', '.join(PRICE_KEYS)})")
        parsed.append((key, _rate(f"{glob}.{key}", rate)))
    return tuple(parsed)


def _rate(where: str, rate: Any) -> Decimal:
    """USD as written (a YAML float is read through its text: 0.1 stays 0.1, not 0.1000000000000000055)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, str)):
        raise ValueError(f".models.{where}: expected a number of US dollars, got {rate!r}")
    try:
        number = Decimal(str(rate).strip())
    except InvalidOperation:
        raise ValueError(f".models.{where}: expected a number of US dollars, got {rate!r}") from None
    if not number.is_finite() or number < 0 or number > 1_000_000:
        raise ValueError(f".models.{where}: expected a price from 0 to 1000000 dollars, got {rate!r}")
    return number
