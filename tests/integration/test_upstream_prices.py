"""Which upstreams cost nothing, through the running proxy (docs/spend.md, "Which prices apply"): the address
alone no longer makes a model free. A relay on loopback (LiteLLM in front of OpenAI, here the fake OpenAI API,
which answers none of the self-identification questions) is charged gpt-4o's rates, and a dollar budget holds;
start-up names every upstream priced 0 with its reason, and warns of one at a private address that does not say
what it is."""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal

import openai
import pytest
import requests

from tests.clients import openai_sdk
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_spend import usage_rows
from tests.integration.test_team_keys import create
from tests.polling import poll
from tests.proxy_process import ROOT, running_proxy

MSG = [{"role": "user", "content": "hi"}]
MILLION = {"prompt_tokens": 1_000, "completion_tokens": 1_000_000, "total_tokens": 1_001_000}


def test_a_relay_on_loopback_is_priced_and_its_dollar_budget_holds(tmp_path):
    """The issue's figure: TARGET_BASE_URL=http://127.0.0.1:PORT/v1 (a relay to OpenAI), answers of 1M tokens
    each to a --budget-usd 0.05/day key cost $0.00 each and were never refused. Now: gpt-4o's rates (OpenAI's, by
    the model's name), the key refused once over, and start-up's warning names the setting that would make the
    upstream free, once (`python cot_proxy.py` reads its settings twice: the proxy's and Gunicorn's)."""
    db = tmp_path / "keys.db"
    with FakeOpenAI() as fake, running_proxy([sys.executable, str(ROOT / "cot_proxy.py")],
                                             TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET="admin", KEYS_DB=str(db)) as p:
        fake.usage = dict(MILLION)
        key = create(db, "relayed", "--budget-usd", "0.05/day")
        client = openai_sdk(p, key=key)
        client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=10)  # its most: under $0.05
        [row] = poll(lambda: usage_rows(db, "relayed") or None, timeout=15)
        assert Decimal(row["cost_usd"]) == (1_000 * Decimal("2.5") + 1_000_000 * 10) / 1_000_000  # $10.0025
        assert row["unpriced_requests"] == "0"
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=10)
        assert refused.value.body["type"] == "insufficient_quota" and "$0.05/day" in refused.value.body["message"]
        assert len([r for r in fake.received if r.path.endswith("/chat/completions")]) == 1
        assert sorted(fake.asked_what_it_is) == ["/api/version", "/props", "/version"]  # each asked once
        log = p.read_log()
    warnings = [line for line in log.splitlines() if "does not say it is a local server" in line]
    assert warnings == [
        f"cot_proxy: warning: {fake.base_url} does not say it is a local server (llama.cpp's /props, vLLM's /version, "
        "Ollama's /api/version): its models are charged by their names in the price table (a relay of gpt-4o at "
        "OpenAI's rates), the rest unpriced; a server of your own that does not say so (LM Studio, SGLang, TGI, "
        "llamafile) costs 0 with SELF_HOSTED=true (`self_hosted: true` in config.yaml)"], log
    assert "priced 0" not in log


def cost_in_metrics(p, model: str) -> Decimal | None:
    metrics = requests.get(p.url + "/metrics", timeout=10).text
    found = re.search(rf'^cot_proxy_cost_usd_total\{{key="none",model="{re.escape(model)}"\}} (\S+)$', metrics, re.M)
    return Decimal(found.group(1)) if found else None


def test_start_up_says_why_each_upstream_costs_nothing():
    """Routed upstreams: llama.cpp, vLLM and Ollama say what they are, one is declared `self_hosted: true`, one (a
    relay) says nothing. One line names the four free ones with their reasons, one warning the relay; their
    answers cost 0, the relay's gpt-4o its rates."""
    with FakeOpenAI(says="llama.cpp") as llama, FakeOpenAI(says="vLLM") as vllm, FakeOpenAI(says="Ollama") as ollama, \
            FakeOpenAI() as studio, FakeOpenAI() as relay:
        entries = [{"name": "gemma", "backend": "openai", "base_url": llama.base_url},
                   {"name": "qwen", "backend": "openai", "base_url": vllm.base_url},
                   {"name": "llama3", "backend": "openai", "base_url": ollama.base_url},
                   {"name": "phi", "backend": "openai", "base_url": studio.base_url, "self_hosted": True},
                   {"name": "gpt-4o", "backend": "openai", "base_url": relay.base_url}]
        with running_proxy(MODELS=json.dumps(entries)) as p:
            for fake in (llama, vllm, ollama, studio, relay):
                fake.usage = dict(MILLION)
            for model in ("gemma", "qwen", "llama3", "phi", "gpt-4o"):
                openai_sdk(p).chat.completions.create(model=model, messages=MSG)
            assert poll(lambda: cost_in_metrics(p, "gpt-4o"), timeout=15) == Decimal("10.0025")
            metrics = requests.get(p.url + "/metrics", timeout=10).text
            assert not re.search(r'^cot_proxy_(cost_usd|unpriced_requests)_total\{.*model="(gemma|qwen|llama3|phi)"',
                                 metrics, re.M)  # priced 0: no cost, and not unpriced
            log = p.read_log()
    assert studio.asked_what_it_is == []  # declared: not asked
    free = [line for line in log.splitlines() if line.startswith("cot_proxy: priced 0")]
    assert free == [f"cot_proxy: priced 0 (self-hosted, docs/spend.md): {llama.base_url} (it says it is llama.cpp "
                    f"(GET /props)), {vllm.base_url} (it says it is vLLM (GET /version)), {ollama.base_url} (it says "
                    f"it is Ollama (GET /api/version)), {studio.base_url} (declared: self_hosted: true)"], log
    [warning] = [line for line in log.splitlines() if "does not say it is a local server" in line]
    assert warning.startswith(f"cot_proxy: warning: {relay.base_url} does not say") and \
        warning.endswith("costs 0 with `self_hosted: true` on its `models` entry"), warning
