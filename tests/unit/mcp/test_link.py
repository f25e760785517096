"""The worker's link to the supervisor (mcp/link.py) against a scripted Unix-socket peer: a kept connection the
supervisor closed is replaced and the request sent on the new one, but a request that got no answer in time is
never sent again (a tool call could run twice on its server)."""

from __future__ import annotations

import socket
import threading

import pytest

from argoproxy.mcp.link import Link, SupervisorGone


class Peer:
    """Answers each line with {"ok": n}; `silent` lines are read and never answered; `close_after` closes a
    connection once it answered that many lines."""

    def __init__(self, path: str, silent: set[int], close_after: int = 0) -> None:
        self.path, self.silent, self.close_after = path, silent, close_after
        self.received: list[bytes] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn: socket.socket) -> None:
        answered = 0
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                self.received.append(line)
                if len(self.received) in self.silent:
                    continue
                conn.sendall(b'{"ok": %d}\n' % len(self.received))
                answered += 1
                if self.close_after and answered >= self.close_after:
                    return


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "s.sock")


def test_a_request_unanswered_in_time_is_not_sent_again(path):
    peer = Peer(path, silent={2})
    link = Link(path)
    assert link.ask({"op": "a"}, 5) == {"ok": 1}  # its connection is kept
    with pytest.raises(SupervisorGone, match="no answer within"):
        link.ask({"op": "b"}, 0.3)
    assert len(peer.received) == 2
    assert link.ask({"op": "c"}, 5) == {"ok": 3}  # a new connection works


def test_a_kept_connection_the_supervisor_closed_is_replaced(path):
    peer = Peer(path, silent=set(), close_after=1)
    link = Link(path)
    assert link.ask({"op": "a"}, 5) == {"ok": 1}
    assert link.ask({"op": "b"}, 5) == {"ok": 2}  # the kept one was closed: sent again on a new one
    assert len(peer.received) == 2
