"""--budget-usd read in-process: what it takes and the one line it answers otherwise."""

from __future__ import annotations

import pytest

from argoproxy.spend.units import NANO
from argoproxy.teamkeys.records import Budget, parse_budget, parse_budget_usd, parse_count, parse_priority


@pytest.mark.parametrize("text,nanos,period", [("50/month", 50 * NANO, "month"), ("$2.5/day", 2_500_000_000, "day"),
                                               ("1_000/Week", 1000 * NANO, "week"), ("0.000000001/hour", 1, "hour")])
def test_dollars_a_period_are_counted_in_nano_dollars(text, nanos, period):
    budget = parse_budget_usd(text)
    assert (budget.nanos, budget.period) == (nanos, period)


@pytest.mark.parametrize("text", ["50", "50/year", "-1/day", "0/day", "nan/day", "inf/day", "fifty/day", "/day"])
def test_a_malformed_budget_says_the_form(text):
    with pytest.raises(ValueError, match="DOLLARS/PERIOD with PERIOD one of hour, day, week, month"):
        parse_budget_usd(text)


@pytest.mark.parametrize("text", ["5000000/month", "1e30/day"])
def test_a_budget_past_what_the_stores_count_says_the_most(text):
    """It said the form (DOLLARS/PERIOD), which the value had."""
    with pytest.raises(ValueError, match=r"at most 4,503,599 dollars a period"):
        parse_budget_usd(text)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", ["1e999999/day", "1e99999/day", "9" * 100_000 + "/day"])
def test_a_huge_exponent_says_the_most_at_once(text):
    """1e999999 overflowed Decimal's context (the command blamed the key store), 1e99999 made an int of 100,000
    digits (minutes)."""
    with pytest.raises(ValueError, match=r"at most 4,503,599 dollars a period"):
        parse_budget_usd(text)


@pytest.mark.parametrize("text", ["1e-20/day", "0.0000000001/hour"])
def test_less_than_a_nano_dollar_says_the_least(text):
    with pytest.raises(ValueError, match=r"at least a nano-dollar \(0.000000001\) a period"):
        parse_budget_usd(text)


@pytest.mark.parametrize("text", ["１０/day", "٣/day", "$$10/day", "$/day", "$"])
def test_only_ascii_digits_after_one_dollar_sign(text):
    """Decimal reads other scripts' digits (１０ was a budget of $10)."""
    with pytest.raises(ValueError, match="DOLLARS/PERIOD with PERIOD one of hour, day, week, month"):
        parse_budget_usd(text)


@pytest.mark.parametrize("text", ["²", "１０", "9" * 5000, "+5", " 5"])
@pytest.mark.parametrize("what", ["--rpm", "--priority"])
def test_counts_are_ascii_digits_and_the_error_names_the_flag(text, what):
    """"²" passed str.isdigit and int() refused it; 5,000 digits hit int()'s limit: each said int()'s own words,
    naming no flag; "１０" was taken as 10."""
    parse = parse_priority if what == "--priority" else lambda t: parse_count(t, what)
    with pytest.raises(ValueError, match=f"^{what} must be a whole number from 1 to "):
        parse(text)


@pytest.mark.parametrize("text, tokens, period", [("1000/day", 1000, "day"), ("1e6/week", 1_000_000, "week"),
                                                   ("2_000_000/MONTH", 2_000_000, "month")])
def test_a_token_budget_is_a_whole_count_a_period(text, tokens, period):
    assert parse_budget(text) == Budget(tokens, period)


@pytest.mark.parametrize("text", ["１０００/day", "1000.5/day", "1e999/day", "nan/day", "0/day", "1000/fortnight"])
def test_a_token_budget_in_other_digits_or_a_fraction_says_the_form(text):
    with pytest.raises(ValueError, match=r"--budget is TOKENS/PERIOD"):
        parse_budget(text)
