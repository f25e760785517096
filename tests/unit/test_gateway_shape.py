"""The class that holds the sequence stays small enough to read in one sitting (issue 56, item 2): at most 300
lines, and a whole non-streamed chat request through the real app enters it at most 6 times from outside its
module (tools/gateway_entries.py counts them with a profiler: the sequence calls its collaborators, they do not
call back into it)."""

from __future__ import annotations

import ast
import inspect

from argoproxy.pipeline.gateway import Gateway
from tools.gateway_entries import SEQUENCE, entries

MOST_LINES = 300
MOST_ENTRIES = 6


def test_the_sequence_class_is_at_most_300_lines():
    source, _ = inspect.getsourcelines(Gateway)
    assert len(source) <= MOST_LINES, f"{SEQUENCE} is {len(source)} lines"
    tree = ast.parse(inspect.getsource(inspect.getmodule(Gateway)))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Gateway"]
    assert cls.end_lineno is not None and cls.end_lineno - cls.lineno + 1 == len(source)


def test_a_chat_request_enters_the_sequence_at_most_6_times():
    counted = entries(SEQUENCE)
    assert 1 <= sum(counted.values()) <= MOST_ENTRIES, sorted(counted.items())
    assert ("serve/door.py:Door.api", "Gateway.api") in counted  # the door hands the request to the sequence
