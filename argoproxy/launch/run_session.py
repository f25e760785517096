"""Each `cot-proxy run` is one agent session (argoproxy/edge/agent_sessions.py): its id is made here, the agent is
told it where it can be (agents.py: Claude Code's `--session-id`, which it then sends as X-Claude-Code-Session-Id;
Codex's and OpenCode's provider headers, X-Session-Id), and when the agent exits its cost is said in one line. Aider
and Gemini CLI take no header from us: their run is the run key's usage (a key made for the run has no other
requests), said the same way. Nothing is said when the store holds no row of it (auth off: usage is counted per
team key only)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from argoproxy.spend import dollars
from argoproxy.teamkeys.store import usage_day

SETTLE_SECONDS = 1.0  # a running proxy writes usage rows every 0.5 s (teamkeys/usage_rows.py): two of its flushes


def new_session() -> str:
    """A run's session id: a UUID, as Claude Code's --session-id asks."""
    return str(uuid.uuid4())


def run_cost(store: Any, session: str, key_name: str | None, since: float) -> str | None:
    """The run's requests, tokens and dollars in one line: its session's rows, else (an agent told no session) its
    own key's; None when the store has none."""
    day = usage_day(since)
    rows = [r[4:8] for r in store.session_usage(day) if r[1] == session] if session else []
    if not rows and key_name:
        rows = [(r[3], r[4], r[5], r[6]) for r in store.usage(day) if r[0] == key_name]
    if not rows:
        return None
    requests, prompt, completion, cost = (sum(column) for column in zip(*rows))
    return (f"this run: {requests} request{'s' if requests != 1 else ''}, {prompt + completion} tokens "
            f"({prompt} in, {completion} out), ${dollars(cost)} (session {session})")


def settled(started_here: bool) -> None:
    """A proxy that goes on serving writes the run's last rows within SETTLE_SECONDS; one started by the run wrote
    them as it stopped."""
    if not started_here:
        time.sleep(SETTLE_SECONDS)
