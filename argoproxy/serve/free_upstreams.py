"""Start-up's word on which upstreams cost nothing, and why (docs/spend.md, rule 4 of the prices).

An upstream is free when it is declared a server of one's own (`self_hosted`) or says it is a local server
(argoproxy/upstream/local_server.py asks each one here, in Gunicorn's master, before the workers are forked: they
inherit the answers). One line names every upstream priced 0 with its reason. An upstream at a private address
(loopback, private, a single-label or .lan name: once free by its address alone) that does not say what it is
gets a warning naming the setting that makes it free (one that cannot be reached yet gets none: it is asked again
when first used, and starting the proxy before its model server is usual): LM Studio, SGLang, TGI and llamafile say nothing, and a
relay to a paid API (LiteLLM on 127.0.0.1:4000) must not be free.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argoproxy.config import provider_registry as providers
from argoproxy.config.price_settings import NO_TABLE
from argoproxy.config.routing_settings import ModelEntry, declared_self_hosted, entry_url
from argoproxy.config.settings import Settings
from argoproxy.spend import PriceTable, load_table, private_address
from argoproxy.redaction import mask_url
from argoproxy.upstream import local_server


@dataclass(frozen=True)
class UpstreamFacts:
    url: str
    declared: bool
    asks: bool  # its backend's servers may say they are local ones
    api_key: str
    routed: bool


def upstreams(settings: Settings) -> list[UpstreamFacts]:
    """Every deployment's upstream, once per URL (the single one without `models`)."""
    entries = settings.models or (ModelEntry("*", settings.backend),)
    found: dict[str, UpstreamFacts] = {}
    for entry in entries:
        url = entry_url(settings, entry)
        key = os.environ.get(entry.api_key_env, "") if entry.api_key_env else settings.openai_api_key
        declared = declared_self_hosted(settings.self_hosted, settings.backend, entry)
        if url and url not in found:
            found[url] = UpstreamFacts(url, declared, providers.get(entry.backend).local_servers, key,
                                       bool(settings.models))
    return list(found.values())


def report(settings: Settings, reasked: bool = False) -> list[str]:
    """The lines start-up prints (asking the upstreams first); `reasked`: the settings were read again (SIGHUP),
    so every server is asked again."""
    if reasked:
        local_server.forget()
    table = _table(settings)
    asked = [u for u in upstreams(settings) if (u.declared or u.asks)  # ARGO: its vendor's prices
             and not (table is not None and table.provider_for_url(u.url) is not None)]  # priced by their URL
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(asked)))) as pool:
        said = dict(zip((u.url for u in asked), pool.map(
            lambda u: local_server.says_local(u.url, u.api_key) if u.asks and not u.declared else None, asked)))
    free, lines = [], []
    for upstream in asked:
        answer = said[upstream.url]
        shown = mask_url(upstream.url)
        if upstream.declared:
            free.append(f"{shown} (declared: {'self_hosted: true' if upstream.routed else 'SELF_HOSTED'})")
        elif answer is not None and answer.server:
            free.append(f"{shown} (it says it is {answer.server})")
        elif private_address(upstream.url) and (answer is None or answer.settled):
            lines.append(_warning(upstream, shown))
    if free:
        lines.insert(0, "cot_proxy: priced 0 (self-hosted, docs/spend.md): " + ", ".join(free))
    return lines


def _warning(upstream: UpstreamFacts, shown: str) -> str:
    setting = "`self_hosted: true` on its `models` entry" if upstream.routed else \
        "SELF_HOSTED=true (`self_hosted: true` in config.yaml)"
    return (f"cot_proxy: warning: {shown} does not say it is a local server ({local_server.ASKED}): its models are charged by their names in the price table "
            f"(a relay of gpt-4o at OpenAI's rates), the rest unpriced; a server of your own that does not say so "
            f"(LM Studio, SGLang, TGI, llamafile) costs 0 with {setting}")


def _table(settings: Settings) -> PriceTable | None:
    """The price table the workers will read (read here once: they inherit it), None with `table: none`."""
    return load_table(settings.prices.table or None) if settings.prices.table != NO_TABLE else None
