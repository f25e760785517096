"""The meter's one reading of an answer, "what did it cost": its input and output tokens (every input token,
cached reads and writes, images and audio included, as the upstream's usage says them, whichever API wrote it:
argoproxy/spend/usage_shapes.py; else the proxy's estimate) and its cost. Read once as the call ends
(pipeline/answers.py), kept in its outcome, and taken as it is by every record of the call: the key's usage row,
/metrics, the status page, the trace.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from argoproxy.spend import MOST_TOKENS, Cost, counts_of


class Used(NamedTuple):
    input: int  # every input token (cached reads and writes, images and audio among them)
    output: int  # every output token (reasoning among them)
    estimated: bool  # no usage came: counted by the proxy
    cost: Cost | None  # None: nothing to price (no usage)
    cached: int = 0  # of the input: read from the cache
    cache_written: int = 0  # of the input: written to the cache
    reasoning: int = 0  # of the output

    @property
    def tokens(self) -> int:
        return self.input + self.output


NOTHING_USED = Used(0, 0, False, None)


def used(usage: Any, estimated: bool = False, cost: Cost | None = None) -> Used:
    """An answer's usage (any API's shape) and cost as the meter reads them."""
    if usage.__class__ is dict and len(usage) == 3:  # OpenAI's plain three counts: read without a copy
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if prompt.__class__ is int and completion.__class__ is int and 0 <= prompt <= MOST_TOKENS \
                and 0 <= completion <= MOST_TOKENS:
            return Used(prompt, completion, estimated, cost, 0, 0, 0)
    return counted(counts_of(usage), estimated, cost)


def counted(counts: dict[str, int] | None, estimated: bool = False, cost: Cost | None = None) -> Used:
    """`used` of an answer whose usage is read already (usage_shapes.counts_of's counts: the price read them)."""
    if not counts:
        return Used(0, 0, estimated, cost, 0, 0, 0)
    return Used(counts.get("input_tokens", 0), counts.get("output_tokens", 0), estimated, cost,
                counts.get("cache_read_tokens", 0), counts.get("cache_write_tokens", 0),
                counts.get("output_reasoning_tokens", 0))
