"""Each API door owns everything about its API (issue 37, item 3): the one door (serve/door.py), the route
table (edge/classify.py), auth (edge/auth.py), the sequence (pipeline/gateway.py), capability adaptation
(pipeline/adapt.py) and the doors' shared answer encoder (fronts/serve.py) name no door. What they need of one they ask its Front (argoproxy/fronts/front.py).

Read from the source: no identifier or string literal in the code is a door's name, and no comment or docstring
names a vendor whose API a door speaks (docs/adding-a-door.md)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOORLESS = ("argoproxy/serve/door.py", "argoproxy/edge/classify.py", "argoproxy/edge/auth.py",
            "argoproxy/pipeline/gateway.py", "argoproxy/fronts/serve.py", "argoproxy/pipeline/adapt.py")
# A door's name as a word of code: a part of an identifier (`google_models`, `MESSAGES_LOOKING`) or a string's
# word (`"messages"`, `front == "google"`).
IN_CODE = re.compile(r"(?i)(?<![A-Za-z0-9])(google|messages|responses|ollama|anthropic|gemini)(?![A-Za-z0-9])")
# The module about a chat request's own messages (pipeline/upstream_messages.py) is no door.
NOT_DOORS = frozenset({"upstream_messages"})
# In prose "messages" and "responses" are ordinary words (a chat request's messages); the vendors' names are not.
IN_PROSE = re.compile(r"(?i)\b(google|ollama|anthropic|gemini)\b")


def named_doors(source: str) -> list[tuple[int, str]]:
    """(line, text) of every door name in the code, and every vendor name in comments and docstrings."""
    found = []
    previous = tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        docstring = tok.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT,
                                                                  tokenize.DEDENT)
        if tok.type in (tokenize.NAME, tokenize.STRING) and not docstring:
            if tok.string not in NOT_DOORS and IN_CODE.search(tok.string):
                found.append((tok.start[0], tok.string))
        elif tok.type in (tokenize.COMMENT, tokenize.STRING) and IN_PROSE.search(tok.string):
            found.append((tok.start[0], IN_PROSE.search(tok.string).group(0)))
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            previous = tok.type
    return found


@pytest.mark.parametrize("path", DOORLESS)
def test_names_no_door(path):
    assert named_doors((ROOT / path).read_text()) == []


def test_the_reader_finds_a_door_name():
    source = ('"""A module."""\n'
              'def f(route):\n'
              '    """Text about chat messages."""\n'
              '    if route.front == "google":  # the Ollama door\n'
              '        return MESSAGES_LOOKING\n')
    assert named_doors(source) == [(4, '"google"'), (4, "Ollama"), (5, "MESSAGES_LOOKING")]


OLLAMA_NAME = re.compile(r"(?i)ollama")  # in an identifier
OLLAMA_KEY = re.compile(r"(?i)[rbuf]*(['\"])[\w./:-]*ollama[\w./:-]*\1")  # a string that is a name or path, not prose


def test_the_ollama_door_is_its_package_and_its_registry_entry():
    """docs/adding-a-door.md: the Ollama door was added as one package plus its registry entry. No code outside
    them (identifiers and strings; prose may mention Ollama the server) knows the door."""
    allowed = {ROOT / "argoproxy/fronts/__init__.py",
               ROOT / "argoproxy/upstream/local_server.py"}  # names Ollama the server, whose /api/version it asks
    found = []
    for path in sorted((ROOT / "argoproxy").rglob("*.py")):
        if path in allowed or (ROOT / "argoproxy/fronts/ollama") in path.parents:
            continue
        previous = tokenize.NEWLINE
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            docstring = tok.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT,
                                                                      tokenize.DEDENT)
            named = (tok.type == tokenize.NAME and OLLAMA_NAME.search(tok.string)) or \
                (tok.type == tokenize.STRING and not docstring and OLLAMA_KEY.fullmatch(tok.string))
            if named:
                found.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string[:60]}")
            if tok.type not in (tokenize.COMMENT, tokenize.NL):
                previous = tok.type
    assert found == []
