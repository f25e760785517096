"""Each key's recent waits in admission's queue, for the status page (argoproxy/admission/waits.py)."""

from __future__ import annotations

from argoproxy.admission.waits import KEY_SLOTS, RING, WIDTH, QueueWaits
from argoproxy.shared_cells import SharedCells


def waits() -> QueueWaits:
    return QueueWaits(SharedCells("w", KEY_SLOTS * WIDTH, ""))


def test_p50_and_p95_of_a_keys_last_waits_within_the_last_ten_minutes():
    w = waits()
    for i in range(20):
        w.add("alice", i / 10, now=1000.0 + i)  # 0.0 .. 1.9 s
    w.add("bob", 3.0, now=100.0)  # long ago
    seen = w.recent(now=1100.0)
    assert seen == {"alice": {"waits": 20, "p50": 0.9, "p95": 1.8}}
    assert w.recent(now=1000.0 + 19 + 601) == {}


def test_a_key_keeps_its_last_waits_only_and_a_long_name_is_cut():
    w = waits()
    for i in range(RING + 10):
        w.add("alice", 5.0 if i < 10 else 0.0, now=1000.0)
    assert w.recent(now=1000.0)["alice"] == {"waits": RING, "p50": 0.0, "p95": 0.0}
    w.add("k" * 500, 1.0, now=1000.0)
    assert {"k" * 128} <= set(w.recent(now=1000.0))
