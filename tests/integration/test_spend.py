"""Spend through the running proxy (docs/spend.md): a day of mixed usage through every door (chat whole and
streamed, completions, embeddings, the Responses, Google and Ollama doors translated, Anthropic's Messages relayed
natively), with cached, cache-write and reasoning tokens, is charged to the cent what the price table says, worked
out here by hand; `keys usage --csv`, /metrics and the status page agree; a model with no price is counted and
flagged, never charged as free."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import ollama
import pytest
import requests

from argoproxy.spend.refresh import SHIPPED_TABLE
from argoproxy.spend.table import load_table
from datetime import datetime, timezone
from tests.clients import anthropic_sdk, google_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.integration.test_team_keys import create, keys
from tests.polling import poll
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "hi"}]
# The table's rates today, US dollars per million tokens (checked against the table below, so that a refreshed
# table that changes them says so here).
RATES = {
    ("openai", "gpt-4o"): {"input_mtok": "2.5", "cache_read_mtok": "1.25", "output_mtok": "10"},
    ("openai", "o3"): {"input_mtok": "2", "cache_read_mtok": "0.5", "output_mtok": "8"},
    ("openai", "gpt-4o-mini"): {"input_mtok": "0.15", "cache_read_mtok": "0.075", "output_mtok": "0.6"},
    ("openai", "text-embedding-3-small"): {"input_mtok": "0.02"},
    ("openai", "gpt-3.5-turbo-instruct"): {"input_mtok": "1.5", "output_mtok": "2"},
    ("google", "gemini-2.5-flash"): {"input_mtok": "0.3", "cache_read_mtok": "0.03", "output_mtok": "2.5",
                                     "input_audio_mtok": "1", "cache_audio_read_mtok": "0.1"},
}
SONNET = ("anthropic", "claude-sonnet-4-5")  # tiered past 200,000 input tokens: the base rates apply here
SONNET_BASE = {"input_mtok": "3", "cache_write_mtok": "3.75", "cache_read_mtok": "0.3", "output_mtok": "15",
               "cache_write_1h_mtok": "6"}
M = Decimal(1_000_000)


def test_the_rates_this_file_works_with_are_the_tables():
    table, today = load_table(), datetime.now(timezone.utc)
    for (provider, model), rates in RATES.items():
        found = table.model(table.provider(provider), model)
        assert {k: str(v) for k, v in found.rates(today).prices.items()} == rates, model
    sonnet = table.model(table.provider(SONNET[0]), SONNET[1]).rates(today).prices
    assert {k: str(v.base) for k, v in sonnet.items()} == SONNET_BASE


@pytest.fixture
def vendor(tmp_path):
    """A fake upstream priced as a vendor that resells OpenAI's, Anthropic's and Google's models: the shipped
    table with one more provider, whose API is the fake's URL and whose prices are those three's (fallbacks)."""
    with FakeOpenAI() as fake:
        fake.accepts_developer = fake.accepts_null_content = True
        yield fake, vendor_table(fake, tmp_path / "prices.json")


def vendor_table(fake: FakeOpenAI, path: Path) -> Path:
    table = json.loads(SHIPPED_TABLE.read_text())
    table["providers"].insert(0, {"id": "fake-vendor", "api_pattern": re.escape(fake.base_url.split("/v1")[0]),
                                  "fallback": ["openai", "anthropic", "google"], "models": []})
    path.write_text(json.dumps(table))
    return path


def usage_rows(db: Path, name: str) -> list[dict[str, str]]:
    return [r for r in csv.DictReader(io.StringIO(keys(db, "usage", "--csv").stdout)) if r["key"] == name]


def anthropic_stream(usage_start: dict, output_tokens: int) -> Stream:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": usage_start}
    events = [{"type": "message_start", "message": message},
              {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "cached"}},
              {"type": "content_block_stop", "index": 0},
              {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
               "usage": {"output_tokens": output_tokens}},
              {"type": "message_stop"}]
    return Stream([f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events])


def test_a_day_of_mixed_usage_is_charged_what_the_table_says(vendor, tmp_path):
    fake, prices = vendor
    db = tmp_path / "keys.db"
    with running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="admin", KEYS_DB=str(db),
                       FRONTS_PASSTHROUGH="messages", PRICES=json.dumps({"table": str(prices)})) as p:
        key = create(db, "day")
        client = openai_sdk(p, key=key)
        expected = Decimal(0)

        # 1. chat, whole: 12,000 in of which 8,000 cached, 900 out
        fake.usage = {"prompt_tokens": 12_000, "completion_tokens": 900, "total_tokens": 12_900,
                      "prompt_tokens_details": {"cached_tokens": 8_000}}
        client.chat.completions.create(model="gpt-4o", messages=MSG)
        expected += (4_000 * Decimal("2.5") + 8_000 * Decimal("1.25") + 900 * 10) / M

        # 2. chat, streamed, the client asking for usage: 3,000 in (1,024 cached), 400 out
        fake.usage = {"prompt_tokens": 3_000, "completion_tokens": 400, "total_tokens": 3_400,
                      "prompt_tokens_details": {"cached_tokens": 1_024}}
        for _ in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                stream_options={"include_usage": True}):
            pass
        expected += (1_976 * Decimal("2.5") + 1_024 * Decimal("1.25") + 400 * 10) / M

        # 3. chat, streamed without asking usage (the proxy asks for the key): o3 reasoning, inside the output
        fake.usage = {"prompt_tokens": 500, "completion_tokens": 2_000, "total_tokens": 2_500,
                      "completion_tokens_details": {"reasoning_tokens": 1_500}}
        chunks = list(client.chat.completions.create(model="o3", messages=MSG, stream=True))
        assert all(c.usage is None for c in chunks)  # taken out again: the client did not ask
        expected += (500 * 2 + 2_000 * 8) / M

        # 4. the Responses door, streamed: o3 with reasoning and cached input
        fake.usage = {"prompt_tokens": 800, "completion_tokens": 1_200, "total_tokens": 2_000,
                      "prompt_tokens_details": {"cached_tokens": 600},
                      "completion_tokens_details": {"reasoning_tokens": 1_000}}
        with client.responses.stream(model="o3", input="hi") as events:
            final = events.get_final_response()
        assert final.usage.output_tokens_details.reasoning_tokens == 1_000
        expected += (200 * 2 + 600 * Decimal("0.5") + 1_200 * 8) / M

        # 5. the Google door, whole
        fake.usage = {"prompt_tokens": 1_000, "completion_tokens": 50, "total_tokens": 1_050}
        google = google_sdk(p, key=key)
        google.models.generate_content(model="gemini-2.5-flash", contents="hi")
        expected += (1_000 * Decimal("0.3") + 50 * Decimal("2.5")) / M

        # 6. the Ollama door, streamed
        fake.usage = {"prompt_tokens": 300, "completion_tokens": 30, "total_tokens": 330}
        local = ollama.Client(host=p.url, headers={"Authorization": f"Bearer {key}"})
        assert list(local.chat(model="gpt-4o-mini", messages=MSG, stream=True))
        expected += (300 * Decimal("0.15") + 30 * Decimal("0.6")) / M

        # 7. Anthropic's Messages relayed as they come, streamed: 100 uncached in, 5,000 read from the cache,
        # 2,000 written to it (800 of them for an hour), 300 out
        fake.add(anthropic_stream({"input_tokens": 100, "cache_read_input_tokens": 5_000,
                                   "cache_creation_input_tokens": 2_000,
                                   "cache_creation": {"ephemeral_5m_input_tokens": 1_200,
                                                      "ephemeral_1h_input_tokens": 800},
                                   "output_tokens": 1}, 300))
        with anthropic_sdk(p, key=key).messages.stream(model="claude-sonnet-4-5", max_tokens=500,
                                                       messages=MSG) as stream:
            assert stream.get_final_text() == "cached"
        expected += (100 * 3 + 5_000 * Decimal("0.3") + 1_200 * Decimal("3.75") + 800 * 6 + 300 * 15) / M
        # and its token count, relayed too (Claude Code asks it often): free, as Anthropic bills it
        fake.add(Reply({"input_tokens": 50_000}))
        assert anthropic_sdk(p, key=key).messages.count_tokens(model="claude-sonnet-4-5",
                                                               messages=MSG).input_tokens == 50_000

        # 8. embeddings, and 9. legacy completions
        fake.add(Reply({"object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 10_000,
                                                                                         "total_tokens": 10_000},
                        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}))
        client.embeddings.create(model="text-embedding-3-small", input="hi")
        expected += 10_000 * Decimal("0.02") / M
        fake.add(Reply({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
                        "choices": [{"text": "ok", "index": 0, "logprobs": None, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}}))
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
        expected += (100 * Decimal("1.5") + 50 * 2) / M

        # 10. a model the table has no price for: counted, flagged, not charged
        fake.usage = {"prompt_tokens": 7, "completion_tokens": 7, "total_tokens": 14}
        client.chat.completions.create(model="house-model-7b", messages=MSG)

        rows = poll(lambda: (lambda r: r if sum(int(x["requests"]) for x in r) == 11 else None)(usage_rows(db, "day")),
                    timeout=15)
        by_model = {r["model"]: r for r in rows}
        charged = sum(Decimal(r["cost_usd"]) for r in rows)
        print(f"a day of 11 requests: ${charged} charged, ${expected} by hand")
        assert charged == expected  # to the nano-dollar, so to the cent
        # 0.029 + 0.01022 + 0.017 + 0.0103 + 0.000425 + 0.000063 + 0.0156 + 0.0002 + 0.00025
        assert expected == Decimal("0.083058") and round(charged, 2) == Decimal("0.08")
        assert by_model["house-model-7b"]["cost_usd"] == "0.00" and by_model["house-model-7b"]["unpriced_requests"] == "1"
        assert all(r["unpriced_requests"] == "0" for m, r in by_model.items() if m != "house-model-7b")

        metrics = requests.get(p.url + "/metrics", headers={"Authorization": "Bearer admin"}, timeout=10).text
        in_metrics = sum(Decimal(v) for v in re.findall(r'^cot_proxy_cost_usd_total\{key="day",model="[^"]+"\} (\S+)$',
                                                          metrics, re.M))
        assert abs(in_metrics - expected) < Decimal("1e-9")
        assert re.search(r'^cot_proxy_unpriced_requests_total\{model="house-model-7b"\} 1\.0$', metrics, re.M)
        assert key not in metrics
        page = requests.get(p.url + "/ui/data", headers={"Authorization": "Bearer admin"}, timeout=10).json()
        mine = next(k for k in page["keys"] if k["key"] == "day")
        assert abs(Decimal(str(mine["cost_usd"])) - expected) < Decimal("1e-8")
        assert next(m for m in page["models"] if m["model"] == "house-model-7b")["unpriced"] == 1
        drawn = next(s for s in page["spend"]["keys"] if s["name"] == "day")
        assert sum(drawn["minutes"]) == int(expected * 1_000_000_000)


# ---------------------------------------------------------------- dollar budgets under parallel load
DEAR = json.dumps({"models": {"gpt-4o": {"input_mtok": 1000, "output_mtok": 1000}}})  # $0.001 a token


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    from tests.integration.test_reservations import Store
    s = Store(request.param, tmp_path)
    yield s
    s.close()


def spent(store, name: str) -> tuple[int, Decimal]:
    """(requests, dollars) the key's usage rows hold."""
    done = store.keys("usage", "--csv")
    rows = [r for r in csv.DictReader(io.StringIO(done.stdout)) if r["key"] == name]
    return sum(int(r["requests"]) for r in rows), sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))


def test_sixty_parallel_streams_spend_no_more_than_a_dollar_budget(store):
    """60 streams at once, each reporting 1,000 tokens ($1.00 at $0.001 a token) and asking up to 1,000 (its most:
    about $1.008 with its prompt), on a key with --budget-usd 10/day: each is admitted only while its most fits in
    what is left with what the streams in flight hold, so 9 are, and the usage rows hold exactly their cost. On
    SQLite (one instance, two workers) and Redis (three instances, two workers each)."""
    from tests.integration.test_reservations import at_once, slow_answers
    with FakeOpenAI() as fake:
        fake.default_answer = slow_answers()
        with store.proxies(fake, PRICES=DEAR) as bases:
            key = store.create("wallet", "--budget-usd", "10/day")
            statuses = at_once(bases, key, 60, max_tokens=1000)
            admitted = statuses.count(200)
            assert set(statuses) <= {200, 429} and len(statuses) == 60
            assert poll(lambda: spent(store, "wallet")[0] == admitted, timeout=15)
            requests_, dollars = spent(store, "wallet")
            print(f"{store.kind}, {len(bases)} instance(s): {admitted} of 60 admitted, ${dollars} spent of $10")
            assert admitted == 9 and dollars == admitted * Decimal("1.00") <= 10
            r = requests.post(bases[0] + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                              json={"model": "gpt-4o", "messages": MSG, "max_tokens": 1000}, timeout=30)
            assert r.status_code == 429 and r.json()["error"]["type"] == "insufficient_quota", r.text
            assert "budget of $10.00/day" in r.json()["error"]["message"]


def test_a_dollar_budget_refuses_what_it_cannot_charge(tmp_path):
    """A request that may cost more than the whole budget is refused at once, never to be retried; a model with no
    price cannot be held to a dollar budget: refused, not served as free. Both in the door's own error shape."""
    db = tmp_path / "keys.db"
    with running_proxy(TARGET_BASE_URL="https://llm.example.com/v1", ENABLE_AUTH="true", API_KEY_SECRET="admin",
                       KEYS_DB=str(db), PRICES=DEAR) as p:  # never reached: each request is refused before
        key = create(db, "small", "--budget-usd", "0.50/day")
        client = openai_sdk(p, key=key)
        import openai
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=1000)
        assert refused.value.response.headers["x-should-retry"] == "false"
        assert refused.value.body["type"] == "insufficient_quota" and "$0.50/day" in refused.value.body["message"]
        with pytest.raises(openai.PermissionDeniedError) as unpriced:
            client.chat.completions.create(model="house-model-7b", messages=MSG, max_tokens=10)
        assert unpriced.value.body["code"] == "model_not_priced"
        import anthropic
        with pytest.raises(anthropic.RateLimitError) as shaped:
            anthropic_sdk(p, key=key).messages.create(model="gpt-4o", max_tokens=1000, messages=MSG)
        assert shaped.value.body["type"] == "error"  # Anthropic's error shape on its door


def test_a_key_that_spent_its_budget_is_told_so(tmp_path):
    """A key whose answers cost more than their hold (an upstream that answered past max_tokens) has spent its whole
    dollar budget: every request is refused until the period ends, a free model's too, and the error says why; to a
    request that costs nothing it said '$0.00, more than is left of it'."""
    db = tmp_path / "keys.db"
    with FakeOpenAI(says="vLLM") as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                                        API_KEY_SECRET="admin", KEYS_DB=str(db), PRICES=DEAR) as p:
        key = create(db, "spender", "--budget-usd", "0.10/day")
        fake.usage = {"prompt_tokens": 200, "completion_tokens": 200, "total_tokens": 400}  # $0.40, asked for 10
        client = openai_sdk(p, key=key)
        client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=10)
        import openai
        said = {"gpt-4o": "this request may cost up to $0.00", "house-model-7b": "nothing is left of it (spent, or "
                "held by the key's requests in flight); retry in "}  # the second free here: the server says it is vLLM
        for model, why in said.items():
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(model=model, messages=MSG, max_tokens=1)
            assert refused.value.body["message"].startswith(f"This API key is over its budget of $0.10/day: {why}")


def test_a_stream_without_usage_is_charged_its_estimate(tmp_path):
    """An upstream that sends a stream no usage, even asked (llama.cpp's server): the key is charged the estimate
    its usage row counts (input and output tokens at the model's rates), in the row, /metrics and the journal."""
    db, journals = tmp_path / "keys.db", tmp_path / "logs"
    with FakeOpenAI() as fake, running_proxy(
            TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="admin", KEYS_DB=str(db),
            LOG_DIR=str(journals), PRICES=json.dumps({"models": {"house-model": {"input_mtok": 3, "output_mtok": 15}}})) as p:
        fake.sends_stream_usage = False
        key = create(db, "estimated")
        chunks = list(openai_sdk(p, key=key).chat.completions.create(model="house-model", messages=MSG, stream=True))
        assert chunks and all(c.usage is None for c in chunks)
        [row] = poll(lambda: usage_rows(db, "estimated") or None, timeout=15)
        tokens_in, tokens_out = int(row["input_tokens"]), int(row["output_tokens"])
        assert tokens_in > 0 and tokens_out > 0
        assert Decimal(row["cost_usd"]) == (tokens_in * 3 + tokens_out * 15) / M and row["unpriced_requests"] == "0"
        def charged() -> re.Match | None:  # the metrics and the usage row are written apart: polled
            metrics = requests.get(p.url + "/metrics", headers={"Authorization": "Bearer admin"}, timeout=10).text
            return re.search(r'^cot_proxy_cost_usd_total\{key="estimated",model="house-model"\} (\S+)$', metrics, re.M)
        found = poll(charged, timeout=15)
        assert found and abs(Decimal(found.group(1)) - Decimal(row["cost_usd"])) < Decimal("1e-9")
        journal = journals / "client_interaction.jsonl"
        line = poll(lambda: journal.exists() and next((json.loads(x) for x in journal.read_text().splitlines()
                                                       if "house-model" in x), None), timeout=15)
        assert line["usage_estimated"] is True


def test_dashscope_is_priced_at_the_rates_the_setting_gives(tmp_path):
    """The price table has no Alibaba provider: DashScope's Qwen models cost what the prices setting says (docs/
    spend.md), whole and streamed, each at the usage DashScope reported (a model it leaves out is unpriced:
    tests/unit/test_prices.py, at DashScope's own URL; this fake's, on loopback, would be self-hosted)."""
    from tests.fakes.fake_dashscope import FakeDashScope
    db = tmp_path / "keys.db"
    rates = {"qwen-plus*": {"input_mtok": "0.4", "output_mtok": "1.2"}}
    with FakeDashScope(api_key="ds-key") as ds, running_proxy(
            BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY="ds-key", ENABLE_AUTH="true",
            API_KEY_SECRET="admin", KEYS_DB=str(db), PRICES=json.dumps({"table": "none", "models": rates})) as p:
        client = openai_sdk(p, key=create(db, "qwen"))
        whole = client.chat.completions.create(model="qwen-plus", messages=MSG)
        streamed = [c for c in client.chat.completions.create(model="qwen-plus-latest", messages=MSG, stream=True,
                                                              stream_options={"include_usage": True}) if c.usage]
        rows = poll(lambda: (lambda r: r if sum(int(x["requests"]) for x in r) == 2 else None)(usage_rows(db, "qwen")),
                    timeout=15)
    by_model = {r["model"]: r for r in rows}
    for model, usage in (("qwen-plus", whole.usage), ("qwen-plus-latest", streamed[-1].usage)):
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        expected = (usage.prompt_tokens * Decimal("0.4") + usage.completion_tokens * Decimal("1.2")) / M
        assert Decimal(by_model[model]["cost_usd"]) == expected and by_model[model]["unpriced_requests"] == "0"


# ---------------------------------------------------------------- keyless streams
KEYLESS_PRICES = json.dumps({"models": {"priced-*": {"input_mtok": 2, "output_mtok": 8}}})
KEYLESS_USAGE = {"prompt_tokens": 1_000, "completion_tokens": 250, "total_tokens": 1_250}
KEYLESS_COST = (1_000 * 2 + 250 * 8) / M  # $0.004 a request


def completion_stream(model: str) -> Stream:
    base = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model}
    pieces = [{**base, "choices": [{"text": t, "index": 0, "logprobs": None, "finish_reason": f}]}
              for t, f in (("o", None), ("k", "stop"))]
    return Stream([*pieces, {**base, "choices": [], "usage": dict(KEYLESS_USAGE)}, "[DONE]"])


def cost_in_metrics(p, model: str) -> Decimal | None:
    metrics = requests.get(p.url + "/metrics", timeout=10).text
    found = re.search(rf'^cot_proxy_cost_usd_total\{{key="none",model="{re.escape(model)}"\}} (\S+)$', metrics, re.M)
    return Decimal(found.group(1)) if found else None


def test_a_keyless_stream_that_costs_money_is_priced_and_its_client_sees_no_usage(tmp_path):
    """No team key, no budget, a client that does not ask for usage, an upstream that (as OpenAI's) sends a stream
    usage only when asked: a model priced above 0 is charged its real usage in /metrics, on the chat and legacy
    completions APIs and on every translated door (each makes a chat stream upstream); the chat client gets the
    bytes it would have got had nobody asked. A self-hosted model priced 0 goes as the client wrote it. An upstream
    that sends no usage even asked is charged the estimate, flagged."""
    journals = tmp_path / "logs"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, PRICES=KEYLESS_PRICES,
                                             LOG_DIR=str(journals), SELF_HOSTED="true") as p:
        fake.accepts_developer = fake.accepts_null_content = True
        fake.nulls_stream_usage = True  # OpenAI's shape: `"usage":null` on every chunk of a stream asked for it
        fake.usage = dict(KEYLESS_USAGE)
        chat = {"messages": MSG, "stream": True}

        def raw_stream(model: str) -> tuple[bytes, dict]:
            r = requests.post(p.base_url + "/chat/completions", json={**chat, "model": model}, timeout=30)
            assert r.status_code == 200, r.text
            return r.content, fake.received[-1].json()

        priced, priced_sent = raw_stream("priced-chat")
        free, free_sent = raw_stream("house-model")  # declared self-hosted (SELF_HOSTED): priced 0
        assert priced_sent["stream_options"] == {"include_usage": True}
        assert "stream_options" not in free_sent
        assert b'"usage"' not in priced and b'"usage"' not in free
        assert priced.replace(b"priced-chat", b"house-model") == free  # byte for byte

        chunks = list(openai_sdk(p).chat.completions.create(model="priced-sdk", messages=MSG, stream=True))
        assert chunks and all(c.usage is None for c in chunks)
        fake.add(completion_stream("priced-completions"))
        assert [c.choices[0].text for c in openai_sdk(p).completions.create(
            model="priced-completions", prompt="hi", stream=True)] == ["o", "k"]
        assert fake.received[-1].json()["stream_options"] == {"include_usage": True}

        with openai_sdk(p).responses.stream(model="priced-responses", input="hi") as events:
            assert events.get_final_response().usage.output_tokens == 250
        with anthropic_sdk(p).messages.stream(model="priced-messages", max_tokens=500, messages=MSG) as stream:
            assert stream.get_final_message().usage.output_tokens == 250
        assert list(google_sdk(p).models.generate_content_stream(model="priced-google", contents="hi"))
        assert list(ollama.Client(host=p.url).chat(model="priced-ollama", messages=MSG, stream=True))

        models = ("priced-chat", "priced-sdk", "priced-completions", "priced-responses", "priced-messages",
                  "priced-google", "priced-ollama")
        costs = poll(lambda: (lambda c: c if None not in c.values() else None)(
            {m: cost_in_metrics(p, m) for m in models}), timeout=15)
        assert all(abs(cost - KEYLESS_COST) < Decimal("1e-9") for cost in costs.values()), costs

        fake.sends_stream_usage = False  # llama.cpp's server, priced: ignores the question
        assert list(openai_sdk(p).chat.completions.create(model="priced-estimated", messages=MSG, stream=True))
        assert poll(lambda: cost_in_metrics(p, "priced-estimated"), timeout=15) > 0
        journal = journals / "client_interaction.jsonl"
        line = poll(lambda: journal.exists() and next((json.loads(x) for x in journal.read_text().splitlines()
                                                       if "priced-estimated" in x), None), timeout=15)
        assert line["usage_estimated"] is True


def test_a_keyless_stream_relayed_as_it_comes_is_priced(tmp_path):
    """Anthropic's Messages relayed natively (FRONTS_PASSTHROUGH), no key: a model priced above 0 is charged the
    usage its events carry, read from the bytes as they pass."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, PRICES=KEYLESS_PRICES,
                                             FRONTS_PASSTHROUGH="messages") as p:
        fake.add(anthropic_stream({"input_tokens": 1_000, "output_tokens": 1}, 250))
        with anthropic_sdk(p).messages.stream(model="priced-relayed", max_tokens=500, messages=MSG) as stream:
            assert stream.get_final_text() == "cached"
        assert abs(poll(lambda: cost_in_metrics(p, "priced-relayed"), timeout=15) - KEYLESS_COST) < Decimal("1e-9")
