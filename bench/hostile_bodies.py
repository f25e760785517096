"""What a request body's checks cost on the worst bodies a client can write (docs/hardening.md, issue 38 item 10):
milliseconds per MB of the counting before parsing (argoproxy/edge/json_scan.py), of the parse (msgspec), of the
repeated-key and nesting check after it, and of the whole parse_object, in-process, best of three rounds.

    .venv/bin/python bench/hostile_bodies.py

The bodies under the budgets (MAX_VALUES, MAX_CONTAINERS) go through every step; the ones over them are refused
after the counting. "checks" is counting plus the check after parsing: what the issue bounds at 20 ms per MB.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argoproxy.edge.json_scan import scan  # noqa: E402
from argoproxy.edge.msgspec_body import UNREAD, decoded, members_and_depth  # noqa: E402
from argoproxy.edge.request_body import MAX_CONTAINERS, MAX_VALUES, parse_object  # noqa: E402
from argoproxy.errors import ProxyError  # noqa: E402

N = MAX_VALUES - 10  # items of a list that stays just under the budget of values


def body(items: bytes, count: int, tail: bytes = b"") -> bytes:
    return b'{"model":"m","x":[' + b",".join([items] * count) + tail + b"]}"


CASES: list[tuple[str, bytes]] = [
    ('strings "[" (brackets inside strings)', body(b'"["', N)),
    ("empty strings", body(b'""', N)),
    ("strings of an escaped quote", body(b'"\\""', N)),
    ('strings ":" (colons inside strings)', body(b'":"', N)),
    ("numbers, an object last (no list search skipped)", body(b"1", N - 2, b",{}")),
    ("empty arrays, up to MAX_CONTAINERS", body(b"[]", MAX_CONTAINERS - 10)),
    ("one object of many keys", b"{" + b",".join(b'"k%d":1' % i for i in range(N // 2 - 10)) + b"}"),
    ("nested 128 deep, repeated", body(b"[" * 126 + b"]" * 126, MAX_CONTAINERS // 128 - 1)),
    ("30 MB of prose in one string", b'{"model":"m","x":"' + b"Hello, world: [a] {b} of prose. " * 940_000 + b'"}'),
    ('31 MB, 8M strings "[" (refused)', body(b'"["', 8_000_000)),
    ("30 MB of numbers (refused)", body(b"1", 15_000_000)),
    ("30 MB of empty arrays (refused)", body(b"[]", 10_000_000)),
]


def best(step: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return min(times)


def whole(raw: bytes) -> str:
    try:
        parse_object(raw)
    except ProxyError as err:
        return "400"
    return "200"


def main() -> None:
    print(f"MAX_VALUES {MAX_VALUES:,}, MAX_CONTAINERS {MAX_CONTAINERS:,}; ms per MB (MB = 10^6 bytes)\n")
    print("| body | MB | counting | parse | check after | checks | whole | answer |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, raw in CASES:
        mb = len(raw) / 1e6
        counts = scan(raw)
        counting = best(lambda: scan(raw, strings_over=MAX_VALUES))
        refused = counts.values > MAX_VALUES or counts.containers > MAX_CONTAINERS
        parse = after = 0.0
        if not refused:
            value = decoded(raw)
            assert value is not UNREAD
            parse = best(lambda: decoded(raw))
            after = best(lambda: members_and_depth(value, counts.containers))
            del value
        total = best(lambda: whole(raw))
        print(f"| {label} | {mb:.1f} | {counting * 1000 / mb:.1f} | {parse * 1000 / mb:.1f} | "
              f"{after * 1000 / mb:.1f} | {(counting + after) * 1000 / mb:.1f} | {total * 1000 / mb:.1f} | "
              f"{whole(raw)} |")


if __name__ == "__main__":
    main()
