"""One meter, one reading each way (issue 55): what a request may cost was estimated apart by the reservations, the
fair queue's weights, the spend and the traces, each reading the request its own way. Through the door
in-process, a team key with a token and a dollar budget, a routed model with a concurrency limit (so the fair queue
weighs the request) and tracing on: the reservation, the queue's weight and the trace's reservation attribute are
one number, the worst case, from one reading of the request by the meter (and its dollars from one pricing); the
usage row, /metrics, the status page and the trace's usage are one reading of the answer, from one call."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from typing import Any

import pytest
from PIL import Image

from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.meter import worst as meter_worst
from argoproxy.tracing import tracer as tracing
from argoproxy.pipeline import answers as answer_side
from argoproxy.pipeline import request_reading
from argoproxy.admission.queue import Admission
from argoproxy.serve.proxy import build_proxy
from tests.fakes.fake_upstream import FakeUpstream
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.integration.test_team_keys import create, keys

PRICES = json.dumps({"models": {"gpt-4o": {"input_mtok": 2.5, "output_mtok": 10, "cache_read_mtok": 1.25}}})
MODELS = json.dumps([{"name": "gpt-4o", "backend": "openai", "base_url": "http://upstream.test/v1",
                      "max_concurrency": 4}])
USAGE = {"prompt_tokens": 2400, "completion_tokens": 37, "total_tokens": 2437,
         "prompt_tokens_details": {"cached_tokens": 1024}}  # not the plain three counts: read as the meter reads it


def png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


BODY = {"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": [
    {"type": "text", "text": "What are these?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png(1024, 1024), "detail": "high"}},
    {"type": "image_url", "image_url": {"url": "https://example.com/unknown.png"}}]}]}


def page_tokens(door: Any, admin: dict[str, str]) -> int:
    """The tokens the status page shows for the last hour."""
    page = json.loads(door.handle(Request.of("GET", "/ui/data", headers=admin)).get_data())
    return sum(minute["tokens"] for minute in page["minutes"])


class Counted:
    """A function wrapped to count its calls."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_one_reading_of_the_request_and_one_of_the_answer(tmp_path, monkeypatch, fast_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    db = tmp_path / "keys.db"
    key = create(db, "lab", "--budget", "1000000/day", "--budget-usd", "100/day")
    worst_case, used, priced = Counted(meter_worst.worst_case), Counted(answer_side.counted), \
        Counted(request_reading.most_nanos)
    monkeypatch.setattr(meter_worst, "worst_case", worst_case)
    monkeypatch.setattr(answer_side, "counted", used)
    monkeypatch.setattr(request_reading, "most_nanos", priced)
    weights: list[int] = []
    enter = Admission.enter

    def weighed(self: Admission, pool: int, flow: str, cost: int, *args: Any, **kwargs: Any) -> Any:
        weights.append(cost)
        return enter(self, pool, flow, cost, *args, **kwargs)
    monkeypatch.setattr(Admission, "enter", weighed)
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setattr(tracing.Sdk, "_instance", None)
        settings = load_settings({}, environ={
            "HOME": str(tmp_path), "FAST_PATH": fast_path, "TRACING": "on", "ENABLE_AUTH": "true",
            "API_KEY_SECRET": "sk-admin-0123456789", "KEYS_DB": str(db), "MODELS": MODELS, "PRICES": PRICES,
            "TARGET_BASE_URL": "http://upstream.test/v1"})
        upstream = FakeUpstream()
        door = build_proxy(settings, upstream)
        calls: list = []
        door.gateway.answers.observers.append(lambda start, end: calls.append((start, end)))
        try:
            upstream.reply({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Two images."},
                                         "finish_reason": "stop"}], "usage": USAGE})
            admin = {"Authorization": "Bearer sk-admin-0123456789"}
            before = page_tokens(door, admin)  # the page's cells are the process's: other tests' are in them
            answer = door.handle(Request.of("POST", "/v1/chat/completions", BODY,
                                            headers={"Authorization": f"Bearer {key}"}))
            assert answer.status_code == 200, answer.get_data()
            answer.get_data()
            ((start, end),) = [c for c in calls if c[0].kind == "chat"]  # what the observers read of the call
            lease = start.key_lease
            worst = start.asked.read_worst
            assert worst_case.calls == 1 and priced.calls == 1 and used.calls == 1  # one reading each way
            # the worst case: its text, the inline image (765) and the one by URL (OpenAI's most, 1,445), 50 answered
            assert worst.media_tokens == 765 + 1445 and worst.output == 50
            assert lease.tokens == worst.tokens and weights == [worst.tokens]
            spans = receiver.wait(lambda spans: any("cot_proxy.reservation.tokens" in s.attributes for s in spans))
            (span,) = [s for s in spans if "cot_proxy.reservation.tokens" in s.attributes]
            assert span.attributes["cot_proxy.reservation.tokens"] == worst.tokens
            assert round(span.attributes["cot_proxy.reservation.usd"] * 1e9) == lease.money > 0
            # the answer, read once: the usage row, /metrics, the status page and the trace say the same
            reading = end.used
            assert (reading.input, reading.output, reading.cached) == (2400, 37, 1024)
            assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"],
                    span.attributes["gen_ai.usage.cache_read.input_tokens"]) == (2400, 37, 1024)
            assert span.attributes["cot_proxy.cost.usd"] == pytest.approx(reading.cost.dollars)
            metrics = door.handle(Request.of("GET", "/metrics", headers=admin)).get_data().decode()
            counted = {kind: float(v) for kind, v in re.findall(
                r'^cot_proxy_tokens_total\{model="gpt-4o",type="(\w+)"\} (\S+)$', metrics, re.M)}
            assert counted == {"prompt": 2400.0, "completion": 37.0}
            keyed = {kind: float(v) for kind, v in re.findall(
                r'^cot_proxy_key_tokens_total\{key="lab",type="(\w+)"\} (\S+)$', metrics, re.M)}
            assert keyed == {"prompt": 2400.0, "completion": 37.0}
            assert page_tokens(door, admin) - before == reading.tokens
            door.gateway.team_keys.flush()
            rows = [r for r in csv.DictReader(io.StringIO(keys(db, "usage", "--csv").stdout)) if r["key"] == "lab"]
            assert [(int(r["input_tokens"]), int(r["output_tokens"])) for r in rows] == [(2400, 37)]
            assert float(rows[0]["cost_usd"]) == pytest.approx(reading.cost.dollars)
        finally:
            tracing.shutdown()
