"""What the secret scrubber costs (docs/hardening.md): per SSE event and per MB of bulk data, in-process.

    .venv/bin/python bench/scrub_cost.py

Four secret spellings, as a proxy with an upstream key, a client key and a password in TARGET_BASE_URL has
them (the password, user:password and its Basic-auth base64 form; the client key). Best of five rounds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argoproxy.redaction import Secrets, StreamScrubber, url_credentials  # noqa: E402

SECRETS = Secrets(["sk-upstream-0123456789abcdefghijklmnopqrstuv", "client-key-ZYXWVUT-1234",
                   *url_credentials("http://proxyuser:proxypass-77@llm.internal/v1/")])
EVENT = b"data: " + json.dumps({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                "choices": [{"index": 0, "delta": {"content": "hello wor"},
                                             "finish_reason": None}]}).encode() + b"\n\n"
CASES = [("SSE events, one per chunk", EVENT, 100_000), ("bulk data, 64 KiB chunks", bytes(range(256)) * 256, 800),
         ("bulk data, 1 KiB chunks of 'a' (worst case)", b"a" * 1024, 20_000)]


def best(chunk: bytes, count: int) -> float:
    times = []
    for _ in range(5):
        scrubber = StreamScrubber(SECRETS)
        start = time.perf_counter()
        for _ in range(count):
            scrubber.feed(chunk)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    print(f"{len(SECRETS.blobs)} secret spellings; event {len(EVENT)} bytes\n")
    print("| input | per chunk | per MB |\n| --- | --- | --- |")
    for label, chunk, count in CASES:
        seconds = best(chunk, count)
        mb = count * len(chunk) / 1048576
        print(f"| {label} | {seconds / count * 1e6:.2f} µs | {seconds / mb * 1000:.2f} ms |")


if __name__ == "__main__":
    main()
