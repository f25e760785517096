"""Which prices a deployment's models are charged at, and what a finished call cost.

Decided per deployment (a PriceSource), in this order:

1. the `prices` setting's `models`: a model given there costs its rates wherever it is served;
2. the backend names the vendor (ARGO: OpenAI's, Anthropic's or Google's prices, by the model's family, under
   the vendor's names for it);
3. the provider whose API the deployment's URL is (genai-prices' `api_pattern`: api.openai.com, api.anthropic.com,
   generativelanguage.googleapis.com, openrouter.ai, ...);
4. free: the upstream is declared a server of one's own (`self_hosted`), or says it is a local one (llama.cpp,
   vLLM, Ollama: asked by argoproxy/upstream/local_server.py, handed in as `says_local`);
5. the model's name in the table: at its maker's API rates, else at the dearest provider listing it (a relay on
   loopback serving `gpt-4o` is charged OpenAI's rates: the address alone says nothing of who is paid);
6. anything else is unpriced: counted and flagged (Cost.priced False), never charged as free.

The table is read the first time a call is priced (once per process), and each model name's match is kept, so a
call costs a dictionary look-up and a few multiplications.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, NamedTuple
from urllib.parse import urlsplit

from argoproxy.config.price_settings import NO_TABLE, PriceSettings
from argoproxy.spend.table import Model, PricedProvider, PriceTable, load_table
from argoproxy.spend.units import Rates
from argoproxy.spend.usage_shapes import counts_of

# The vendor a backend names for a model: (the table's provider id, the names to look it up by, in order).
Vendor = Callable[[str], "tuple[str, tuple[str, ...]] | None"]
# Whether the upstream says it is a local server: (what it said it is, or None; settled: False while it could not
# be reached, asked again later).
SaysLocal = Callable[[], "tuple[str | None, bool]"]
MATCHES_KEPT = 4096  # model names whose match a source keeps (names are the clients': bounded)
NAME_MOST = 256  # a longer model name is no model's: never matched (a clause scan over a megabyte, per request)
PRIVATE_SUFFIXES = (".local", ".localdomain", ".internal", ".lan", ".home", ".home.arpa", ".intranet", ".corp",
                    ".private", ".svc", ".cluster.local", ".localhost")
SETTING = "prices setting"
SELF_HOSTED = "self-hosted"
DECLARED = "self_hosted: true"
BY_NAME = "(by name)"  # priced at a provider's rates by the model's name alone (rule 5)
_UNASKED = object()


class Cost(NamedTuple):
    """What a finished call cost: `nanos` (10^-9 dollars, exact); `priced` False: its model has no price (0 is
    not charged for it, it is flagged); `by`: what priced it; `model`: the name it was priced as."""
    nanos: int
    priced: bool
    by: str
    model: str

    @property
    def dollars(self) -> float:
        return self.nanos / 1e9


@dataclass(frozen=True)
class Found:
    """A model name's prices: from the setting (`rates`), a table's model, free, or none (unpriced)."""
    by: str
    model: str
    rates: Rates | None = None
    table_model: Model | None = None

    def at(self, moment: float) -> Rates | None:
        return self.table_model.rates(moment) if self.table_model is not None else self.rates


class Pricer:
    """The `prices` setting and the table it names: one per worker, shared by its deployments."""

    def __init__(self, settings: PriceSettings | None = None) -> None:
        self.settings = settings or PriceSettings()
        self.given = tuple((glob.lower(), glob, Rates(dict(rates))) for glob, rates in self.settings.models)
        self._table: PriceTable | None = None

    @property
    def table(self) -> PriceTable | None:
        if self._table is None and self.settings.table != NO_TABLE:
            self._table = load_table(self.settings.table or None)
        return self._table

    def source(self, base_url: str, vendor: Vendor | None = None, self_hosted: bool = False,
               says_local: SaysLocal | None = None) -> PriceSource:
        return PriceSource(self, base_url, vendor, self_hosted, says_local)

    def setting_for(self, names: Iterable[str]) -> Found | None:
        names = [name.lower() for name in names if len(name) <= NAME_MOST]
        for low, glob, rates in self.given:
            if any(fnmatch.fnmatchcase(name, low) for name in names):
                return Found(SETTING, glob, rates)
        return None

    def cost(self, usage: Any, names: tuple[str, ...], source: PriceSource | None,
             moment: float | datetime) -> Cost | None:
        """What a usage cost at `moment` (epoch seconds, UTC) for a model known by `names` (the name sent upstream
        first); None when the usage says nothing (no counts: nothing to price)."""
        counts = counts_of(usage)
        return self.cost_of(counts, names, source, moment) if counts else None

    def cost_of(self, counts: dict[str, int], names: tuple[str, ...], source: PriceSource | None,
                moment: float | datetime) -> Cost:
        """What an answer's token counts (usage_shapes.counts_of's, not empty) cost: `cost`, its usage read."""
        found = source.find(names) if source is not None else self.setting_for(names)
        if found is not None:
            rates = found.at(epoch(moment))
            if rates is not None:
                return Cost(rates.nanos(counts), True, found.by, found.model)
        return Cost(0, False, found.by if found is not None else "", names[0][:NAME_MOST] if names else "-")

    def most(self, names: tuple[str, ...], source: PriceSource | None, input_tokens: int, output_tokens: int,
             moment: float | datetime) -> int | None:
        """Nano-dollars a request may cost at most (its worst case in tokens at the model's dearest rates); None
        when the model has no price."""
        found = source.find(names) if source is not None else self.setting_for(names)
        rates = found.at(epoch(moment)) if found is not None else None
        return rates.most_nanos(input_tokens, output_tokens) if rates is not None else None


class PriceSource:
    """How one deployment's models are priced (see the module's order). `self_hosted`: declared a server of one's
    own; `says_local`: asks the upstream whether it is a local server (once, when first needed)."""

    def __init__(self, pricer: Pricer, base_url: str, vendor: Vendor | None = None, self_hosted: bool = False,
                 says_local: SaysLocal | None = None) -> None:
        self.pricer, self.base_url, self.vendor = pricer, base_url, vendor
        self.self_hosted, self.says_local = self_hosted, says_local
        self._local: Any = _UNASKED  # what the upstream said it is (None: nothing), once settled
        self._costs_nothing: bool | None = None
        self._provider: PricedProvider | None | bool = False  # not looked for yet
        self._found: dict[tuple[str, ...], Found | None] = {}
        self._by_name: dict[tuple[str, ...], Found | None] = {}  # the table scanned by name, whatever the upstream said
        self._lock = threading.Lock()

    def why_free(self) -> str | None:
        """Why this upstream's models cost nothing (rule 4): declared, or what it said it is; None: neither (or
        not known yet: it could not be reached)."""
        return self._free()[0]

    def _free(self) -> tuple[str | None, bool]:
        """(why free, settled: False while the upstream could not be asked, so nothing decided on it is kept)"""
        if self.self_hosted:
            return DECLARED, True
        if self._local is _UNASKED and self.says_local is not None:
            said, settled = self.says_local()
            if not settled:
                return None, False
            self._local = said
        return (None if self._local is _UNASKED else self._local), True

    @property
    def costs_nothing(self) -> bool:
        """Its every model priced 0, known without reading the table: free (rule 4), no prices given, no vendor,
        and the shipped table at a private address (no provider of the shipped table serves one; a table of one's
        own may name one)."""
        known = self._costs_nothing
        if known is None:
            pricer = self.pricer
            if self.vendor is None and not pricer.given and not pricer.settings.table \
                    and private_address(self.base_url):
                why, settled = self._free()
                known = why is not None
            else:
                known, settled = False, True
            if settled:
                self._costs_nothing = known
        return known

    def find(self, names: tuple[str, ...]) -> Found | None:
        found = self._found.get(names, self)
        if found is self:
            names = tuple(name for name in names if len(name) <= NAME_MOST)
            found, settled = self._look(names)
            if len(self._found) < MATCHES_KEPT and all(len(name) <= NAME_MOST for name in names) and settled:
                with self._lock:
                    self._found[names] = found
        return found  # type: ignore[return-value]

    def charges(self, names: tuple[str, ...], moment: float) -> bool:
        """May a call of the model known by `names` cost money: priced above 0 at `moment`, or unpriced (counted
        as such)? Not on a free upstream the setting gives no prices (decided without reading the table)."""
        if self.costs_nothing:
            return False
        found = self.find(names)
        rates = found.at(moment) if found is not None else None
        return rates is None or not rates.free

    def _look(self, names: tuple[str, ...]) -> tuple[Found | None, bool]:
        """What prices `names`, and whether that is settled (not while the upstream could not be asked)."""
        given = self.pricer.setting_for(names)
        if given is not None:
            return given, True
        table = self.pricer.table
        found = self._vendors_model(names, table)
        if found is not None:
            return found, True
        provider = self.provider()
        if provider is not None and table is not None:
            model = next((m for m in (table.model(provider, n) for n in names) if m is not None), None)
            found = Found(provider.id, model.id, table_model=model) if model is not None else Found(provider.id, "")
            return found, True
        why, settled = self._free()
        if why is not None:
            return Found(SELF_HOSTED, names[0] if names else "-", Rates({})), True
        if self.vendor is None and table is not None:
            return self._by_name_in(table, names), settled
        return None, settled

    def _vendors_model(self, names: tuple[str, ...], table: PriceTable | None) -> Found | None:
        """The model at the prices of the vendor the backend names for it, under the vendor's names for it."""
        for name in names:
            named = self.vendor(name) if self.vendor is not None else None
            vendor = table.provider(named[0]) if named is not None and table is not None else None
            if vendor is not None and table is not None and named is not None:
                model = next((m for m in (table.model(vendor, n) for n in named[1]) if m is not None), None)
                if model is not None:
                    return Found(vendor.id, model.id, table_model=model)
        return None

    def _by_name_in(self, table: PriceTable, names: tuple[str, ...]) -> Found | None:
        """The table's scan by the model's names, kept even while the upstream cannot be asked (it does not depend
        on the answer, and it is the dearest part of a lookup)."""
        if names in self._by_name:
            return self._by_name[names]
        by_name: Found | None = None
        for name in names:
            listed = table.by_name(name, time.time())
            if listed is not None:
                by_name = Found(f"{listed[0].id} {BY_NAME}", listed[1].id, table_model=listed[1])
                break
        if len(self._by_name) < MATCHES_KEPT and all(len(name) <= NAME_MOST for name in names):
            with self._lock:
                self._by_name[names] = by_name
        return by_name

    def provider(self) -> PricedProvider | None:
        """The table's provider whose API this deployment's URL is (found once)."""
        if self._provider is False:
            table = self.pricer.table
            self._provider = table.provider_for_url(self.base_url) if table is not None and self.base_url else None
        return self._provider  # type: ignore[return-value]


def private_address(base_url: str) -> bool:
    """An address no public provider serves: one that is not a global one (loopback, private, link-local, shared as
    Tailscale's and carriers' NATs are), or a name public DNS does not serve (a single label such as `vllm`, or a
    private suffix such as .lan, .internal or .svc). It does not make a model free (a relay to a paid API listens on
    loopback too): it says no provider of the shipped table is there, and which upstreams start-up warns about."""
    try:
        host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith(PRIVATE_SUFFIXES)
    return not address.is_global  # private, loopback, link-local, shared (100.64.0.0/10: Tailscale's) or reserved


def epoch(moment: float | datetime) -> float:
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)).timestamp()
    return moment
