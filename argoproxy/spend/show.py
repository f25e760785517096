"""`cot-proxy prices show MODEL`: the rates a model is charged at today (or on a given day): the `prices` setting's
when it names the model (they apply wherever it is served), else the table's (the setting's table, else the
shipped one), by a provider named or the one whose API a URL is; without either, by every provider that has it."""

from __future__ import annotations

import sys
from datetime import date, datetime, timezone

from argoproxy.redaction import mask_url
from argoproxy.config.price_settings import NO_TABLE, SHIPPED, PriceSettings, refreshed_table
from argoproxy.spend.pricer import Pricer
from argoproxy.spend.table import PriceTable, Provider, table_problem
from argoproxy.spend.units import Rates, Tiered


def show_model(model: str, base_url: str = "", provider_id: str = "", day: str = "",
               settings: PriceSettings | None = None) -> int:
    try:
        moment = datetime.combine(date.fromisoformat(day), datetime.min.time(), timezone.utc) if day \
            else datetime.now(timezone.utc)
    except ValueError:
        print(f"cot_proxy prices: --date is YYYY-MM-DD, got {day!r}", file=sys.stderr)
        return 2
    pricer = Pricer(settings)
    given = pricer.setting_for((model,))
    if given is not None:
        print(f"prices setting {given.model!r} on {moment.date()}: {_rates(given.rates) or 'free'}")
        return 0
    own = pricer.settings.table or str(refreshed_table() or "")  # the user's refreshed one, when the setting names none
    problem = table_problem(own) if own not in (SHIPPED, NO_TABLE) else None
    if problem:  # checked as start-up checks it: a table of one's own that is none was a traceback here
        print(f"cot_proxy: bad setting PRICES: {problem}", file=sys.stderr)
        return 2
    table = pricer.table
    if table is None:
        print(f"cot_proxy prices: no price for {model!r} (the prices setting has table: none and does not name it)",
              file=sys.stderr)
        return 1
    providers = _providers(table, base_url, provider_id)
    if providers is None:
        if provider_id:
            print(f"cot_proxy prices: --provider {provider_id!r} is not in the table", file=sys.stderr)
            return 1
        return _by_name(table, model, base_url, moment)
    return _by_providers(table, providers, model, moment)


def _by_name(table: PriceTable, model: str, base_url: str, moment: datetime) -> int:
    """A URL no provider of the table serves: the model's price by its name alone."""
    print(f"cot_proxy prices: no provider of the table serves {mask_url(base_url)}: a server of your own that says "
          "it is llama.cpp, vLLM or Ollama, or is declared `self_hosted`, costs nothing; any other is charged by "
          "the model's name:", file=sys.stderr)
    listed = table.by_name(model, moment.timestamp())
    if listed is None:
        print(f"cot_proxy prices: no price for {model!r}: unpriced", file=sys.stderr)
        return 1
    rates = listed[1].rates(moment)
    written = _rates(rates) if rates is not None else "no rate this proxy can charge (unpriced)"
    print(f"{listed[0].id}/{listed[1].id} on {moment.date()}: {written or 'free'}")
    return 0


def _by_providers(table: PriceTable, providers: list[Provider], model: str, moment: datetime) -> int:
    """The model's rates at each provider named (or every one that has it)."""
    shown = 0
    for provider in providers:
        found = table.model(provider, model)
        if found is None:
            continue
        shown += 1
        rates = found.rates(moment)
        written = _rates(rates) if rates is not None else "no rate this proxy can charge (unpriced)"
        print(f"{provider.id}/{found.id} on {moment.date()}: {written or 'free'}")
    if not shown:
        print(f"cot_proxy prices: no price for {model!r} (table: genai-prices {table.about.get('version')}, "
              f"refreshed {table.about.get('refreshed')})", file=sys.stderr)
        return 1
    return 0


def _providers(table: PriceTable, base_url: str, provider_id: str) -> list[Provider] | None:
    if provider_id:
        found = table.provider(provider_id)
        return [found] if found is not None else None
    if base_url:
        found = table.provider_for_url(base_url)
        return [found] if found is not None else None
    return table.providers


def _rates(rates: Rates | None) -> str:
    return ", ".join(f"{key} {_price(price)}" for key, price in rates.prices.items()) if rates is not None else ""


def _price(price: object) -> str:
    if isinstance(price, Tiered):
        return f"${price.base} (" + ", ".join(f"${p} past {start:,} input tokens" for start, p in price.tiers) + ")"
    return f"${price}"
