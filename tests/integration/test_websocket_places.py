"""WebSocket connections counted like requests, through the running app (issue 69 item 4): one proxy for the module,
two gevent workers each held to 1,024 open files (as a common `ulimit -n`). A key opens its share
(WEBSOCKET_CONNECTIONS_PER_KEY, 16) and a few more: those are answered 426 websocket_not_served naming the setting,
while another key's plain requests and WebSocket are served; the instance stops at WEBSOCKET_CONNECTIONS; a place
comes back however its connection ends: the client closing or vanishing, a protocol error, the workers stopping
(SIGHUP) or killed (SIGKILL: the master gives back what they held). The counting itself is
tests/unit/test_websocket_places.py."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import struct
import sys
import urllib.request

import psutil
import pytest
from websockets.sync.client import connect

from argoproxy.fronts.responses.websocket.places import Places, cells_name, slots_for
from tests.fakes.fake_openai import FakeOpenAI
from tests.polling import poll
from tests.proxy_process import GUNICORN, running_proxy

KEY_A, KEY_B = "sk-key-a-0123456789", "sk-key-b-0123456789"
SHARE, MOST = 16, 20  # WEBSOCKET_CONNECTIONS_PER_KEY's default; WEBSOCKET_CONNECTIONS, low enough to reach
FILES = 1024
# Gunicorn under an open-file limit of 1,024 (soft and hard), which its workers inherit
LIMITED = [sys.executable, "-c", "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, "
           f"({FILES}, {FILES})); os.execv(sys.argv[1], sys.argv[1:])", *GUNICORN]
CREATE = {"type": "response.create", "model": "gpt-4o", "input": "hi", "store": False}


@pytest.fixture(scope="module")
def proxy():
    with FakeOpenAI() as fake, running_proxy(LIMITED, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=f"{KEY_A},{KEY_B}", WORKERS="2",
                                             WEBSOCKET_CONNECTIONS=str(MOST)) as proxy:
        yield proxy


def workers(proxy) -> list[psutil.Process]:
    return psutil.Process(proxy.proc.pid).children()


def counted(proxy) -> int:
    """The connections the instance counts now, read from the cells its workers share (-1: no worker to ask)."""
    try:
        files = [f.path for w in workers(proxy) for f in w.open_files()]
    except psutil.Error:
        return -1
    found = [path for path in files if os.path.basename(path) == cells_name(slots_for(MOST))]
    return Places(MOST, SHARE, os.path.dirname(found[0])).count() if found else -1


def upgrade(port: int, key: str) -> tuple[int, bytes, socket.socket]:
    """A WebSocket handshake on /v1/responses with `key`: the status, the body of a refusal, the socket (left open)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\nSec-WebSocket-Version: 13\r\n"
              b"Authorization: Bearer " + key.encode() + b"\r\n\r\n")
    answer = http.client.HTTPResponse(s)
    answer.begin()  # (a 101 has no body: nothing past its head is read)
    body = answer.read() if answer.status != 101 else b""
    answer.close()  # its reader, not the socket
    return answer.status, body, s


def opened(proxy, key: str, count: int) -> list[socket.socket]:
    """`count` connections of `key`, each upgraded (101); none left open otherwise."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            status, body, s = upgrade(proxy.port, key)
            held.append(s)
            assert status == 101, body
    except BaseException:
        close_all(held)
        raise
    return held


def close_all(held: list[socket.socket], vanish: bool = False) -> None:
    for s in held:
        if vanish:  # a reset, no close frame: the client is gone
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def refused(proxy, key: str) -> dict:
    status, body, s = upgrade(proxy.port, key)
    s.close()
    assert status == 426, (status, body)
    return json.loads(body)["error"]


def given_back(proxy) -> None:
    assert poll(lambda: counted(proxy) == 0, timeout=20) is True


def chat(proxy, key: str) -> int:
    request = urllib.request.Request(proxy.base_url + "/chat/completions", method="POST", data=json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def test_a_key_past_its_share_is_answered_426_and_another_key_is_served(proxy):
    assert [w.rlimit(psutil.RLIMIT_NOFILE) for w in workers(proxy)] == [(FILES, FILES)] * 2
    held = opened(proxy, KEY_A, SHARE)
    for _ in range(4):
        error = refused(proxy, KEY_A)
        assert error["code"] == "websocket_not_served" and "WEBSOCKET_CONNECTIONS_PER_KEY" in error["message"]
        assert "stream: true" in error["message"] and KEY_A not in error["message"]
    assert counted(proxy) == SHARE
    assert [chat(proxy, KEY_B) for _ in range(5)] == [200] * 5  # another key's plain requests
    with connect(f"ws://127.0.0.1:{proxy.port}/v1/responses", open_timeout=10,
                 additional_headers={"Authorization": f"Bearer {KEY_B}"}) as ws:  # and its own WebSocket
        ws.send(json.dumps(CREATE))
        while (event := json.loads(ws.recv(timeout=20)))["type"] not in ("response.completed", "error"):
            pass
        assert event["type"] == "response.completed"
    close_all(held)
    given_back(proxy)
    close_all(opened(proxy, KEY_A, SHARE))  # its whole share again
    given_back(proxy)
    assert KEY_A not in proxy.read_log()


def test_the_instance_holds_websocket_connections_at_most(proxy):
    held = opened(proxy, KEY_A, SHARE) + opened(proxy, KEY_B, MOST - SHARE)
    error = refused(proxy, KEY_B)  # under its own share, over the instance's
    assert error["code"] == "websocket_not_served" and "(WEBSOCKET_CONNECTIONS)" in error["message"]
    close_all(held[:1])
    assert poll(lambda: counted(proxy) == MOST - 1, timeout=20)
    held[0:1] = opened(proxy, KEY_B, 1)  # the place it left
    close_all(held)
    given_back(proxy)


def test_a_client_vanishing_or_breaking_the_protocol_gives_its_place_back(proxy):
    given_back(proxy)
    close_all(opened(proxy, KEY_A, SHARE), vanish=True)
    given_back(proxy)
    broken = opened(proxy, KEY_A, SHARE)
    for s in broken:
        s.sendall(b"\x81\x02hi")  # an unmasked client frame: a protocol error (1002)
    given_back(proxy)
    close_all(broken)


def test_the_workers_stopping_or_killed_give_their_places_back(proxy):
    held = opened(proxy, KEY_A, SHARE)
    os.kill(proxy.proc.pid, signal.SIGHUP)  # the workers are replaced: their connections close (1001)
    for s in held:
        frame = s.recv(256)
        assert frame[:1] == b"\x88" and frame[2:4] == (1001).to_bytes(2, "big")  # the server's close frame: 1001
    close_all(held)  # the client's side of the close
    given_back(proxy)
    held = poll(lambda: _opened_when_served(proxy), timeout=30)
    assert held
    for worker in workers(proxy):
        worker.kill()  # no finally runs: the master gives their places back (child_exit)
    assert poll(lambda: len(workers(proxy)) == 2 and counted(proxy) == 0, timeout=30)
    close_all(held)


def _opened_when_served(proxy) -> list[socket.socket] | None:
    """The key's whole share once the new workers serve (None until then)."""
    try:
        return opened(proxy, KEY_A, SHARE)
    except (AssertionError, OSError):
        return None
