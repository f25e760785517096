"""Process lifecycle of the running app under Gunicorn (issue 7, part 6): SIGTERM drains in-flight streams
within the graceful timeout and refuses new connections; SIGHUP reloads config.yaml without dropping an
in-flight request; a worker killed with SIGKILL is replaced and the proxy keeps answering."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.polling import poll
from tests.proxy_process import ROOT, base_env, free_port, running_proxy
from tests.reliability.support import chat, quick_ok, sse_events, wait_for_workers, worker_pids

pytestmark = pytest.mark.timeout(60)


def stream_in_background(p, result: dict) -> threading.Thread:
    def run():
        start = time.monotonic()
        try:
            r = requests.post(p.base_url + "/chat/completions", json=chat(stream=True), timeout=30)
            result.update(status=r.status_code, events=sse_events(r.text))
        except Exception as exc:  # recorded for the assertion
            result["error"] = repr(exc)
        result["took"] = time.monotonic() - start

    t = threading.Thread(target=run)
    t.start()
    return t


def upstream_has(fake: FakeOpenAI, streams: int) -> None:
    """Wait until the upstream has received this many chat requests (they are in flight in the proxy)."""
    assert poll(lambda: sum(r.path.endswith("/chat/completions") for r in fake.received) >= streams), \
        [r.path for r in fake.received]


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_sigterm_drains_streams_and_refuses_new_connections():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, GRACEFUL_TIMEOUT="10") as p:
            quick_ok(p, timeout=10)
            fake.add(*[Stream(chat_chunks([f"p{i}" for i in range(10)]), delay=0.2) for _ in range(3)])
            results = [{} for _ in range(3)]
            threads = [stream_in_background(p, r) for r in results]
            upstream_has(fake, 3)  # all three are mid-stream
            sent = time.monotonic()
            p.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 3
            while not refused(p.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert refused(p.port), "new connections are still accepted after SIGTERM"
            for t in threads:
                t.join(15)
            for r in results:
                assert r.get("status") == 200, r
                assert r["events"][-1] == "[DONE]", r["events"][-2:]
                text = "".join(e["choices"][0]["delta"].get("content") or "" for e in r["events"][:-1] if e["choices"])
                assert text == "".join(f"p{i}" for i in range(10))
            p.proc.wait(12)
            assert p.proc.returncode == 0
            assert time.monotonic() - sent < 10  # done when the streams were, not at the graceful timeout


def test_sigterm_cuts_streams_that_outlive_the_graceful_timeout():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, GRACEFUL_TIMEOUT="1") as p:
            quick_ok(p, timeout=10)
            fake.add(Stream(chat_chunks([f"p{i}" for i in range(100)]), delay=0.1))
            result: dict = {}
            t = stream_in_background(p, result)
            upstream_has(fake, 1)
            sent = time.monotonic()
            p.proc.send_signal(signal.SIGTERM)
            p.proc.wait(10)
            assert time.monotonic() - sent < 1 + 3  # graceful timeout plus Gunicorn's own second of slack
            t.join(10)
            assert "[DONE]" not in result.get("events", [])  # cut, never passed off as complete


def test_sighup_reloads_config_without_dropping_a_request(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("think_mode: keep\n")
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, CONFIG_PATH=str(config), GRACEFUL_TIMEOUT="10") as p:
            quick_ok(p, timeout=10)
            fake.add(Reply(chat_completion("<think>x</think>y")))
            r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=10)
            assert r.json()["choices"][0]["message"]["content"] == "<think>x</think>y"

            old = worker_pids(p)
            fake.add(Stream(chat_chunks(["<think>in</think>", "flight"] + ["."] * 8), delay=0.2))
            result: dict = {}
            t = stream_in_background(p, result)
            upstream_has(fake, 2)  # the one above and this stream
            config.write_text("think_mode: strip\n")
            p.proc.send_signal(signal.SIGHUP)
            # Requests keep being answered all through the reload.
            statuses = []
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                statuses.append(requests.get(p.url + "/v1/models", timeout=5).status_code)
                time.sleep(0.05)
            assert set(statuses) == {200}
            t.join(15)
            assert result.get("status") == 200 and result["events"][-1] == "[DONE]", result
            # The old worker finished its stream with the old settings (keep).
            text = "".join(e["choices"][0]["delta"].get("content") or "" for e in result["events"][:-1] if e["choices"])
            assert text.startswith("<think>in</think>flight")
            new = wait_for_workers(p, 1, exclude=old)
            assert not new & old
            fake.add(Reply(chat_completion("<think>x</think>y")))
            r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=10)
            assert r.json()["choices"][0]["message"]["content"] == "y"


@pytest.mark.parametrize("command", [None, [sys.executable, str(ROOT / "cot_proxy.py")]],
                         ids=["gunicorn.conf.py", "cot_proxy.py"])
def test_a_bad_config_on_sighup_keeps_the_settings_in_force(tmp_path: Path, command):
    """A typo in config.yaml, then SIGHUP (or a worker replaced after it): one line naming the setting, and the
    workers serve on with the settings in force; it stopped the server (gunicorn.conf.py) or started worker
    after worker for ever, the port open and requests hanging (cot_proxy.py). A good file reloads as usual."""
    config = tmp_path / "config.yaml"
    config.write_text("think_mode: keep\n")
    with FakeOpenAI() as fake:
        with running_proxy(command, TARGET_BASE_URL=fake.base_url, CONFIG_PATH=str(config), WORKERS="2") as p:
            old = wait_for_workers(p, 2)
            config.write_text("think_mode: bogus\n")
            p.proc.send_signal(signal.SIGHUP)
            poll(lambda: "settings not reloaded, bad setting think_mode" in p.read_log(), timeout=20)
            new = wait_for_workers(p, 2, exclude=old)
            os.kill(sorted(new)[0], signal.SIGKILL)  # its replacement reads the bad file too
            wait_for_workers(p, 2, exclude=old | {sorted(new)[0]})
            for _ in range(4):
                fake.add(Reply(chat_completion("<think>x</think>y")))
                r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=10)
                assert r.json()["choices"][0]["message"]["content"] == "<think>x</think>y"  # keep, still
            assert p.proc.poll() is None and "exited with code" not in p.read_log()
            config.write_text("think_mode: strip\n")
            p.proc.send_signal(signal.SIGHUP)
            fake.add(*[Reply(chat_completion("<think>x</think>y")) for _ in range(40)])

            def stripped() -> bool:
                r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=10)
                return r.json()["choices"][0]["message"]["content"] == "y"
            poll(stripped, timeout=20)


def test_gunicorn_without_its_config_stops_at_a_bad_setting(tmp_path: Path):
    """`gunicorn cot_proxy:app` with no gunicorn.conf.py read: a bad setting is one line and the server stops
    (Gunicorn's "worker failed to boot"), not a worker started 2.5 times a second for ever."""
    env = {**base_env(str(tmp_path), PYTHONPATH=str(ROOT)), "THINK_MODE": "bogus"}
    with open(tmp_path / "out.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{free_port()}", "-w", "2",
                                 "cot_proxy:app"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        code = proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (tmp_path / "out.log").read_text()
    assert code != 0 and "cot_proxy: bad setting THINK_MODE" in text
    assert text.count("cot_proxy: bad setting") <= 2, text  # one a worker at most, then Gunicorn stops


def test_sigkilled_worker_is_replaced_and_the_proxy_keeps_answering():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, WORKERS="2") as p:
            pids = wait_for_workers(p, 2)
            for _ in range(4):
                quick_ok(p, timeout=10)
            victim = sorted(pids)[0]
            os.kill(victim, signal.SIGKILL)
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: requests.get(p.url + "/v1/models", timeout=5).status_code,
                                         range(40)))
            assert statuses == [200] * 40
            now = wait_for_workers(p, 2, exclude={victim})
            assert victim not in now and len(now) == 2
            for _ in range(10):
                quick_ok(p)
            # A stop signal right after the replacement was forked (before Gunicorn's own handlers exist in
            # it) once went unheard and held the shutdown for the whole graceful timeout.
            start = time.monotonic()
            log = p.stop()
            assert time.monotonic() - start < 5 and p.proc.returncode == 0
            assert f"(pid:{victim})" in log


def test_stop_signal_while_workers_boot_is_not_lost():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, WORKERS="2", GRACEFUL_TIMEOUT="20") as p:
            wait_for_workers(p, 2)  # forked, still booting
            start = time.monotonic()
            p.stop(signal.SIGTERM)
            assert time.monotonic() - start < 5 and p.proc.returncode == 0
