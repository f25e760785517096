"""A fake OpenAI upstream in its own process, so a test can kill it (SIGKILL) as a crashed server dies.

`python -m tests.fakes.fake_process PORT DELAY` serves FakeOpenAI's default answers on 127.0.0.1:PORT, each
taking about DELAY seconds (whole answers wait before their headers; streams spread their events over it).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from typing import Iterator

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks
from tests.proxy_process import ROOT, free_port


class SlowFake(FakeOpenAI):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def default_answer(self, method: str, path: str, body: bytes):
        answer = super().default_answer(method, path, body)
        if isinstance(answer, Stream):
            pieces = ["tick "] * 8
            usage = any(isinstance(e, dict) and e.get("usage") for e in answer.events)
            model = next(e["model"] for e in answer.events if isinstance(e, dict))
            return Stream(chat_chunks(pieces, model=model, usage=usage), delay=self.delay / 10,
                          first_delay=self.delay / 10)
        if isinstance(answer, Reply):
            answer.delay = self.delay
        return answer


@contextlib.contextmanager
def fake_process(delay: float = 0.0, port: int | None = None) -> Iterator["FakeProcess"]:
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_process", str(port), str(delay)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fake = FakeProcess(proc, port)
    try:
        fake.wait_ready()
        yield fake
    finally:
        fake.kill()


class FakeProcess:
    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1/"

    def wait_ready(self, timeout: float = 15.0) -> None:
        import socket
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fake upstream did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def main() -> None:
    port, delay = int(sys.argv[1]), float(sys.argv[2])
    fake = SlowFake(delay)
    fake.server.server_close()
    from tests.fakes.fake_openai import _Server
    fake.server = _Server(("127.0.0.1", port), fake.server.RequestHandlerClass)
    fake.server.daemon_threads = True
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
