"""Anthropic API versions read as dates (argoproxy/fronts/messages/versions.py), the Messages door's answer to
what a version refuses, and LLM_PARAMS without those parameters (argoproxy/pipeline/param_rules.py)."""

from __future__ import annotations

import pytest

from argoproxy.config.llm_params import parse_llm_params
from argoproxy.fronts.messages.versions import SAMPLING, refused_params, version_dates
from argoproxy.pipeline.param_rules import without_params
from tests.unit.fronts.messages.test_request import FRONT


@pytest.mark.parametrize("header", ["2026-10-21", "2026-10-22", "2027-01-05", " 2026-10-21 ", "2099-12-31",
                                    "2023-06-01, 2026-10-21", "2026-10-21,2023-06-01", "20261021"])
def test_this_version_and_every_later_date_refuse_sampling(header):
    assert refused_params(header) == SAMPLING == {"temperature", "top_p", "top_k"}


@pytest.mark.parametrize("header", [None, "", "2023-06-01", "2026-10-20", "2026-13-01", "2026-10-21-beta",
                                    "latest", "2026-10-21\x00", ",,,", "9" * 100_000, "2023-06-01," * 5000])
def test_older_or_no_date_refuses_nothing(header):
    assert refused_params(header) == frozenset()


def test_a_header_repeated_past_a_few_values_is_read_only_so_far():
    assert len(version_dates(",".join(["2023-06-01"] * 50))) == 8
    assert refused_params(",".join(["2023-06-01"] * 8 + ["2026-10-21"])) == frozenset()  # the 9th: not read


def test_the_door_reads_the_clients_version_header():
    assert FRONT.withheld_params({"Anthropic-Version": "2026-10-21"}) == SAMPLING
    assert FRONT.withheld_params({"Anthropic-Version": "2023-06-01"}) == frozenset()
    assert FRONT.withheld_params({}) == frozenset()


def test_a_rule_without_the_withheld_parameters():
    rule = parse_llm_params("model=m,temperature=0.3,top_k=7,max_tokens=99,think_mode=strip").rule_for("m")
    kept, held = without_params(rule, SAMPLING)
    assert held == ["temperature", "top_k"] and kept.params == {"max_tokens": 99} and kept.think_mode == "strip"
    assert rule.params == {"temperature": 0.3, "top_k": 7, "max_tokens": 99}  # the parsed rule is not changed
    assert without_params(kept, SAMPLING) == (kept, [])
