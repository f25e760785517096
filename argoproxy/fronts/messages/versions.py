"""Anthropic API versions (the `anthropic-version` header) read as the dates they are, and what a version
refuses that LLM_PARAMS or a model rule could add to a request relayed to an upstream that speaks Messages.

From `2026-10-21` (sent by default by Anthropic's Python SDK 2.x and TypeScript SDK 1.x) the API refuses
`temperature`, `top_p` and `top_k` with 400, even at their default values. A later date keeps that rule: the
test is "this version or newer", not one string.
"""

from __future__ import annotations

from datetime import date

SAMPLING_REFUSED_FROM = date(2026, 10, 21)
SAMPLING = frozenset({"temperature", "top_p", "top_k"})
MOST_VALUES = 8  # a header sent more than once arrives joined with commas; more than a few is no real client's


def version_dates(header: str | None) -> list[date]:
    """The dates a header names (each comma-separated value that datetime reads as an ISO date); none for
    a missing header or one that names no date."""
    dates = []
    for value in (header or "").split(",", MOST_VALUES)[:MOST_VALUES]:
        try:
            dates.append(date.fromisoformat(value.strip()))
        except ValueError:
            continue
    return dates


def refused_params(header: str | None) -> frozenset[str]:
    """The parameters the client's version refuses. A header that names two versions is held to the newer:
    which one the upstream reads is not ours to guess, and leaving a parameter out is the side that works."""
    if any(named >= SAMPLING_REFUSED_FROM for named in version_dates(header)):
        return SAMPLING
    return frozenset()
