"""The Backend interface is enough: tests/example_backend.py (a made-up "toy" protocol) served by the real
Gunicorn app gets auth, validation, think tags, stream <-> non-stream, sanitized errors and metrics from the
pipeline without any change outside its module."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.clients import openai_sdk
from tests.proxy_process import ROOT, running_proxy

MSG = [{"role": "user", "content": "hi"}]


class ToyServer:
    """The toy provider: answers with the think-tagged text below, whole or as NDJSON tokens."""

    TOKENS = ["<thi", "nk>pondering</think>", "Toy ", "answer"]

    def __init__(self) -> None:
        self.received: list[dict] = []
        toy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"models": ["toy-small", "toy-large"]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                toy.received.append({"body": body, "headers": dict(self.headers.items())})
                if body["model"] == "toy-broken":
                    self._send(503, {"problem": "overloaded; see http://root:hunter2@10.0.0.7:9000/status"})
                elif not body["stream"]:
                    self._send(200, {"text": "".join(ToyServer.TOKENS), "input_tokens": 3, "output_tokens": 4})
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-ndjson")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    lines = [{"token": t} for t in ToyServer.TOKENS] + [{"done": True, "input_tokens": 3,
                                                                         "output_tokens": 4}]
                    for line in lines:
                        data = json.dumps(line).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def toy_proxy():
    toy = ToyServer()
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "tests.example_backend:make_app()"]
    try:
        with running_proxy(command, TARGET_BASE_URL=toy.base_url, ENABLE_AUTH="true", API_KEY_SECRET="toy-key",
                           OPENAI_API_KEY="provider-credential", MAX_RETRIES="0") as proxy:
            yield proxy, toy
    finally:
        toy.close()


def client(proxy, key: str = "toy-key") -> openai.OpenAI:
    return openai_sdk(proxy, key)


def test_whole_and_streamed_answers_with_pipeline_transforms(toy_proxy):
    proxy, toy = toy_proxy
    out = client(proxy).chat.completions.create(model="toy-small", messages=MSG, max_tokens=20)
    assert out.choices[0].message.content == "Toy answer"  # think tags stripped by the pipeline
    assert out.usage.total_tokens == 7
    sent = toy.received[-1]
    assert sent["body"]["prompt"] == "user: hi" and sent["body"]["max_new_tokens"] == 20
    assert sent["headers"]["Authorization"] == "Bearer provider-credential"  # never the client's key

    stream = client(proxy).chat.completions.create(model="toy-small", messages=MSG, stream=True,
                                                   stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Toy answer"
    assert chunks[-1].usage.completion_tokens == 4


def test_guard_and_errors_apply_to_the_new_backend(toy_proxy):
    proxy, toy = toy_proxy
    with pytest.raises(openai.AuthenticationError):
        client(proxy, "wrong").chat.completions.create(model="toy-small", messages=MSG)
    with pytest.raises(openai.BadRequestError) as bad:
        client(proxy).chat.completions.create(model="toy-small", messages=MSG, top_p=7)
    assert bad.value.param == "top_p"
    with pytest.raises(openai.APIStatusError) as err:
        client(proxy).chat.completions.create(model="toy-broken", messages=MSG)
    assert err.value.status_code == 503
    message = err.value.body["message"]
    assert message.startswith("overloaded") and "hunter2" not in message and "10.0.0.7" not in message
    r = requests.post(proxy.base_url + "/embeddings", json={"model": "toy-small", "input": "x"},
                      headers={"Authorization": "Bearer toy-key"})
    assert r.status_code == 404  # a kind the backend does not declare


def test_models_and_metrics(toy_proxy):
    proxy, _ = toy_proxy
    client(proxy).chat.completions.create(model="toy-small", messages=MSG)
    assert [m.id for m in client(proxy).models.list()] == ["toy-small", "toy-large"]
    text = requests.get(proxy.url + "/metrics", headers={"Authorization": "Bearer toy-key"}).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    prompt = sum(s.value for s in samples if s.name == "cot_proxy_tokens_total"
                 and s.labels == {"model": "toy-small", "type": "prompt"})
    assert prompt >= 3  # (per-model token counts come from the usage the backend reported)
