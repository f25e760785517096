"""A worst case in dollars: the meter's tokens (worst.py) at the prices of every deployment that may serve the
request (the dearest of them), found as argoproxy/spend/ finds a model's price. None when one of them has no
price: a dollar budget cannot hold such a request, and refuses it."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from argoproxy.meter.worst import Worst
from argoproxy.spend import PriceSource, Pricer


def most_nanos(pricer: Pricer, serving: Iterable[tuple[PriceSource | None, tuple[str, ...]]], worst: Worst,
               moment: float | datetime) -> int | None:
    """Nano-dollars `worst` may cost at most on any of `serving` (each: how a deployment is priced, the names of
    the model there); None: a deployment has no price for it."""
    most = 0
    for source, names in serving:
        cost = pricer.most(names, source, worst.input, worst.output, moment)
        if cost is None:
            return None
        most = max(most, cost)
    return most
