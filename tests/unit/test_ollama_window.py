"""Ollama's window per model (argoproxy/upstream/local_server.py's ollama_windows), against a real server on loopback
answering POST /api/show as Ollama does: the model's `num_ctx` where its parameters set it, else Ollama's default
context, never the trained `<arch>.context_length`; asked once a model, within the questions' bounds."""

from __future__ import annotations

import http.server
import json
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from argoproxy.upstream import local_server
from argoproxy.upstream.local_server import OLLAMA_DEFAULT_CONTEXT, ollama_windows

SHOWN = {  # /api/show's answer, abridged: the trained context is in model_info, the served one in parameters
    "qwen3:8b": {"parameters": 'repeat_penalty                 1\nstop                           "<|im_start|>"\n'
                               "num_ctx                        40960\ntemperature                    0.6",
                 "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960}},
    "llama3.2:1b": {"parameters": 'stop                           "<|eot_id|>"',
                    "model_info": {"general.architecture": "llama", "llama.context_length": 131072}},
    "bare:latest": {"model_info": {"general.architecture": "gemma3", "gemma3.context_length": 131072}},
}


@pytest.fixture(autouse=True)
def asked_afresh():
    local_server.forget()
    yield
    local_server.forget()


@contextmanager
def ollama(shown: dict[str, Any]) -> Iterator[tuple[str, list]]:
    """An Ollama-ish server: POST /api/show {"model": name} answered from `shown` (else 404, as Ollama answers an
    unknown model); yields its base URL (/v1) and the requests' (path, headers, body)."""
    seen: list[tuple[str, dict[str, str], Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, dict(self.headers.items()), asked))
            found = shown.get(asked.get("model")) if self.path == "/api/show" else None
            body = json.dumps(found if found is not None else {"error": "model not found"}).encode()
            self.send_response(200 if found is not None else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_num_ctx_else_the_default_never_the_trained_context():
    with ollama(SHOWN) as (url, seen):
        windows = ollama_windows(url, "sk-up", ["qwen3:8b", "llama3.2:1b", "bare:latest", "gone:latest"])
    assert windows == {"qwen3:8b": 40960, "llama3.2:1b": OLLAMA_DEFAULT_CONTEXT, "bare:latest": 4096}
    assert [(path, body) for path, _, body in seen] == [("/api/show", {"model": m}) for m in
                                                        ("qwen3:8b", "llama3.2:1b", "bare:latest", "gone:latest")]
    assert seen[0][1]["Authorization"] == "Bearer sk-up"  # as the upstream's requests carry it


def test_each_model_is_asked_once():
    with ollama(SHOWN) as (url, seen):
        ollama_windows(url, "", ["qwen3:8b", "gone:latest"])
        assert ollama_windows(url, "", ["gone:latest", "qwen3:8b", "llama3.2:1b"]) == {
            "qwen3:8b": 40960, "llama3.2:1b": 4096}
    assert [body["model"] for _, _, body in seen] == ["qwen3:8b", "gone:latest", "llama3.2:1b"]


def test_a_list_asks_at_most_its_bound():
    many = {f"m{i}:latest": {"parameters": f"num_ctx {1000 + i}"} for i in range(local_server.MODELS_ASKED + 5)}
    with ollama(many) as (url, seen):
        windows = ollama_windows(url, "", list(many))
    assert len(seen) == len(windows) == local_server.MODELS_ASKED and windows["m0:latest"] == 1000


def test_a_list_asks_for_its_time_at_most(monkeypatch):
    """The asking stops once the list's time is spent; the models left are asked at the next list."""
    monkeypatch.setattr(local_server, "LIST_SECONDS", 0.0)
    with ollama(SHOWN) as (url, seen):
        assert ollama_windows(url, "", ["qwen3:8b", "llama3.2:1b"]) == {"qwen3:8b": 40960}
        assert ollama_windows(url, "", ["qwen3:8b", "llama3.2:1b"]) == {"qwen3:8b": 40960, "llama3.2:1b": 4096}
    assert [body["model"] for _, _, body in seen] == ["qwen3:8b", "llama3.2:1b"]


def test_a_server_not_reached_stops_the_asking_and_is_asked_again_later():
    with ollama(SHOWN) as (url, _):
        pass  # closed: nothing listens there now
    assert ollama_windows(url, "", ["qwen3:8b", "llama3.2:1b"]) == {}
    assert local_server._windows == {}  # nothing kept: the next list asks again


@pytest.mark.parametrize("parameters", ["num_ctx 0", "num_ctx -5", "num_ctx lots", "num_ctx 99999999999999",
                                        "num_ctx \u0668\u0668"])
def test_a_num_ctx_that_is_no_window(parameters):
    """Not a count of tokens: no window (the default would be a guess over the server's own word)."""
    assert local_server.model_window({"parameters": parameters}) is None
