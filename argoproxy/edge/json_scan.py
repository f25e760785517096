"""What a JSON text holds outside its strings, counted before it is parsed, at the speed of C: its arrays and
objects, its separators (`,` and `:`, so its values and keys) and its strings.

Parsing costs per value, not per byte, so these counts decide whether a body is parsed at all (request_body.py)
and how a parsed body is checked. They must cost little on any text a client can write: the regular expression
that skipped strings before took 47 ms per MB on 8 million strings `"["` (1.5 s for a 31 MB body). Here no
Python code runs per string or per byte:

- escapes are taken out first (`\\\\` pairs, then `\\"`): in valid JSON a backslash only occurs in a string,
  and pairing the backslashes of a run from the left is how JSON reads them, so afterwards every `"` opens or
  closes a string;
- every byte but `"`, `[`, `{`, `,` and `:` is deleted (bytes.translate);
- what is left is split on `"`, a window at a time (a window's pieces are small, nearly all one-byte objects
  CPython keeps ready), and the pieces outside strings, every other one, are joined and counted.

Worst measured: 8.5 ms per MB (a text of nothing but empty strings), 0.4 ms per MB for prose; see
bench/hostile_bodies.py. A text that is not valid JSON may be counted wrongly after its first error, where
every parser stops anyway, so nothing past it is ever built.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

KEPT = b'"[{,:'
_DELETE = bytes(b for b in range(256) if b not in KEPT)
WINDOW = 1 << 20  # bytes of the reduced text split at once: the pieces of one window at most are held


class JsonCounts(NamedTuple):
    containers: int  # arrays and objects
    values: int  # values and keys, at most (1 + containers + separators): what parsing builds objects for
    colons: int  # object members written (a `:` outside strings only ever separates a key from its value)
    strings: int


def without_escapes(raw: bytes) -> bytes:
    """The text with its escape pairs that involve a backslash or a quote taken out (the rest, `\\n` and
    `\\u0041`, stay: they hold neither a quote nor a bracket once the backslash is paired)."""
    if b"\\" not in raw:  # a byte's search (memchr): most texts have no escape at all
        return raw
    return raw.replace(b"\\\\", b"").replace(b'\\"', b"")


def string_count(raw: bytes) -> int:
    """How many strings (keys included) a JSON text holds: half its quotes once escaped ones are out."""
    return without_escapes(raw).count(b'"') // 2


def scan(raw: bytes, strings_over: int | None = None, turn: Callable[[], None] | None = None) -> JsonCounts:
    """The text's counts outside strings. With `strings_over`, a text holding more strings than that is not
    split: its counts are returned at once with the strings counted and the rest unknown (0), since it is
    over any budget the strings count for. `turn`: called between windows (a long text lets other requests
    run)."""
    reduced = without_escapes(raw).translate(None, _DELETE)
    strings = reduced.count(b'"') // 2
    if strings_over is not None and strings > strings_over:
        return JsonCounts(0, strings, 0, strings)
    inside = False
    containers = separators = colons = 0
    for start in range(0, len(reduced), WINDOW):
        pieces = reduced[start:start + WINDOW].split(b'"')
        outside = b"".join(pieces[1 if inside else 0::2])
        containers += outside.count(b"[") + outside.count(b"{")
        colon = outside.count(b":")
        colons += colon
        separators += outside.count(b",") + colon
        if len(pieces) % 2 == 0:  # an odd number of quotes in this window: the next starts on the other side
            inside = not inside
        if turn is not None and start + WINDOW < len(reduced):
            turn()
    return JsonCounts(containers, 1 + containers + separators, colons, strings)
