"""The questions cot_proxy asks an OpenAI-compatible upstream about itself (argoproxy/upstream/local_server.py:
llama.cpp's GET /props, vLLM's GET /version, Ollama's GET /api/version), answered as a server that is none of
them answers: 404. The bare-socket fakes script a fault for the API call they stand for; a real server that
misbehaves on a chat call still answers these, so they take them first and count only the calls."""

from __future__ import annotations

import socket

QUESTIONS = (b"GET /props ", b"GET /version ", b"GET /api/version ")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"


def answered_a_question(conn: socket.socket) -> bool:
    """True when the connection's first request was one of the questions (answered 404, for the caller to close);
    False with nothing read when it is anything else."""
    line = b""
    while b"\r\n" not in line:  # peeked, not read: a call is left whole for the fake
        line = conn.recv(65536, socket.MSG_PEEK)
        if not line:
            return False
    if not line.startswith(QUESTIONS):
        return False
    head = b""
    while b"\r\n\r\n" not in head:
        more = conn.recv(65536)
        if not more:
            return True
        head += more
    conn.sendall(NOT_FOUND)
    return True
