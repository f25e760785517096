"""What each rate counts, and a usage charged at a set of rates.

A rate is dollars per `per` units of one count (per million tokens, per thousand requests). The counts nest: the
input tokens hold the cached ones, the cache writes and the audio ones; the output tokens hold the reasoning
ones. A count is charged at the most specific rate a model has for it and the rest of its parent at the parent's
rate, as genai-prices does: cached tokens at the cache-read rate where the model has one, else as plain input,
and never both. Each unit is named by its dimensions (as genai-prices names them); one unit nests in another
when its dimensions hold the other's.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Mapping, Union


@dataclass(frozen=True)
class Unit:
    count: str  # the usage count it prices (usage_shapes.py's names)
    per: int
    dims: frozenset[tuple[str, str]]

    def holds(self, other: "Unit") -> bool:
        """`other` is a part of this count (or this count itself)."""
        return self.dims <= other.dims


def _unit(count: str, per: int = 1_000_000, **dims: str) -> Unit:
    return Unit(count, per, frozenset(dims.items()))


TOKENS = {"family": "tokens"}
UNITS: dict[str, Unit] = {  # price key -> what it counts
    "input_mtok": _unit("input_tokens", **TOKENS, direction="input"),
    "output_mtok": _unit("output_tokens", **TOKENS, direction="output"),
    "cache_read_mtok": _unit("cache_read_tokens", **TOKENS, direction="input", token_type="cache_read"),
    "cache_write_mtok": _unit("cache_write_tokens", **TOKENS, direction="input", token_type="cache_write"),
    "cache_write_5m_mtok": _unit("cache_write_5m_tokens", **TOKENS, direction="input", token_type="cache_write",
                                 cache_ttl="5m"),
    "cache_write_1h_mtok": _unit("cache_write_1h_tokens", **TOKENS, direction="input", token_type="cache_write",
                                 cache_ttl="1h"),
    "output_reasoning_mtok": _unit("output_reasoning_tokens", **TOKENS, direction="output", token_type="reasoning"),
    "input_audio_mtok": _unit("input_audio_tokens", **TOKENS, direction="input", modality="audio"),
    "output_audio_mtok": _unit("output_audio_tokens", **TOKENS, direction="output", modality="audio"),
    "cache_audio_read_mtok": _unit("cache_audio_read_tokens", **TOKENS, direction="input", modality="audio",
                                   token_type="cache_read"),
    "requests_kcount": _unit("requests", 1000, family="requests"),
}
INPUT = ("direction", "input")
OUTPUT = ("direction", "output")


@dataclass(frozen=True)
class Tiered:
    """A rate that changes with the request's input tokens: past a tier's start, its price for all of them."""
    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]  # (start, price), ascending

    def at(self, input_tokens: int) -> Decimal:
        for start, price in reversed(self.tiers):
            if input_tokens > start:
                return price
        return self.base


Price = Union[Decimal, Tiered]
EXACT = Context(prec=60)  # no rounding before the nano-dollar: rates have up to 18 decimals, counts 12 digits


class Rates:
    """One model's rates on one day, ready to charge: the units it prices, most specific first, each with the
    units priced inside it (charged at their own rate, taken out of it)."""

    __slots__ = ("prices", "_order", "_inside", "_tiered")

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self.prices = {key: price for key, price in prices.items() if key in UNITS}
        units = sorted(self.prices, key=lambda key: (-len(UNITS[key].dims), UNITS[key].count))
        self._order = tuple((key, UNITS[key], self.prices[key]) for key in units)
        self._inside = tuple(tuple(j for j, other in enumerate(units[:i]) if UNITS[key].holds(UNITS[other]))
                             for i, key in enumerate(units))
        self._tiered = any(isinstance(price, Tiered) for price in self.prices.values())

    def charge(self, counts: Mapping[str, int]) -> Decimal:
        """Dollars for a usage (usage_shapes.py's counts; a count no rate prices is charged in its parent's)."""
        input_tokens = counts.get("input_tokens", 0) if self._tiered else 0
        rest: list[int] = []
        total = Decimal(0)
        with localcontext(EXACT):
            for (key, unit, price), inside in zip(self._order, self._inside):
                count = 1 if unit.count == "requests" else counts.get(unit.count, 0)
                left = max(0, count - sum(rest[j] for j in inside))  # a part larger than its whole: none left
                rest.append(left)
                if left:
                    rate = price.at(input_tokens) if isinstance(price, Tiered) else price
                    total += rate * left / unit.per
        return total

    def most(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Dollars at most for `input_tokens` in and `output_tokens` out: each at the dearest rate of its side
        (a cache write, audio, reasoning), the input's tier for its count, and the request's own price."""
        def dearest(side: tuple[str, str]) -> Decimal:
            found = [(p.at(input_tokens) if isinstance(p, Tiered) else p) / u.per for _, u, p in self._order
                     if side in u.dims and ("family", "tokens") in u.dims]
            return max(found, default=Decimal(0))
        with localcontext(EXACT):
            total = dearest(INPUT) * input_tokens + dearest(OUTPUT) * output_tokens
            request = self.prices.get("requests_kcount")
            if isinstance(request, Decimal):
                total += request / 1000
        return total

    def __repr__(self) -> str:
        return f"Rates({self.prices!r})"


NANO = Decimal(1_000_000_000)


def nano(dollars: Decimal) -> int:
    """Dollars as a whole number of nano-dollars (the unit spend is counted and budgets are kept in)."""
    with localcontext(EXACT):
        return int((dollars * NANO).to_integral_value(ROUND_HALF_EVEN))


def dollars(nanos: int) -> str:
    """Nano-dollars as dollars, exactly, at least to the cent: 1234500 -> 0.0012345, 0 -> 0.00."""
    whole, _, fraction = f"{Decimal(nanos).scaleb(-9):f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
