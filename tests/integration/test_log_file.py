"""The system log, `LOG_DIR/log.log` (seed 004's `--output_path`), through the running app: the start-up line
is there without DEBUG (it stayed empty), and DEBUG's per-request line counts an error answer's bytes."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.polling import poll
from tests.proxy_process import running_proxy


def test_log_log_holds_the_start_up_line_without_debug() -> None:
    logs = Path(tempfile.mkdtemp(prefix="cot_proxy_logs_"))
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, LOG_DIR=str(logs)) as p:
        requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        text = poll(lambda: (logs / "log.log").read_text() if (logs / "log.log").exists() else "")
    line = next((ln for ln in text.splitlines() if "cot_proxy listening on" in ln), None)
    assert line is not None, text
    assert f"http://127.0.0.1:{p.port} (openai backend -> {up.base_url}" in line and " INFO " in line, line


def test_debug_lines_count_the_bytes_of_error_answers() -> None:
    logs = Path(tempfile.mkdtemp(prefix="cot_proxy_logs_"))
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, LOG_DIR=str(logs), DEBUG="true") as p:
        r = requests.post(p.base_url + "/chat/completions", data=b'{"model": "m", "messages": [',
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        rid = r.headers["X-Request-ID"]
        line = poll(lambda: next((ln for ln in (logs / "log.log").read_text().splitlines() if f"id={rid}" in ln), ""))
    assert re.search(rf"status=400 .* out={len(r.content)}B ", line), (line, len(r.content))
