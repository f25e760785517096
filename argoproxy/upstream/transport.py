"""The seam between the upstream client's policy and the wire, as httpx has it: `Upstream.send`
(argoproxy/upstream/client.py) decides what to send and whether to ask again (retries, replays, credentials,
trace context, deadlines); a `Transport` sends one attempt and answers with its head read. Three implement it:
the stock one over a requests Session (argoproxy/upstream/stock.py, FAST_PATH=off), the fast path's over the
Session's own pools (argoproxy/fastpath/transport.py, FAST_PATH=on, handed by serve/build.py), and the tests'
fake (tests/fakes/fake_upstream.py). tests/contracts/ holds what each must do."""

from __future__ import annotations

from typing import Callable, Protocol

import requests

from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse


class Transport(Protocol):
    """Sends one attempt of a request."""

    def send(self, req: UpstreamRequest, timeout: tuple[float, float], max_bytes: int) -> UpstreamResponse:
        """The answer, its head read and its body not yet (at most `max_bytes` of it read whole). `timeout`:
        (connect, read) in seconds, the read one for each wait on the socket. A failure raises a member of the
        upstream failure family (failures.py), the library's own exception chained as its __cause__, and so
        does a read of the answer's body (`chunks`); a request marked `fresh_connection` goes out on a
        connection of its own, closed with its answer."""


# What a client is built with: its transport, given the Session the client pools its connections in.
TransportFactory = Callable[[requests.Session], Transport]
