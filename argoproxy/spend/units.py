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
from fractions import Fraction
from typing import Mapping, Union


@dataclass(frozen=True)
class Unit:
    count: str  # the usage count it prices (usage_shapes.py's names)
    per: int
    dims: frozenset[tuple[str, str]]

    def holds(self, other: "Unit") -> bool:
        """`other` is a part of this count (or this count itself)."""
        return self.dims <= other.dims


def _unit(count: str, per: int = 1_000_000, family: str = "tokens", **dims: str) -> Unit:
    return Unit(count, per, frozenset({"family": family, **dims}.items()))


UNITS: dict[str, Unit] = {  # price key -> what it counts
    "input_mtok": _unit("input_tokens", direction="input"),
    "output_mtok": _unit("output_tokens", direction="output"),
    "cache_read_mtok": _unit("cache_read_tokens", direction="input", token_type="cache_read"),
    "cache_write_mtok": _unit("cache_write_tokens", direction="input", token_type="cache_write"),
    "cache_write_5m_mtok": _unit("cache_write_5m_tokens", direction="input", token_type="cache_write", cache_ttl="5m"),
    "cache_write_1h_mtok": _unit("cache_write_1h_tokens", direction="input", token_type="cache_write", cache_ttl="1h"),
    "output_reasoning_mtok": _unit("output_reasoning_tokens", direction="output", token_type="reasoning"),
    "input_audio_mtok": _unit("input_audio_tokens", direction="input", modality="audio"),
    "output_audio_mtok": _unit("output_audio_tokens", direction="output", modality="audio"),
    "cache_audio_read_mtok": _unit("cache_audio_read_tokens", direction="input", modality="audio",
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
YOCTO = 10**24  # rates are kept as whole 10^-24 dollars per unit counted (a rate's 18 decimals, per million)
NANOS_IN = 10**15  # of those in a nano-dollar
Scaled = Union[int, Fraction]  # a Fraction only for a rate with more decimals than that (none in the table today)
ScaledTiers = tuple[Scaled, tuple[tuple[int, Scaled], ...]]  # (base, ((start, rate), ...))


def _scaled(price: Decimal, per: int) -> Scaled:
    exact = Fraction(price) * YOCTO / per
    return exact.numerator if exact.denominator == 1 else exact


class Rates:
    """One model's rates on one day, ready to charge: the units it prices, most specific first, each with the
    units priced inside it (charged at their own rate, taken out of it). Charged in whole numbers (YOCTO), so a
    call costs a few integer multiplications and no rounding until the nano-dollar."""

    __slots__ = ("prices", "_plan", "_inside", "_tiered", "free")

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self.prices = {key: price for key, price in prices.items() if key in UNITS}
        units = sorted(self.prices, key=lambda key: (-len(UNITS[key].dims), UNITS[key].count))
        self._plan = tuple((UNITS[key], _scaled_price(self.prices[key], UNITS[key].per)) for key in units)
        self._inside = tuple(tuple(j for j, other in enumerate(units[:i]) if UNITS[key].holds(UNITS[other]))
                             for i, key in enumerate(units))
        self._tiered = any(isinstance(price, Tiered) for price in self.prices.values())
        self.free = not any(price.base or any(p for _, p in price.tiers) if isinstance(price, Tiered) else price
                            for price in self.prices.values())  # nothing it counts costs anything

    def _total(self, counts: Mapping[str, int]) -> Scaled:
        input_tokens = counts.get("input_tokens", 0) if self._tiered else 0
        rest: list[int] = []
        total: Scaled = 0
        for (unit, scaled), inside in zip(self._plan, self._inside):
            count = 1 if unit.count == "requests" else counts.get(unit.count, 0)
            if inside:
                count = max(0, count - sum(rest[j] for j in inside))  # a part larger than its whole: none left
            rest.append(count)
            if count:
                total += count * _rate(scaled, input_tokens)
        return total

    def nanos(self, counts: Mapping[str, int]) -> int:
        """Nano-dollars for a usage (usage_shapes.py's counts; a count no rate prices is charged in its
        parent's), rounded half to even."""
        return _rounded(self._total(counts))

    def charge(self, counts: Mapping[str, int]) -> Decimal:
        """The same in dollars, exactly."""
        total = Fraction(self._total(counts), YOCTO)
        with localcontext(EXACT):
            return Decimal(total.numerator) / Decimal(total.denominator)

    def most_nanos(self, input_tokens: int, output_tokens: int) -> int:
        """Nano-dollars at most for `input_tokens` in and `output_tokens` out: each at the dearest rate of its
        side (a cache write, audio, reasoning), the input's tier for its count, and the request's own price."""
        def dearest(side: tuple[str, str]) -> Scaled:
            return max((_rate(scaled, input_tokens) for unit, scaled in self._plan
                        if side in unit.dims and ("family", "tokens") in unit.dims), default=0)
        request = next((_rate(scaled, input_tokens) for unit, scaled in self._plan if unit.count == "requests"), 0)
        return _rounded(dearest(INPUT) * input_tokens + dearest(OUTPUT) * output_tokens + request)

    def most(self, input_tokens: int, output_tokens: int) -> Decimal:
        return Decimal(self.most_nanos(input_tokens, output_tokens)) / NANO

    def __repr__(self) -> str:
        return f"Rates({self.prices!r})"


def _scaled_price(price: Price, per: int) -> Scaled | ScaledTiers:
    """A rate in YOCTO per unit; a tiered one as (base, ((start, rate), ...))."""
    if isinstance(price, Tiered):
        return (_scaled(price.base, per), tuple((start, _scaled(p, per)) for start, p in price.tiers))
    return _scaled(price, per)


def _rate(scaled: Scaled | ScaledTiers, input_tokens: int) -> Scaled:
    """A rate, or a tiered one's for the request's input tokens (past a tier's start: its rate for all)."""
    if not isinstance(scaled, tuple):
        return scaled
    base, tiers = scaled
    for start, rate in reversed(tiers):
        if input_tokens > start:
            return rate
    return base


def _rounded(total: Scaled) -> int:
    """YOCTO dollars as whole nano-dollars, half to even."""
    if type(total) is int:
        whole, rest = divmod(total, NANOS_IN)
        return whole + (rest * 2 > NANOS_IN or (rest * 2 == NANOS_IN and whole % 2))
    return round(total / NANOS_IN)


NANO = Decimal(1_000_000_000)


def nano(dollars: Decimal) -> int:
    """Dollars as a whole number of nano-dollars (the unit spend is counted and budgets are kept in)."""
    with localcontext(EXACT):
        return int((dollars * NANO).to_integral_value(ROUND_HALF_EVEN))


def dollars(nanos: int) -> str:
    """Nano-dollars as dollars, exactly, at least to the cent: 1234500 -> 0.0012345, 0 -> 0.00."""
    whole, _, fraction = f"{Decimal(nanos).scaleb(-9):f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
