"""A hostile OpenTelemetry collector (issue 55, item 6): one that answers every export with a body that never ends
grew each worker by what it sent (87 MB to 1.6 GB), with the SDK's exporter (FAST_PATH=off) and with the fast
path's lean one. Each reads the collector's answer up to MAX_COLLECTOR_ANSWER (64 KiB), then hangs up: the proxy
under Gunicorn, traced, keeps every worker's memory within 64 MB of where it was."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.polling import poll
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(120)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SENT = 256 << 20  # what the collector sends of each answer before it stalls, its end never sent
GROWTH = 64 << 20


def rss(pid: int) -> int:
    """The process's resident memory in bytes, as /proc/<pid>/status says it (VmRSS, in kB)."""
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.parametrize("fast_path", ["on", "off"])  # the lean exporter; the SDK's
def test_an_endless_collector_answer_leaves_worker_memory_where_it_was(fast_path):
    with OtlpReceiver() as receiver, FakeOpenAI() as fake, running_proxy(
            TARGET_BASE_URL=fake.base_url, TRACING="on", FAST_PATH=fast_path, WORKERS="2",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50",
            OTEL_EXPORTER_OTLP_TIMEOUT="60") as proxy:
        workers = [p.pid for p in psutil.Process(proxy.proc.pid).children()]
        assert len(workers) == 2
        for _ in range(8):  # warmed up with a sane collector: each worker has exported
            assert requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        receiver.wait(lambda spans: len({s.attributes.get("cot_proxy.request_id") for s in spans}) >= 8)
        before = {pid: rss(pid) for pid in workers}

        receiver.endless = SENT
        for _ in range(40):
            assert requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        poll(lambda: receiver.left >= 4, timeout=20)  # answers cut short by the exporters, one after another
        grown = {pid: rss(pid) - before[pid] for pid in workers}
        cut = receiver.left
    assert all(growth < GROWTH for growth in grown.values()), grown
    assert cut >= 4, "the exporters read on into the endless answers"
