"""A client following a background run (state/background.py's follow): the run stores its final object before it
writes its last events, so a follower can find the run completed while the events that end its stream are not
written yet. Such a follower waits for them; the stream then ends with the terminal event, not one short of it (a
CI run saw a follower on another replica stop at an output_text.delta)."""

from __future__ import annotations

import json
import time
from typing import Any

from argoproxy.state import background
from argoproxy.state.records import StoredResponse


class Shapes:
    def terminal(self, event: dict[str, Any]) -> dict[str, Any] | None:
        return event.get("response") if event["type"] == "response.completed" else None

    def sequence(self, event: dict[str, Any]) -> int:
        return int(event["sequence_number"])

    def encode_event(self, event: dict[str, Any]) -> bytes:
        return json.dumps(event).encode()

    def failed_event(self, after: int, obj: dict[str, Any]) -> dict[str, Any]:
        return {"type": "response.failed", "sequence_number": after + 1, "response": obj}


class State:
    """The run ended (its object says completed); its last two events are written only after the follower has
    looked `late` times."""

    def __init__(self, late: int) -> None:
        self.events = [{"type": "response.output_text.delta", "sequence_number": n} for n in range(4)]
        self.last = [{"type": "response.output_text.delta", "sequence_number": 4},
                     {"type": "response.completed", "sequence_number": 5, "response": {"status": "completed"}}]
        self.looks, self.late, self.store = 0, late, self

    def io(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def events_after(self, resp_id: str, after: int) -> list[dict[str, Any]]:
        self.looks += 1
        if self.looks > self.late:
            self.events, self.last = self.events + self.last, []
        return [e for e in self.events if e["sequence_number"] > after]

    def load(self, resp_id: str) -> StoredResponse:
        return StoredResponse(resp_id, "owner", time.time(), {"status": "completed"}, [], background=True)


def followed(state: State, after: int) -> list[str]:
    return [json.loads(chunk)["type"] for chunk in background.follow(state, Shapes(), "resp_1", after)]


def test_a_follower_that_finds_the_run_ended_before_its_last_events_waits_for_them(monkeypatch):
    monkeypatch.setattr(background, "POLL_SECONDS", 0.001)
    seen = followed(State(late=4), after=2)
    assert seen == ["response.output_text.delta"] * 2 + ["response.completed"]


def test_a_follower_that_has_seen_nothing_does_not_wait_for_events_that_were_never_kept(monkeypatch):
    monkeypatch.setattr(background, "POLL_SECONDS", 0.001)
    state = State(late=10**9)
    state.events = []
    started = time.monotonic()
    assert followed(state, after=-1) == []
    assert state.looks == 2 and time.monotonic() - started < background.LAST_EVENTS_SECONDS
