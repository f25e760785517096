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
budgets are held by teamkeys/.

May import: the shared modules, config.
"""
