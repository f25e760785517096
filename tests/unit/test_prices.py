"""The price table and the pricer (argoproxy/spend/): the shipped table is exactly what the pinned genai-prices
gives, our pricer charges what genai_prices.calc_price charges for the same usage on the same day, every usage
shape is read into the counts the rates price, and each deployment is priced by the right provider."""

from __future__ import annotations

import contextlib
import http.server
import json
import random
import threading
import time
import warnings
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from argoproxy.config.price_settings import PRICE_KEYS, PriceSettings, parse_prices
from argoproxy.config.settings import SettingsError, load_settings
from argoproxy.spend.pricer import DECLARED, SELF_HOSTED, SETTING, Pricer, private_address
from argoproxy.spend.refresh import SHIPPED_TABLE, table_from
from argoproxy.spend.table import load_table
from argoproxy.spend.table_rules import check_table
from argoproxy.spend.units import UNITS, Rates, dollars, nano
from argoproxy.spend.usage_shapes import counts_of

genai_prices = pytest.importorskip("genai_prices")
DAYS = [datetime(2024, 3, 1, 12, tzinfo=timezone.utc), datetime(2025, 6, 1, 3, tzinfo=timezone.utc),
        datetime(2026, 11, 1, 20, tzinfo=timezone.utc)]


def test_the_shipped_table_is_the_pinned_genai_prices():
    from genai_prices.data import providers
    shipped = json.loads(SHIPPED_TABLE.read_text())
    made = json.loads(json.dumps(table_from(providers, genai_prices.__version__)))
    shipped["about"].pop("refreshed"), made["about"].pop("refreshed")
    assert shipped == made
    assert shipped["about"] == {"source": "genai-prices", "version": "0.2.3", "licence": "MIT"}
    check_table(shipped)  # what a table in any other file must pass before use (a start reads this one unchecked)


def test_each_rate_counts_what_genai_prices_says_it_counts():
    from genai_prices.data_units import unit_data
    by_price_key = {unit["price_key"]: (count, unit) for count, unit in unit_data.items()}
    assert set(PRICE_KEYS) == set(UNITS)
    for key, unit in UNITS.items():
        count, theirs = by_price_key[key]
        assert (unit.count, unit.per, dict(unit.dims)) == (count, theirs["per"], theirs["dimensions"]), key


def test_every_model_is_priced_as_calc_price_prices_it_on_its_day():
    """Every model of every provider, on three days (historic prices, off-peak hours), with usages holding
    cached reads, cache writes, reasoning and audio tokens in amounts that cross the tiers: the same dollars to
    the nano-dollar, and no model found that genai-prices does not find."""
    from genai_prices import Usage, calc_price
    from genai_prices.data import providers
    table = load_table()
    draw = random.Random(45)
    compared = 0
    for provider in providers:
        ours = table.provider(provider.id)
        for model in provider.models:
            for day in DAYS:
                counts = _usage(draw)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        expected = calc_price(Usage(**counts), model.id, provider_id=provider.id,
                                              genai_request_timestamp=day).total_price
                    except LookupError:  # an id its own clauses do not match: not found here either
                        assert table.model(ours, model.id) is None or table.model(ours, model.id).id != model.id
                        continue
                    except ValueError:  # usage the model's units cannot split (genai-prices refuses it)
                        continue
                found = table.model(ours, model.id)
                rates = found.rates(day) if found is not None else None
                if rates is None:  # priced only by what no usage reports (audio hours...): unpriced here
                    assert expected == 0, (provider.id, model.id)
                    continue
                assert abs(rates.charge(counts) - expected) < Decimal("1e-9"), (provider.id, model.id, day, counts)
                compared += 1
    assert compared > 6000


def _usage(draw: random.Random) -> dict[str, int]:
    given = draw.choice([1_000, 150_000, 400_000])
    cached = draw.randint(0, given // 2)
    written = draw.randint(0, (given - cached) // 2)
    audio = draw.choice([0, 0, draw.randint(0, (given - cached - written) // 4)])
    out = draw.randint(0, 60_000)
    return {"input_tokens": given, "cache_read_tokens": cached, "cache_write_tokens": written,
            "input_audio_tokens": audio, "output_tokens": out, "output_reasoning_tokens": draw.randint(0, out)}


def test_a_hand_priced_usage():
    """gpt-4o on the table: $2.50 per million input, $1.25 per million cached, $10 per million output. 10,000
    input tokens of which 4,000 cached and 2,000 output of which 500 reasoning: 6,000 * 2.5 + 4,000 * 1.25 +
    2,000 * 10 per million = $0.04 (reasoning is inside the output: not charged twice)."""
    found = load_table().model(load_table().provider("openai"), "gpt-4o")
    rates = found.rates(DAYS[2])
    counts = counts_of({"prompt_tokens": 10_000, "completion_tokens": 2_000,
                        "prompt_tokens_details": {"cached_tokens": 4_000},
                        "completion_tokens_details": {"reasoning_tokens": 500}})
    assert nano(rates.charge(counts)) == 40_000_000 and dollars(40_000_000) == "0.04"


@pytest.mark.parametrize("usage, counts", [
    ({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
      "prompt_tokens_details": {"cached_tokens": 60, "audio_tokens": 5},
      "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0}},
     {"input_tokens": 100, "cache_read_tokens": 60, "input_audio_tokens": 5, "output_tokens": 20,
      "output_reasoning_tokens": 12}),
    ({"prompt_tokens": 100, "completion_tokens": 20, "prompt_cache_hit_tokens": 30, "prompt_cache_miss_tokens": 70},
     {"input_tokens": 100, "cache_read_tokens": 30, "output_tokens": 20}),  # DeepSeek
    ({"input_tokens": 100, "output_tokens": 20, "total_tokens": 120, "input_tokens_details": {"cached_tokens": 40},
      "output_tokens_details": {"reasoning_tokens": 8}},
     {"input_tokens": 100, "cache_read_tokens": 40, "output_tokens": 20, "output_reasoning_tokens": 8}),  # Responses
    ({"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 50,
      "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30}},
     {"input_tokens": 360, "cache_read_tokens": 300, "cache_write_tokens": 50, "cache_write_5m_tokens": 20,
      "cache_write_1h_tokens": 30, "output_tokens": 20}),  # Anthropic: input_tokens beside the cache
    ({"promptTokenCount": 100, "cachedContentTokenCount": 64, "candidatesTokenCount": 10, "thoughtsTokenCount": 30,
      "toolUsePromptTokenCount": 5},
     {"input_tokens": 105, "cache_read_tokens": 64, "output_tokens": 40, "output_reasoning_tokens": 30}),  # Gemini
    ({"prompt_eval_count": 26, "eval_count": 290}, {"input_tokens": 26, "output_tokens": 290}),  # Ollama
    ({"prompt_tokens": "100", "completion_tokens": -3, "prompt_tokens_details": None}, {}),  # not counts
    ({"unknown": 1}, None),
    ("usage", None),
    # OpenAI's three plain counts, every answer's (read without looking for details), and three that are not them
    ({"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}, {"input_tokens": 9, "output_tokens": 9}),
    ({"prompt_tokens": 0, "completion_tokens": 5, "total_tokens": 5}, {"output_tokens": 5}),
    ({"prompt_tokens": True, "completion_tokens": 10**15 + 1, "total_tokens": 2.0}, {}),
    ({"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}},
     {"input_tokens": 10, "cache_read_tokens": 4, "output_tokens": 2}),
    ({"prompt_tokens": 10, "completion_tokens": 2, "prompt_cache_hit_tokens": 6},
     {"input_tokens": 10, "cache_read_tokens": 6, "output_tokens": 2}),
])
def test_every_usage_shape_is_read_into_whole_counts(usage, counts):
    assert counts_of(usage) == counts


def test_parts_are_charged_at_their_own_rate_and_taken_out_of_their_whole():
    rates = Rates({"input_mtok": Decimal("3"), "cache_read_mtok": Decimal("0.3"), "cache_write_mtok": Decimal("3.75"),
                   "output_mtok": Decimal("15")})
    counts = counts_of({"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 300_000,
                        "cache_creation_input_tokens": 50_000})
    # 10 * 3 + 300,000 * 0.3 + 50,000 * 3.75 + 20 * 15, per million
    assert rates.charge(counts) == Decimal("0.27783")
    without_cache_rate = Rates({"input_mtok": Decimal("3"), "output_mtok": Decimal("15")})
    assert without_cache_rate.charge(counts) == Decimal("350010") * 3 / 1_000_000 + Decimal("0.0003")


def test_the_most_a_request_may_cost_uses_the_dearest_rate_of_each_side():
    rates = Rates({"input_mtok": Decimal("3"), "cache_write_mtok": Decimal("3.75"), "cache_read_mtok": Decimal("0.3"),
                   "output_mtok": Decimal("15"), "requests_kcount": Decimal("5")})
    assert rates.most(1_000_000, 100_000) == Decimal("3.75") + Decimal("1.5") + Decimal("0.005")


def test_a_deployment_is_priced_by_its_url_its_vendor_or_as_self_hosted():
    pricer = Pricer()
    day = DAYS[2]
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    openai = pricer.source("https://api.openai.com/v1")
    assert pricer.cost(usage, ("gpt-4o-mini",), openai, day).nanos == 150_000_000  # $0.15 per million
    anthropic = pricer.source("https://api.anthropic.com")
    assert pricer.cost(usage, ("claude-3-5-haiku-latest",), anthropic, day).by == "anthropic"
    local = pricer.source("http://127.0.0.1:8080/v1", self_hosted=True)
    cost = pricer.cost(usage, ("qwen3-8b",), local, day)
    assert (cost.nanos, cost.priced, cost.by) == (0, True, SELF_HOSTED)
    said = pricer.source("http://gpu1.example.com:8080/v1", says_local=lambda: ("llama.cpp (GET /props)", True))
    assert pricer.cost(usage, ("gpt-4o",), said, day)[:3] == (0, True, SELF_HOSTED)  # what the server says, any host
    unknown = pricer.source("https://llm.example.com/v1")
    cost = pricer.cost(usage, ("qwen3-8b",), unknown, day)
    assert (cost.nanos, cost.priced) == (0, False)  # unpriced: flagged, never silently free
    cost = pricer.cost(usage, ("gpt-nonexistent-9",), openai, day)
    assert (cost.priced, cost.by) == (False, "openai")
    argo = pricer.source("https://apps.inside.anl.gov/argoapi/api/v1/", lambda m: ("anthropic", ("claude-opus-4.1",)))
    assert pricer.cost(usage, ("claudeopus41",), argo, day).nanos == 15_000_000_000
    assert pricer.cost(None, ("gpt-4o",), openai, day) is None


def test_a_url_is_priced_by_its_host_not_by_credentials_written_before_it():
    pricer = Pricer()
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    with_user = pricer.source("https://ops:pw12345@api.openai.com/v1?api_key=k")
    assert pricer.cost(usage, ("gpt-4o-mini",), with_user, DAYS[2]).nanos == 150_000_000
    spoofed = pricer.source("https://api.openai.com@llm.example.com/v1")  # the host is llm.example.com
    assert pricer.cost(usage, ("gpt-4o-mini",), spoofed, DAYS[2]).by == "openai (by name)"  # not by its URL


def test_prices_show_names_a_url_without_its_credentials(capsys):
    from argoproxy.spend.show import show_model
    assert show_model("gpt-4o", "https://ops:pw12345@llm.example.com/v1?api_key=tok98765") == 0
    out = capsys.readouterr()
    assert "llm.example.com" in out.err and "pw12345" not in out.err and "tok98765" not in out.err
    assert out.out.startswith("openai/gpt-4o on ")  # charged by its name: at its maker's rates


def test_prices_show_answers_with_the_prices_setting(tmp_path):
    """`prices show` as a user runs it beside their config.yaml: a model the setting prices is shown at the
    setting's rates (charged wherever it is served), a table of one's own is the one read, `table: none` prices only
    the setting's models; through run_app.sh too."""
    import subprocess
    import sys
    from tests.proxy_process import ROOT, clean_environ
    shipped = json.loads(SHIPPED_TABLE.read_text())
    own = {**shipped, "providers": [p for p in shipped["providers"] if p["id"] == "anthropic"]}
    (tmp_path / "own.json").write_text(json.dumps(own))
    (tmp_path / "config.yaml").write_text(f"prices:\n  table: {tmp_path / 'own.json'}\n  models:\n"
                                          "    \"house-*\": {input_mtok: 0.6, output_mtok: 1.2}\n")
    (tmp_path / "none.yaml").write_text("prices: {table: none, models: {solo: {input_mtok: 1}}}\n")
    env = {**clean_environ(("COT_PROXY_",)), "HOME": str(tmp_path), "COT_PROXY_VENV": sys.prefix}

    def show(*args: str, command: tuple[str, ...] = (sys.executable, str(ROOT / "cot_proxy.py"))):
        out = subprocess.run([*command, "prices", "show", *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60)
        return out.returncode, out.stdout + out.stderr

    assert show("House-70B", "--date", "2025-06-01") == (
        0, "prices setting 'house-*' on 2025-06-01: input_mtok $0.6, output_mtok $1.2\n")
    code, said = show("gpt-4o")  # OpenAI's model: not in this table, which has only Anthropic's
    assert code == 1 and "no price for 'gpt-4o'" in said
    assert show("claude-3-5-haiku", "--provider", "anthropic")[0] == 0
    assert show("solo", "--config", "none.yaml")[1].startswith("prices setting 'solo'")
    assert show("gpt-4o", "--config", "none.yaml") == (
        1, "cot_proxy prices: no price for 'gpt-4o' (the prices setting has table: none and does not name it)\n")
    assert show("house-1", command=(str(ROOT / "run_app.sh"),))[1].startswith("prices setting 'house-*'")


def test_prices_refresh_that_cannot_fetch_or_write_says_so_in_one_line(tmp_path):
    """`prices refresh --url` whose URL does not answer, or answers what is no price data, and an --output that
    cannot be written: one line each, the URL's credentials masked (each was a traceback)."""
    import subprocess
    import sys
    from tests.proxy_process import ROOT, clean_environ, free_port
    env = {**clean_environ(("COT_PROXY_",)), "HOME": str(tmp_path)}

    def refresh(*args: str) -> tuple[int, list[str]]:
        out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "prices", "refresh", *args], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60)
        return out.returncode, out.stderr.splitlines()

    closed = f"http://ops:pw12345@127.0.0.1:{free_port()}/prices.json"
    assert refresh("--url", closed, "--output", str(tmp_path / "t.json")) == (1, [
        f"cot_proxy prices: no price data could be read from http://***@127.0.0.1:{closed.split(':')[3]}: "
        "ConnectionError: [Errno 111] Connection refused"])
    (tmp_path / "a-file").write_text("")
    assert refresh("--output", str(tmp_path / "a-file" / "t.json")) == (1, [
        f"cot_proxy prices: cannot write {tmp_path / 'a-file' / 't.json'} ({tmp_path / 'a-file'}: File exists)"])


class _PriceData(http.server.BaseHTTPRequestHandler):
    """What `prices refresh --url` may be pointed at: an error status, a payload of the wrong shape, no providers,
    an answer that drips (one byte a second, never whole)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        bodies = {"/wrong-shape": json.dumps([{"id": "x", "name": 3, "models": "no"}]).encode(), "/none": b"[]",
                  "/negative": _genai_data(match={"equals": "cheap-1"}, prices={"input_mtok": -1, "output_mtok": 2}),
                  "/backtracks": _genai_data(match={"regex": "^(a+)+$"}, prices={"input_mtok": 1})}
        if self.path == "/endless":  # fast and without end, chunked
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"[" + b" " * (1 << 20)
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            return
        if self.path.startswith("/missing"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if self.path == "/drip":
            self.send_header("Content-Length", "1000")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(1)
            return
        self.send_header("Content-Length", str(len(bodies[self.path])))
        self.end_headers()
        self.wfile.write(bodies[self.path])


def _genai_data(match: dict, prices: dict) -> bytes:
    """genai-prices' data file (its v2 JSON) with one provider of one model, which genai-prices itself accepts."""
    return json.dumps([{"id": "evil", "name": "Evil", "api_pattern": r"https://api\.evil\.example",
                        "models": [{"id": "cheap-1", "match": match, "prices": prices}]}]).encode()


@pytest.fixture()
def price_data():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PriceData)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_prices_refresh_from_an_answer_that_is_no_price_data_says_so_in_one_line_without_credentials(
        tmp_path, price_data):
    """An error status (the library's text quoted the URL whole, credentials too, over three lines), a payload of the
    wrong shape (a validation report of many lines), an empty provider list (written, it made every model unpriced):
    one line each, nothing written."""
    import subprocess
    import sys
    from tests.proxy_process import ROOT, clean_environ
    env = {**clean_environ(("COT_PROXY_",)), "HOME": str(tmp_path)}
    output = tmp_path / "t.json"

    def refresh(url: str) -> tuple[int, list[str]]:
        out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "prices", "refresh", "--url", url,
                              "--output", str(output)], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)
        return out.returncode, out.stderr.splitlines()

    code, lines = refresh(f"http://ops:pw12345@{price_data}/missing?api_key=sk-abcdef123456")
    assert code == 1 and len(lines) == 1 and "404 Not Found" in lines[0], lines
    assert "pw12345" not in lines[0] and "abcdef123456" not in lines[0], lines
    code, lines = refresh(f"http://{price_data}/wrong-shape")
    assert code == 1 and lines == [f"cot_proxy prices: no price data could be read from http://{price_data}/wrong-"
                                   "shape: ValidationError: 3 validation errors for list[Provider]"], lines
    assert refresh(f"http://{price_data}/none") == (
        1, [f"cot_proxy prices: no price data could be read from http://{price_data}/none"])
    assert list(tmp_path.iterdir()) == []


def test_prices_refresh_refuses_a_hostile_table_naming_its_entry_and_writes_nothing(tmp_path, price_data):
    """What `prices refresh --url` wrote before: a negative price (a key's spend went down, never refused), a clause
    that backtracks (2.56 s of a worker's CPU on a 27-character name), an answer without end (read whole into
    memory until the deadline). Each is one line naming what, and nothing is written."""
    import subprocess
    import sys
    from tests.proxy_process import ROOT, clean_environ
    env = {**clean_environ(("COT_PROXY_",)), "HOME": str(tmp_path)}
    output = tmp_path / "t.json"

    def refresh(path: str) -> tuple[int, list[str]]:
        out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "prices", "refresh", "--url",
                              f"http://{price_data}{path}", "--output", str(output)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        return out.returncode, out.stderr.splitlines()

    refused = "cot_proxy prices: the price data is refused, nothing written: model evil/cheap-1: "
    assert refresh("/negative") == (1, [refused + "input_mtok: expected a price from 0 to 1000000 dollars, got '-1'"])
    assert refresh("/backtracks") == (1, [refused + "regex '^(a+)+$': a repeated group holds a repeat (as (a+)+): its "
                                          "matching time can grow exponentially"])
    start = time.monotonic()
    assert refresh("/endless") == (1, [f"cot_proxy prices: no price data could be read from http://{price_data}/"
                                       "endless: TooLong: the answer is longer than 64 MiB"])
    assert time.monotonic() - start < 30  # refused at its bound, not at the minute's deadline
    assert list(tmp_path.iterdir()) == []


def test_prices_refresh_from_an_answer_that_never_ends_stops_at_its_deadline(price_data, monkeypatch):
    """genai-prices bounds each read of the answer (10 s), not the whole: one that drips held the command for ever."""
    from argoproxy.spend import refresh
    monkeypatch.setattr(refresh, "FETCH_SECONDS", 1)
    start = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        refresh.installed_table(f"http://{price_data}/drip")
    assert str(stopped.value) == f"cot_proxy prices: no price data could be read from http://{price_data}/drip: " \
        "no answer within 1 s"
    assert time.monotonic() - start < 8


def test_which_deployments_answers_may_cost_money(tmp_path):
    """What the chat door asks a stream's usage for, whoever the client: a model priced above 0, or unpriced;
    not a self-hosted one priced 0 (decided without reading the table) or one the setting gives 0."""
    moment = DAYS[2].timestamp()
    pricer = Pricer(parse_prices({"models": {"gratis": {"input_mtok": 0}}}))
    assert pricer.source("https://api.openai.com/v1").charges(("gpt-4o",), moment)
    assert pricer.source("https://api.openai.com/v1").charges(("gpt-nonexistent-9",), moment)  # unpriced
    assert pricer.source("https://llm.example.com/v1").charges(("qwen3-8b",), moment)
    assert not pricer.source("https://api.openai.com/v1").charges(("gratis",), moment)
    assert not pricer.source("http://127.0.0.1:8080/v1", self_hosted=True).charges(("qwen3-8b",), moment)
    assert pricer.source("http://127.0.0.1:8080/v1").charges(("qwen3-8b",), moment)  # unpriced: an address says nothing
    bare = Pricer()
    asked = []
    local = bare.source("http://vllm:8000/v1", says_local=lambda: asked.append(1) or ("vLLM (GET /version)", True))
    assert local.costs_nothing and not local.charges(("qwen3-8b",), moment) and bare._table is None
    assert local.why_free() == "vLLM (GET /version)" and asked == [1]  # asked once
    priced_here = Pricer(parse_prices({"models": {"qwen*": {"input_mtok": 0.1}}})).source("http://vllm:8000/v1",
                                                                                         self_hosted=True)
    assert not priced_here.costs_nothing and priced_here.charges(("qwen3-8b",), moment)
    own = tmp_path / "prices.json"  # a table of one's own whose provider serves a private host
    table = json.loads(SHIPPED_TABLE.read_text())
    table["providers"].insert(0, {"id": "house", "api_pattern": r"http://vllm:8000", "fallback": ["openai"],
                                  "models": []})
    own.write_text(json.dumps(table))
    housed = Pricer(parse_prices({"table": str(own)})).source("http://vllm:8000/v1", self_hosted=True)
    assert not housed.costs_nothing and housed.charges(("gpt-4o",), moment)


def test_historic_prices_follow_the_day_of_the_request():
    pricer = Pricer()
    deepseek = pricer.source("https://api.deepseek.com")
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    peak = pricer.cost(usage, ("deepseek-chat",), deepseek, datetime(2025, 3, 1, 12, tzinfo=timezone.utc))
    off_peak = pricer.cost(usage, ("deepseek-chat",), deepseek, datetime(2025, 3, 1, 20, tzinfo=timezone.utc))
    assert peak.nanos != off_peak.nanos


@pytest.mark.parametrize("url, free", [("http://localhost:8080", True), ("http://10.1.2.3:8000/v1", True),
                                       ("http://vllm:8000/v1", True), ("http://gpu1.lan/v1", True),
                                       ("http://ollama.default.svc.cluster.local:11434", True),
                                       ("http://[::1]:8080", True), ("https://api.together.xyz/v1", False),
                                       ("https://llm.example.com", False), ("", False),
                                       # shared address space (Tailscale's, a carrier's NAT): never a public host
                                       ("http://100.101.102.103:8000/v1", True), ("http://8.8.8.8/v1", False)])
def test_private_addresses(url, free):
    assert private_address(url) is free


def test_the_prices_setting_prices_a_model_wherever_it_is_served():
    settings = parse_prices({"models": {"my-*": {"input_mtok": 0.1, "output_mtok": "0.2"}}})
    pricer = Pricer(settings)
    cost = pricer.cost({"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}, ("my-llama",),
                       pricer.source("https://api.openai.com/v1"), DAYS[0])
    assert (cost.nanos, cost.by, cost.model) == (300_000_000, SETTING, "my-*")
    only = Pricer(parse_prices({"table": "none", "models": {"a": {"input_mtok": 1}}}))
    assert only.table is None
    assert only.cost({"prompt_tokens": 5}, ("gpt-4o",), only.source("https://api.openai.com/v1"), DAYS[0]).priced is False


@pytest.mark.parametrize("value, error", [
    ([], "expected a mapping"), ({"model": {}}, ".model: unknown key"), ({"models": {"x": {"input": 1}}},
                                                                         ".models.x.input: not a rate"),
    ({"models": {"x": {"input_mtok": -1}}}, "from 0 to"), ({"models": {"x": {"input_mtok": "abc"}}}, "a number"),
    ({"models": {"x": {"input_mtok": True}}}, "a number"), ({"models": {"": {"input_mtok": 1}}}, "non-empty"),
    ("{not json", "not valid JSON"), ({"table": 3}, ".table: expected a file path"),
    ({"models": []}, ".models: expected a mapping of model name to rates, got list"),
    ({"models": ""}, ".models: expected a mapping of model name to rates, got str"),
])
def test_a_bad_prices_setting_says_where(value, error):
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(".", r"\.")):
        parse_prices(value)


def test_the_prices_setting_from_json():
    assert parse_prices('{"models": {"x": {"input_mtok": 0.1}}}') == PriceSettings(models=(("x", (("input_mtok", Decimal("0.1")),)),))
    assert parse_prices("") == PriceSettings()
    assert parse_prices({"models": None}) == PriceSettings()  # `models:` left empty in YAML


def test_a_mistyped_prices_key_is_named_in_the_one_line():
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"PRICES": '{"tabel": "none"}'})
    assert str(err.value) == "PRICES.tabel: unknown key (prices takes `table` and `models`)"


def test_a_table_the_setting_names_is_checked_before_serving(tmp_path):
    from argoproxy.spend.table import table_problem
    assert "cannot read the price table" in table_problem(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"providers": [{"id": "x"}]}')
    assert table_problem(str(tmp_path / "bad.json")) == (
        f"the price table {tmp_path / 'bad.json'} is refused: provider 'x': api_pattern: expected a regular expression,"
        " got None")
    assert table_problem(str(SHIPPED_TABLE)) is None


@pytest.mark.timeout(30)
def test_a_table_that_is_no_table_stops_startup_with_one_line(tmp_path):
    """A provider's api_pattern that is no regular expression, JSON nested past Python's recursion limit: each was
    a traceback at start-up (and in `prices show`, which did not check the table); a FIFO (its open waits for a
    writer) hung it."""
    import os
    import subprocess
    import sys
    from argoproxy.spend.table import table_problem
    from tests.proxy_process import ROOT, clean_environ
    (tmp_path / "pattern.json").write_text(json.dumps({"about": {}, "providers": [{"id": "x", "api_pattern": "(",
                                                                                    "models": []}]}))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    os.mkfifo(tmp_path / "fifo.json")
    assert table_problem(str(tmp_path / "deep.json")) == (
        f"{tmp_path / 'deep.json'} is not a price table (`cot-proxy prices refresh --output` writes one): "
        "RecursionError: maximum recursion depth exceeded while decoding a JSON array from a unicode string")
    fifo = tmp_path / "fifo.json"
    assert table_problem(str(fifo)) == f"cannot read the price table {fifo}: not a file"
    env = {**clean_environ(("COT_PROXY_",)), "HOME": str(tmp_path), "TARGET_BASE_URL": "http://127.0.0.1:9/v1",
           "PRICES": json.dumps({"table": str(tmp_path / "pattern.json")})}
    out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=30)
    line = (f"cot_proxy: bad setting PRICES: the price table {tmp_path / 'pattern.json'} is refused: provider 'x': "
            "api_pattern: not a regular expression: missing ), unterminated subpattern at position 0")
    assert (out.returncode, out.stderr.splitlines()) == (2, [line]), out.stderr
    out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "prices", "show", "gpt-4o"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=30)  # reads the table as serving would
    assert (out.returncode, out.stderr.splitlines()) == (2, [line]), out.stderr


def test_a_model_name_past_its_bound_is_no_models():
    """Client input: a megabyte-long model name is never matched against the table's clauses (a scan per request)
    nor kept among a source's matches."""
    pricer = Pricer()
    source = pricer.source("https://api.openai.com/v1")
    long_name = "gpt-4o" + "x" * 1_000_000
    cost = pricer.cost({"prompt_tokens": 10}, (long_name,), source, DAYS[0])
    assert cost.priced is False and all(len(name) <= 256 for names in source._found for name in names)


def test_dashscope_has_no_price_in_the_table_until_the_setting_gives_one():
    """The shipped table has no Alibaba provider (docs/spend.md): DashScope's models are unpriced, not free, until
    the prices setting names them."""
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    pricer = Pricer()
    assert not any("alibaba" in p.id or "dashscope" in p.id for p in pricer.table.providers)
    cost = pricer.cost(usage, ("qwen-plus",), pricer.source("https://dashscope.aliyuncs.com/api/v1/"), DAYS[0])
    assert (cost.nanos, cost.priced) == (0, False)
    given = Pricer(parse_prices({"models": {"qwen-plus*": {"input_mtok": "0.4", "output_mtok": "1.2"}}}))
    cost = given.cost(usage, ("qwen-plus-latest",), given.source("https://dashscope.aliyuncs.com/api/v1/"), DAYS[0])
    assert (cost.nanos, cost.priced, cost.by) == (1_600_000_000, True, SETTING)


def test_self_hosted_is_declared_for_the_target_or_per_entry():
    """SELF_HOSTED declares TARGET_BASE_URL's server; a `models` entry declares its own; a declaration no upstream
    takes is a warning; a value that is no boolean stops start-up naming the entry."""
    from argoproxy.config.routing_settings import declared_self_hosted
    from argoproxy.config.settings import load
    from argoproxy.serve.free_upstreams import upstreams
    single = load({}, environ={"TARGET_BASE_URL": "http://gpu1:8000/v1", "SELF_HOSTED": "true"})
    assert [(u.url, u.declared) for u in upstreams(single.settings)] == [("http://gpu1:8000/v1/", True)]
    own = {"name": "phi", "backend": "openai", "base_url": "http://studio:1234/v1", "self_hosted": True}
    routed = load({}, environ={"SELF_HOSTED": "true", "MODELS": json.dumps([own, {**own, "self_hosted": False}])})
    settings = routed.settings
    assert [declared_self_hosted(settings.self_hosted, settings.backend, e) for e in settings.models] == [True, False]
    assert "SELF_HOSTED is set, but every `models` entry names its own upstream (an entry says " \
        "`self_hosted: true` itself), so it is not used" in routed.warnings
    with pytest.raises(SettingsError, match=r"MODELS\[0\]\.self_hosted: expected true or false, got 'maybe'"):
        load({}, environ={"MODELS": json.dumps([{**own, "self_hosted": "maybe"}])})
    source = Pricer().source("http://studio:1234/v1", self_hosted=True)
    assert source.why_free() == DECLARED and source.costs_nothing


@pytest.mark.parametrize("url", ["http://127.0.0.1:4000/v1", "http://[::1]:4000/v1", "http://10.1.2.3:8000/v1",
                                 "http://vllm:8000/v1", "http://gpu1.lan/v1", "http://llm.internal/v1",
                                 "http://relay.corp/v1", "http://100.101.102.103:8000/v1", "http://0x08080808/v1"])
def test_the_address_alone_makes_no_model_free(url):
    """Loopback, private, single-label, .lan/.internal/.corp, 100.64/10 and a numeric spelling of a public address
    (0x08080808 is 8.8.8.8) each made every model free: a relay there is charged by the model's name (gpt-4o at
    OpenAI's rates), and a model the table does not know is unpriced, not free."""
    pricer = Pricer()
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    source = pricer.source(url, says_local=lambda: (None, True))  # asked: it said nothing
    cost = pricer.cost(usage, ("gpt-4o",), source, DAYS[2])
    assert (cost.nanos, cost.priced, cost.by) == (12_500_000_000, True, "openai (by name)")
    assert pricer.cost(usage, ("qwen3-8b",), source, DAYS[2]).priced is False
    assert not source.costs_nothing and source.charges(("gpt-4o",), DAYS[2].timestamp())


def test_the_table_is_scanned_by_name_once_while_the_upstream_cannot_be_asked(monkeypatch):
    """An upstream that cannot be reached is asked again later, so what is decided on its answer is not kept; the
    scan of the table by the model's name does not depend on that answer, and each request did it again (8x a
    chat request's CPU). It is kept, and the price is the same."""
    pricer = Pricer()
    source = pricer.source("http://10.0.0.9:8000/v1", says_local=lambda: (None, False))  # could not be reached
    scans = []
    table = pricer.table
    by_name = table.by_name
    monkeypatch.setattr(table, "by_name", lambda name, moment: scans.append(name) or by_name(name, moment))
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    for _ in range(3):
        assert pricer.cost(usage, ("gpt-4o",), source, DAYS[2]).nanos == 12_500_000_000
    assert scans == ["gpt-4o"]


@pytest.mark.parametrize("spelled", ["~/own.json", "~/own.json/."])
def test_a_table_path_is_read_as_the_start_up_check_reads_it(tmp_path, spelled):
    """The start-up check expanded `~` and read `x/.` as x, but what priced requests opened the path as written:
    a table the check had passed was a FileNotFoundError traceback at start-up and in `prices show`."""
    import subprocess
    import sys
    from tests.proxy_process import ROOT, clean_environ
    (tmp_path / "own.json").write_text(SHIPPED_TABLE.read_text())
    env = {**clean_environ(("COT_PROXY_",)), "HOME": str(tmp_path), "TARGET_BASE_URL": "http://127.0.0.1:9/v1",
           "PRICES": json.dumps({"table": spelled})}
    out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "prices", "show", "gpt-4o"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr


def test_prices_refresh_writes_the_users_own_table_which_the_proxy_then_reads(tmp_path, monkeypatch, capsys):
    """`prices refresh` rewrote argoproxy/spend/table.json, a file of the checkout git tracks (a dirty tree, and
    the next `git pull` in conflict): it writes the user's data directory, and the proxy reads that table while
    the prices setting names none (here: a model the package's does not have, which `prices show` then finds)."""
    from argoproxy.spend import refresh, table as tables
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    shipped = SHIPPED_TABLE.read_bytes()
    newer = json.loads(shipped)
    newer["providers"].insert(0, {"id": "house", "api_pattern": r"http://vllm:8000",
                                  "models": [["brand-new-1", {"equals": "brand-new-1"}, {"input_mtok": "7"}]]})
    monkeypatch.setattr(refresh, "installed_table", lambda url=None: newer)
    package_copy = tmp_path / "table.json"  # what the command once wrote, here a copy: the repository's stays
    package_copy.write_bytes(shipped)
    monkeypatch.setattr(refresh, "SHIPPED_TABLE", package_copy)
    assert refresh.main(["show", "brand-new-1"]) == 1  # the package's table does not have it
    assert refresh.main(["refresh"]) == 0
    written = tmp_path / "argoproxy" / "prices.json"
    assert f"written to {written}" in capsys.readouterr().err
    assert package_copy.read_bytes() == shipped and tables.default_table() == written
    assert refresh.main(["show", "brand-new-1"]) == 0 and "7" in capsys.readouterr().out
    written.write_text("[]")  # a refreshed table gone bad: said as a table of one's own is, not a traceback
    tables._tables.pop(str(written), None)
    assert refresh.main(["show", "gpt-4o"]) == 2
    assert f"PRICES: the price table {written} is refused: " in capsys.readouterr().err
