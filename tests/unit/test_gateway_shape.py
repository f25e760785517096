"""The class that holds the sequence stays small enough to read in one sitting (issue 56, item 2): at most 300
lines; and one whole non-streamed chat request through the real app, followed as it runs (tools/request_path.py:
sys.setprofile from the WSGI call to the answer's last byte, the fake upstream on loopback), enters the file that
holds the sequence at most 6 times, counting every time control moves into it from another product file, returns
included (issue 70): the sequence calls its steps, which return values, and nothing calls back into it. Control
returns to a file it had left at most 120 times (issue 70; measured 182 at 646b197, 117 at 6516c38, 111 now)."""

from __future__ import annotations

import ast
import inspect

import pytest

from argoproxy.pipeline.gateway import Gateway
from tools.request_path import SEQUENCE, Path_, follow

MOST_LINES = 300
MOST_ENTRIES = 6
RETURNS_CEILING = 120  # issue 70's bound


def test_the_sequence_class_is_at_most_300_lines():
    source, _ = inspect.getsourcelines(Gateway)
    assert len(source) <= MOST_LINES, f"{SEQUENCE}'s Gateway is {len(source)} lines"
    tree = ast.parse(inspect.getsource(inspect.getmodule(Gateway)))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Gateway"]
    assert cls.end_lineno is not None and cls.end_lineno - cls.lineno + 1 == len(source)


@pytest.fixture(scope="module")
def path() -> Path_:
    return follow()


def test_a_chat_request_enters_the_sequences_file_at_most_6_times(path):
    assert 1 <= path.entries <= MOST_ENTRIES, [m for m in path.moves if m[1] == SEQUENCE]
    # the door hands the request to the sequence, which hands the answer back to it
    assert ("argoproxy/serve/door.py", SEQUENCE, "call") in path.moves
    assert (SEQUENCE, "argoproxy/serve/door.py", "return") in path.moves


def test_a_chat_request_returns_to_files_it_left_no_more_often_than_before(path):
    assert path.returns <= RETURNS_CEILING, path.returns


def test_the_count_is_of_moves_between_files_returns_included():
    """What is counted (a move into the sequence's file from another, by a call or a return; a move into a file
    control had been in and left), on a path written out."""
    door, seq, guard = "argoproxy/serve/door.py", SEQUENCE, "argoproxy/pipeline/guard.py"
    path = Path_(SEQUENCE, [("", door, "call"), (door, seq, "call"), (seq, guard, "call"), (guard, seq, "return"),
                            (seq, door, "return")])
    assert path.entries == 2 and path.returns == 2 and path.files == 3
