"""--budget-usd read in-process: what it takes and the one line it answers otherwise."""

from __future__ import annotations

import pytest

from argoproxy.prices.units import NANO
from argoproxy.teamkeys.records import parse_budget_usd


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
