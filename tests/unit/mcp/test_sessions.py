"""A worker's memory of the MCP sessions it found (argoproxy/mcp/sessions.py's Remembered): a session's later
calls within CHECK_SECONDS ask no one, a session ended here is refused at once, one ended elsewhere within
CHECK_SECONDS, and the memory is bounded."""

from __future__ import annotations

from argoproxy.mcp import sessions
from argoproxy.mcp.sessions import CHECK_SECONDS, Remembered


class Kept:
    def __init__(self) -> None:
        self.live: dict[str, str] = {}
        self.asked = 0

    def new(self, owner: str, version: str) -> str:
        sid = f"s{len(self.live)}"
        self.live[sid] = owner
        return sid

    def version(self, session: str, owner: str) -> str | None:
        self.asked += 1
        return "2025-11-25" if self.live.get(session) == owner else None

    def end(self, session: str, owner: str) -> bool:
        return self.live.pop(session, None) == owner


def test_a_found_session_is_remembered_for_check_seconds_and_forgotten_when_ended_here():
    now = [100.0]
    kept = Kept()
    remembered = Remembered(kept, clock=lambda: now[0])
    sid = remembered.new("key:a", "2025-11-25")
    assert [remembered.version(sid, "key:a") for _ in range(5)] == ["2025-11-25"] * 5 and kept.asked == 1
    assert remembered.version(sid, "key:b") is None  # another key's: asked, and no session
    kept.end(sid, "key:a")  # ended on another worker
    now[0] += CHECK_SECONDS / 2
    assert remembered.version(sid, "key:a") == "2025-11-25"  # still trusted here, for at most CHECK_SECONDS
    now[0] += CHECK_SECONDS
    assert remembered.version(sid, "key:a") is None
    other = remembered.new("key:a", "2025-11-25")
    assert remembered.version(other, "key:a") and remembered.end(other, "key:a")
    assert remembered.version(other, "key:a") is None  # ended here: refused at once


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(sessions, "MAX_REMEMBERED", 10)
    kept = Kept()
    remembered = Remembered(kept)
    for _ in range(25):
        remembered.version(remembered.new("key:a", "2025-11-25"), "key:a")
    assert len(remembered.found) <= 10
