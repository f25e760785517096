"""Price tables are data, checked as data (argoproxy/spend/table_rules.py): a table that breaks a rule is refused
at load and at start-up with one line naming its entry; the shipped table and genai-prices' own data pass."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from argoproxy.spend.refresh import SHIPPED_TABLE, table_from
from argoproxy.spend.table import load_table, table_problem
from argoproxy.spend.table_rules import pattern_problem
from argoproxy.spend.table_rules import table_problem as data_problem

EXPONENTIAL = "a repeated group holds a repeat (as (a+)+): its matching time can grow exponentially"
ALIKE = "a repeated group's alternatives may begin alike (as (a|ab)+): its matching time can grow exponentially"


def one_model_table(match: dict, prices: object, api_pattern: str = r"https://api\.house\.example") -> dict:
    return {"about": {}, "providers": [{"id": "house", "api_pattern": api_pattern,
                                        "models": [["cheap-1", match, prices]]}]}


@pytest.mark.parametrize("prices, said", [
    ({"input_mtok": "-1"}, "input_mtok: expected a price from 0 to 1000000 dollars, got '-1'"),
    ({"output_mtok": -0.3}, "output_mtok: expected a price from 0 to 1000000 dollars, got -0.3"),
    ({"input_mtok": "NaN"}, "input_mtok: expected a price from 0 to 1000000 dollars, got 'NaN'"),
    ({"input_mtok": "Infinity"}, "input_mtok: expected a price from 0 to 1000000 dollars, got 'Infinity'"),
    ({"input_mtok": 1e400}, "input_mtok: expected a price from 0 to 1000000 dollars, got inf"),
    ({"input_mtok": True}, "input_mtok: expected a price in dollars, got True"),
    ({"input_mtok": "two"}, "input_mtok: expected a price in dollars, got 'two'"),
    ({"input_mtok": {"base": "1", "tiers": [[200000, "-2"]]}},
     "input_mtok: expected a price from 0 to 1000000 dollars, got '-2'"),
    ([{"start_date": "2025-13-01", "prices": {"input_mtok": "1"}}],
     "unreadable start_date, start_time or end_time in {'start_date': '2025-13-01', 'prices': {'input_mtok': '1'}}"),
])
def test_a_price_that_is_no_price_is_refused_naming_the_model(tmp_path, prices, said):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(one_model_table({"equals": "cheap-1"}, prices)))
    assert table_problem(str(path)) == f"the price table {path} is refused: model house/cheap-1: {said}"
    with pytest.raises(ValueError, match="cheap-1"):
        load_table(path)


@pytest.mark.parametrize("pattern, said", [
    ("^(a+)+$", EXPONENTIAL), ("(a*)*b", EXPONENTIAL), ("^(.*a){4}x", EXPONENTIAL), ("(ab?)+", EXPONENTIAL),
    ("((a)+)+", EXPONENTIAL), ("(x+x+)+y", EXPONENTIAL), ("(a{1,3})+", EXPONENTIAL),
    ("(a|ab)+", ALIKE), ("(?:.|a)*", ALIKE), ("(?i)(A|a)+", ALIKE), ("(a|)+", ALIKE),
    (r"\d*\d*\d*x", "more than 2 unbounded repeats: its matching time grows with a high power of the name's length"),
    (r"(a)\1", "back-references are not allowed"), ("(?P<n>a)(?P=n)", "back-references and conditionals are not "
                                                                       "allowed"),
    ("(?x)a b", "verbose mode (?x) is not read here"), ("a" * 1001, "longer than 1000 characters"),
    ("(", "not a regular expression: missing ), unterminated subpattern at position 0"),
])
def test_a_pattern_that_can_backtrack_without_end_is_refused(pattern, said):
    assert pattern_problem(pattern) == said


@pytest.mark.parametrize("pattern", [
    "^(?!.*-[tT][tT][sS](?:$|-))", r"^(typesafe/)?jev-1\.13(-\d{8})?$", r"^claude-opus-5[-@]\d{8}$",
    r"^composer-2\.5\[fast=false\]$", r"https://(.*\.)?googleapis\.com", r"(?:a|b)+x", r"(?:ab|cd)*", r"(\d{8})+",
    r"(https?://)?([^.]*\.)?(?:openai\.azure\.com|azure-api\.net)", ".*.*x", r"a{2,}", r"[]a]+", r"\N{EN DASH}+",
])
def test_patterns_that_cannot_run_away_pass(pattern):
    assert pattern_problem(pattern) is None


def test_the_figure_of_the_issue_a_backtracking_clause_is_refused_at_load(tmp_path):
    """`^(a+)+$` made matching a 27-character model name cost 2.56 s of a worker's CPU (x4 per 2 more characters):
    refused at load, so no name is ever matched against it; the same in a provider's api_pattern."""
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(one_model_table({"or": [{"starts_with": "x"}, {"regex": "^(a+)+$"}]},
                                               {"input_mtok": "1"})))
    assert table_problem(str(path)) == f"the price table {path} is refused: model house/cheap-1: regex '^(a+)+$': " \
                                       + EXPONENTIAL
    path.write_text(json.dumps(one_model_table({"equals": "cheap-1"}, {"input_mtok": "1"}, "https://(a+)+\\.example")))
    assert table_problem(str(path)) == \
        f"the price table {path} is refused: provider 'house': api_pattern: {EXPONENTIAL}"


def test_a_hostile_table_stops_start_up_with_one_line(tmp_path):
    from tests.proxy_process import ROOT, clean_environ
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(one_model_table({"equals": "cheap-1"}, {"input_mtok": "-1"})))
    env = {**clean_environ(("COT_PROXY_",)), "HOME": str(tmp_path), "TARGET_BASE_URL": "http://127.0.0.1:9/v1",
           "PRICES": json.dumps({"table": str(path)})}
    out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert (out.returncode, out.stderr.splitlines()) == (2, [
        f"cot_proxy: bad setting PRICES: the price table {path} is refused: model house/cheap-1: input_mtok: expected "
        "a price from 0 to 1000000 dollars, got '-1'"]), out.stderr


def test_the_shipped_table_and_genai_prices_own_data_pass():
    """Its lookahead (`^(?!.*-tts(?:$|-))`), optional groups and dated clauses included; genai-prices (a test
    requirement) loads, and every one of its patterns and prices passes."""
    genai_prices = pytest.importorskip("genai_prices")
    from genai_prices.data import providers
    assert data_problem(json.loads(SHIPPED_TABLE.read_text())) is None
    assert load_table() is not None
    assert data_problem(table_from(providers, genai_prices.__version__)) is None
    assert all(pattern_problem(p.api_pattern) is None for p in providers)
