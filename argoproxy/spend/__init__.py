"""Spend: what requests cost, in US dollars, from the usage their answers reported (docs/spend.md): the prices,
a call's cost, and the spend the status page shows.

- table.json: the price table that comes with the package, generated from the genai-prices package (MIT) by
  `cot-proxy prices refresh --output` (refresh.py); nothing is fetched at run time. Without --output, refresh
  writes the user's own (~/.local/share/argoproxy/prices.json), read instead while the prices setting names none.
- table.py: that table read once per process when the first request is priced: providers found by their API's
  URL, models by their name's clauses (or by name alone, at their maker's rates), each model's rates on a given day
  (historic prices, tiers).
- table_rules.py: what a table must be to be read (prices finite and not negative, patterns that cannot backtrack
  without end), checked at load, at start-up and by `prices refresh` before it writes.
- units.py: what each rate counts and how a usage is charged at a set of rates (cached, cache-write, reasoning
  and audio tokens are parts of the input or output they belong to: never counted twice).
- usage_shapes.py: the token counts of every usage shape the doors and backends report (OpenAI's chat and
  Responses, Anthropic's, Gemini's, Ollama's).
- pricer.py: which prices apply to a deployment's models (the `prices` setting, a vendor named by the backend, its
  URL's provider, free for a server declared self-hosted or saying it is a local one, else the model's name) and a
  finished call's Cost.
- refresh.py: the table made again from the installed genai-prices (`cot-proxy prices refresh`).
- history.py: each key's spend of the last hours, in the cells the workers share, for the status page.

What a request may cost at most, in dollars, is the meter's (meter/dollars.py, at these prices); key and team
budgets are held by teamkeys/. The rest of the product imports this room by its face (the names below, each read
from its module on first use: argoproxy/room_face.py), never a module inside.

May import: the shared modules, config.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argoproxy.spend.history import SpendHistory as SpendHistory
    from argoproxy.spend.pricer import Cost as Cost
    from argoproxy.spend.pricer import Pricer as Pricer
    from argoproxy.spend.pricer import PriceSource as PriceSource
    from argoproxy.spend.pricer import private_address as private_address
    from argoproxy.spend.refresh import main as prices_main
    from argoproxy.spend.table import PriceTable as PriceTable
    from argoproxy.spend.table import load_table as load_table
    from argoproxy.spend.table import table_problem as table_problem
    from argoproxy.spend.units import NANO as NANO
    from argoproxy.spend.units import dollars as dollars
    from argoproxy.spend.usage_shapes import MOST as MOST_TOKENS
    from argoproxy.spend.usage_shapes import counts_of as counts_of
else:
    from argoproxy.room_face import lazy_face

    __getattr__ = lazy_face(__name__, {
        "SpendHistory": "history", "Cost": "pricer", "Pricer": "pricer", "PriceSource": "pricer",
        "private_address": "pricer", "prices_main": "refresh:main", "PriceTable": "table", "load_table": "table",
        "table_problem": "table", "NANO": "units", "dollars": "units", "MOST_TOKENS": "usage_shapes:MOST",
        "counts_of": "usage_shapes"})

__all__ = ["SpendHistory", "Cost", "Pricer", "PriceSource", "private_address", "prices_main", "PriceTable",
           "load_table", "table_problem", "NANO", "dollars", "MOST_TOKENS", "counts_of"]
