"""Scale-out behind nginx (Debian's package), with the shipped deploy/nginx/cot_proxy.conf: three proxy
instances sharing one API_KEY_SECRET; under steady load (streams included) one instance gets SIGTERM and is
started again without a failed request or a cut stream; a stream silent for longer than nginx's
proxy_read_timeout survives thanks to SSE keepalives."""

from __future__ import annotations

import json
import re
import shutil
import socket
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import openai
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.polling import poll
from bench.targets import nginx_binary, nginx_sandbox
from tests.proxy_process import ROOT, ProxyProcess, free_port, start_on_free_port, wait_for_port

SHIPPED = ROOT / "deploy" / "nginx" / "cot_proxy.conf"
KEY = "shared-client-key"
WORDS = [f"w{i} " for i in range(10)]
MSG = [{"role": "user", "content": "hi"}]

MAIN_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/cot_proxy.conf;
}}
"""


def site_conf(ports: list[int], listen: int, read_timeout: str | None = None) -> str:
    """The shipped nginx file with its replica lines pointed at local instances (Debian's nginx 1.22 has no
    `resolve`, and there is no Docker DNS here) and its listen address on loopback."""
    text = SHIPPED.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in ports)
    text, n = re.subn(r"    # replicas:begin\n.*?    # replicas:end\n", servers, text, flags=re.S)
    assert n == 1
    text = re.sub(r"^resolver .*\n", "", text, flags=re.M)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    if read_timeout:
        text, n = re.subn(r"proxy_read_timeout \S+;", f"proxy_read_timeout {read_timeout};", text)
        assert n == 1
    return text


@contextmanager
def running_nginx(ports: list[int], read_timeout: str | None = None, listen: int | None = None) -> Iterator[str]:
    """nginx with the shipped site in front of `ports`, on loopback at `listen` (a free port when None)."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian package nginx-light; .ci/run installs it when it can)")
    tmp, user = nginx_sandbox("cot_proxy_nginx_")
    port = listen or free_port()
    Path(tmp, "cot_proxy.conf").write_text(site_conf(ports, port, read_timeout))
    conf = Path(tmp, "nginx.conf")
    conf.write_text(MAIN_CONF.format(tmp=tmp, user=user))
    cmd = [binary, "-e", f"{tmp}/error.log", "-p", tmp, "-c", str(conf)]
    check = subprocess.run(cmd + ["-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(cmd + ["-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


class Instance:
    """One proxy under Gunicorn on a fixed port, so it can be stopped and started again on the same port."""

    def __init__(self, port: int, **settings: str) -> None:
        self.port = port
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self.home = tempfile.mkdtemp(prefix="cot_proxy_replica_")

    def start(self) -> "Instance":
        # serving, not only the port open (nginx would wait on the backlog); on another port only when a
        # concurrent run took this one
        self.proc, self.port = start_on_free_port(self.home, self.settings, port=self.port)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        if self.proc is None:
            return 0
        ProxyProcess(self.proc, self.port, self.home).stop(sig, timeout)
        return self.proc.returncode

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", headers={"Authorization": f"Bearer {KEY}"},
                            timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))


@contextmanager
def instances(n: int, **settings: str) -> Iterator[list[Instance]]:
    started = [Instance(free_port(), **settings) for _ in range(n)]
    try:
        for inst in started:
            inst.start()
        yield started
    finally:
        for inst in started:
            inst.stop(signal.SIGINT)


def upstream_answers(method: str, path: str, body: bytes):
    req = json.loads(body or b"{}")
    if req.get("stream"):
        return Stream(chat_chunks(WORDS), delay=0.08)  # about a second per stream
    return Reply(chat_completion("".join(WORDS)), delay=0.02)


class Load:
    """Clients in threads, each looping over requests through nginx and recording every outcome."""

    def __init__(self, base: str, clients: int) -> None:
        self.base = base
        self.stop = threading.Event()
        self.ok = 0
        self.streams_ok = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i % 2 == 0,), daemon=True) for i in range(clients)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def client(self, streaming: bool) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {KEY}"}
        while not self.stop.is_set():
            try:
                if streaming:
                    self.one_stream(session, headers)
                else:
                    r = session.post(self.base + "/v1/chat/completions", headers=headers, timeout=30,
                                     json={"model": "m", "messages": MSG})
                    assert r.status_code == 200, f"{r.status_code} {r.text[:200]}"
                    assert r.json()["choices"][0]["message"]["content"] == "".join(WORDS)
                with self.lock:
                    self.ok += 1
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and fails the test
                with self.lock:
                    self.failures.append(f"{'stream' if streaming else 'whole'}: {exc!r}"[:300])

    def one_stream(self, session: requests.Session, headers: dict[str, str]) -> None:
        with session.post(self.base + "/v1/chat/completions", headers=headers, stream=True, timeout=30,
                          json={"model": "m", "messages": MSG, "stream": True}) as r:
            assert r.status_code == 200, f"{r.status_code} {r.text[:200]}"
            text, done = "", False
            for line in r.iter_lines():
                if line == b"data: [DONE]":
                    done = True
                elif line.startswith(b"data: "):
                    chunk = json.loads(line[6:])
                    assert "error" not in chunk, chunk
                    text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
            assert done and text == "".join(WORDS), f"cut stream: {text!r}, done={done}"
        with self.lock:
            self.streams_ok += 1


def wait_until(predicate, timeout: float, what: str) -> None:
    assert poll(predicate, timeout), f"timed out waiting for {what}"


def test_sigterm_and_restart_of_a_replica_under_load_fails_nothing():
    with FakeOpenAI() as up:
        up.default_answer = upstream_answers
        with instances(3, TARGET_BASE_URL=up.base_url, ENABLE_AUTH="true", API_KEY_SECRET=KEY) as replicas, \
                running_nginx([r.port for r in replicas]) as base:
            victim = replicas[1]
            with Load(base, clients=8) as load:
                wait_until(lambda: load.ok >= 20, 30, "steady load")
                # SIGTERM while the victim has streams in flight, so draining is really tested.
                wait_until(lambda: victim.metric("cot_proxy_streams_in_flight") >= 1, 15, "a stream on the victim")
                assert victim.stop(signal.SIGTERM) == 0  # Gunicorn drained and exited cleanly
                before = load.ok
                wait_until(lambda: load.ok >= before + 20, 30, "load served by the other replicas")
                victim.start()
                wait_until(lambda: victim.metric("cot_proxy_requests_total") >= 5, 30, "the restarted replica serving")
                after = load.ok
                wait_until(lambda: load.ok >= after + 20, 30, "load after the restart")
            assert not load.failures, load.failures[:5]
            assert load.streams_ok >= 10 and load.ok >= 60


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_stream_silent_longer_than_nginx_read_timeout_survives(worker_class):
    with FakeOpenAI() as up:
        # Silent 3 s before the first event and 3 s in the middle; nginx gives up after 2 s of silence, and a
        # keepalive every 0.5 s leaves a loaded machine 1.5 s of slack.
        up.add(Stream(chat_chunks(WORDS[:4]), first_delay=3, pause_at={2: 3}))
        with instances(1, TARGET_BASE_URL=up.base_url, ENABLE_AUTH="true", API_KEY_SECRET=KEY,
                       SSE_KEEPALIVE="0.5", WORKER_CLASS=worker_class) as replicas, \
                running_nginx([r.port for r in replicas], read_timeout="2s") as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=30)
            started = time.monotonic()
            stream = client.chat.completions.create(model="m", messages=MSG, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert text == "".join(WORDS[:4]) and time.monotonic() - started > 6


def test_without_keepalive_nginx_cuts_the_silent_stream():
    """The control: the same silence with SSE_KEEPALIVE=0 is cut by nginx (so the test above can fail)."""
    with FakeOpenAI() as up:
        up.add(Stream(chat_chunks(WORDS[:4]), pause_at={2: 3}))
        with instances(1, TARGET_BASE_URL=up.base_url, ENABLE_AUTH="true", API_KEY_SECRET=KEY,
                       SSE_KEEPALIVE="0") as replicas, \
                running_nginx([r.port for r in replicas], read_timeout="2s") as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=30)
            try:
                text = "".join(c.choices[0].delta.content or ""
                               for c in client.chat.completions.create(model="m", messages=MSG, stream=True)
                               if c.choices)
            except Exception:  # noqa: BLE001 - the connection was cut mid-stream
                text = None
            assert text != "".join(WORDS[:4]), "nginx let a silent stream through without keepalives"


class Replica:
    """A bare replica on loopback: `hangs_up` reads each request and closes without an answer (a replica that
    took the request and died on it); otherwise it answers 200 and counts what it answered."""

    def __init__(self, hangs_up: bool) -> None:
        self.hangs_up, self.paths = hangs_up, []
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        break
                    data += more
                if not data or self.hangs_up:
                    continue
                self.paths.append(data.split(b" ")[1].decode())
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n{}")


@pytest.mark.parametrize("path, retried", [("/mcp", False), ("/mcp/git", False), ("/%6Dcp", False),
                                           ("/v1/chat/completions", True)])
def test_an_mcp_request_a_replica_lost_is_never_sent_to_another(path, retried):
    """A tool call may have run on the replica that lost it: nginx answers 502 and leaves the retry to the
    client. A model call that failed the same way is sent to the next replica (the control)."""
    lost, answering = Replica(hangs_up=True), Replica(hangs_up=False)
    try:
        with running_nginx([lost.port, answering.port]) as base:
            statuses = [requests.post(base + path, data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                                      headers={"Content-Type": "application/json"}, timeout=20).status_code
                        for _ in range(4)]
    finally:
        lost.srv.close()
        answering.srv.close()
    assert len(answering.paths) == statuses.count(200), (statuses, answering.paths)
    if retried:
        assert statuses == [200] * 4, statuses
    else:
        assert 502 in statuses, statuses  # the lost one reached no other replica
