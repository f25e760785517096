"""A small TCP relay between the proxy and a real server (Redis), for the network's failures: `cut` drops every
connection and refuses new ones (a partition), `slow` trickles the server's replies a byte at a time with a pause
before each (an overloaded link or server), `open` relays as it came."""

from __future__ import annotations

import socket
import threading
import time

from tests.proxy_process import free_port


class Middlebox:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "open"
        self.byte_pause = 0.2  # seconds before each byte of a reply in slow mode
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode == "cut":
            with self._lock:
                conns, self._conns = list(self._conns), set()
            for c in conns:
                _close(c)

    def close(self) -> None:
        self._stop = True
        self.set("cut")
        self._server.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except (socket.timeout, OSError):
                continue
            if self.mode == "cut":
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._conns |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, reply: bool) -> None:
        try:
            while not self._stop:
                data = src.recv(65536)
                if not data or self.mode == "cut":
                    break
                if reply and self.mode == "slow":
                    for i in range(len(data)):
                        time.sleep(self.byte_pause)
                        dst.sendall(data[i:i + 1])
                else:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
