"""Calibration for the events section: the leanest relay gevent allows, not a proxy. Each connection's request
goes to the upstream on a new socket and the upstream's bytes come back as they arrive: no WSGI, no HTTP
library, no chunk decoding, no SSE splitting. What it costs per relayed event is the floor of gevent's
cooperative sockets and hub on this machine (one read that finds data, one that finds none, one send).

    python bench/raw_relay.py PORT UPSTREAM_PORT
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402

from gevent.server import StreamServer  # noqa: E402

HOST = "127.0.0.1"


def relay(client: socket.socket, upstream: tuple[str, int]) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        more = client.recv(65536)
        if not more:
            return
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n")[1:] if not line.lower().startswith(b"connection:")]
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += client.recv(65536)
    with socket.create_connection(upstream) as up:
        up.sendall(b"\r\n".join([head.split(b"\r\n")[0], *lines, b"Connection: close", b"", body]))
        while chunk := up.recv(65536):
            client.sendall(chunk)


def main() -> None:
    port, upstream = int(sys.argv[1]), (HOST, int(sys.argv[2]))

    def handle(client: socket.socket, _address) -> None:
        try:
            relay(client, upstream)
        finally:
            client.close()

    StreamServer((HOST, port), handle).serve_forever()


if __name__ == "__main__":
    main()
