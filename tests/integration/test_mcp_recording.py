"""What an MCP tool call leaves behind, through the running app (Gunicorn, two workers) in front of the strict fake
stdio server (tests/fakes/fake_mcp_server.py), with the official MCP Python SDK as a client: `/metrics` counts each
call by server, tool and outcome (summed over both workers; a name that is no configured tool is `other`), and each
call is an `execute_tool` span under its request's span, in the client's trace, sent by the same OTLP exporter as
the model calls' (tests/fakes/otlp_receiver.py)."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import tempfile
import time

import httpx2
import pytest
import requests

from tests.fakes.otlp_receiver import OtlpReceiver, Span
from tests.integration.test_mcp_gateway import INIT, SERVERS, send
from tests.polling import poll
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
from mcp.shared.exceptions import MCPError  # noqa: E402

pytestmark = pytest.mark.timeout(120)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_PARENT}-01"
VERSION = {"MCP-Protocol-Version": "2025-11-25"}


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def recorded(module_fake, receiver):
    metrics_dir = tempfile.mkdtemp(prefix="cot_proxy_test_metrics_")
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=SERVERS,
                       PROMETHEUS_MULTIPROC_DIR=metrics_dir, TRACING="on",
                       OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50") as proxy:
        yield proxy, metrics_dir


def tool_call(proxy, sid, name, id, arguments=None, headers=None):
    body = {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments or {}}}
    return send(proxy, "POST", body=body, headers={"Mcp-Session-Id": sid, **VERSION, **(headers or {})})


def workers_with_tool_series(metrics_dir: str) -> set[str]:
    """The workers (by pid) whose value files hold a tool call's count."""
    found = set()
    for path in glob.glob(os.path.join(metrics_dir, "counter_*.db")):
        with open(path, "rb") as f:
            if b"cot_proxy_tool_calls" in f.read():
                found.add(path.rsplit("_", 1)[1])
    return found


def samples(proxy) -> dict[tuple[str, frozenset], float]:
    from prometheus_client.parser import text_string_to_metric_families
    r = requests.get(proxy.url + "/metrics", headers={"Connection": "close"}, timeout=30)
    assert r.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(r.text)
            for s in family.samples if s.name.startswith("cot_proxy_tool_call")}


def labels(**values: str) -> frozenset:
    return frozenset(values.items())


def test_tool_calls_are_counted_by_server_tool_and_outcome_over_both_workers(recorded):
    proxy, metrics_dir = recorded
    status, headers, _ = send(proxy, "POST", body=INIT)
    sid = headers["Mcp-Session-Id"]
    calls, deadline = 0, time.monotonic() + 30
    # A new connection each time (send closes it), so both workers take calls; until both have counted one
    while calls < 6 or len(workers_with_tool_series(metrics_dir)) < 2:
        assert time.monotonic() < deadline, f"one worker answered {calls} calls alone"
        status, _, body = tool_call(proxy, sid, "fake__add", calls + 10, {"a": 1, "b": 2})
        assert status == 200 and body["result"]["content"][0]["text"] == "3", body
        calls += 1
    assert tool_call(proxy, sid, "fake__fails", 2)[2]["result"]["isError"] is True
    assert tool_call(proxy, sid, "fake__no_such_tool", 3)[2]["error"]["code"] == -32602  # the server's answer
    assert tool_call(proxy, sid, "nobody__anything", 4)[2]["error"]["code"] == -32602  # the proxy's: no server
    progress = {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                "params": {"name": "other__progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "p"}}}
    r = requests.post(proxy.url + "/mcp", json=progress, timeout=30, headers={
        "Mcp-Session-Id": sid, **VERSION, "Accept": "application/json, text/event-stream", "Connection": "close"})
    assert r.headers["Content-Type"].startswith("text/event-stream") and r.text.count("event: message") == 3

    for _ in range(4):  # whichever worker answers the scrape: the same sums
        got = samples(proxy)
        assert got[("cot_proxy_tool_calls_total", labels(server="fake", tool="fake__add", outcome="ok"))] == calls
        assert got[("cot_proxy_tool_calls_total", labels(server="fake", tool="fake__fails", outcome="tool_error"))] == 1
        assert got[("cot_proxy_tool_calls_total", labels(server="fake", tool="other", outcome="error"))] == 1
        assert got[("cot_proxy_tool_calls_total", labels(server="none", tool="other", outcome="error"))] == 1
        assert got[("cot_proxy_tool_calls_total", labels(server="other", tool="other__progress", outcome="ok"))] == 1
        assert got[("cot_proxy_tool_call_seconds_count", labels(server="fake"))] == calls + 2
        assert got[("cot_proxy_tool_call_seconds_count", labels(server="other"))] == 1
        assert got[("cot_proxy_tool_call_request_bytes_total", labels(server="other"))] == len(r.request.body)
        assert got[("cot_proxy_tool_call_response_bytes_total", labels(server="other"))] == len(r.content)
        assert not [k for k in got if any("no_such" in v or "nobody" in v for _, v in k[1])]


def sdk(url: str, work, headers: dict[str, str]):
    """The official SDK's client (2025-11-25), its HTTP client sending `headers` with each request."""
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                async with mcp.ClientSession(*streams) as session:
                    await session.initialize()
                    return await work(session)
    return asyncio.run(run())


def tool_spans(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.name.startswith("execute_tool ") and s.trace_id == TRACE_ID]


def test_each_tool_call_is_an_execute_tool_span_in_the_clients_trace(recorded, receiver):
    proxy, _ = recorded

    async def work(session):
        added = await session.call_tool("other__add", {"a": 2, "b": 3})
        failed = await session.call_tool("other__fails", {})
        try:
            await session.call_tool("other__no_such_tool", {})
        except MCPError as err:
            return added, failed, err
        return added, failed, None

    added, failed, refused = sdk(proxy.url + "/mcp", work, {"traceparent": TRACEPARENT})
    assert added.content[0].text == "5" and failed.is_error and refused.error.code == -32602
    spans = receiver.wait(lambda got: len(tool_spans(got)) == 3
                          and {t.parent_id for t in tool_spans(got)} <= {s.span_id for s in got})
    by_name = {s.name: s for s in tool_spans(spans)}
    ok, tool_error, error = by_name["execute_tool other__add"], by_name["execute_tool other__fails"], \
        by_name["execute_tool other"]
    for span in (ok, tool_error, error):  # under its request's span, which continues the client's
        parent = next(s for s in spans if s.span_id == span.parent_id)
        assert (span.kind, parent.kind, parent.trace_id, parent.parent_id) == ("INTERNAL", "SERVER", TRACE_ID,
                                                                                CLIENT_PARENT)
        assert parent.start_ns <= span.start_ns <= span.end_ns <= parent.end_ns
        assert span.attributes["gen_ai.tool.call.id"] == span.attributes["jsonrpc.request.id"].isdigit() * \
            span.attributes["jsonrpc.request.id"]
    call_id = ok.attributes["jsonrpc.request.id"]
    assert ok.attributes == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "other__add",
                             "gen_ai.tool.type": "extension", "gen_ai.tool.call.id": call_id,
                             "mcp.method.name": "tools/call", "jsonrpc.request.id": call_id,
                             "cot_proxy.mcp.server": "other"}
    assert ok.status == "UNSET" and ok.service == "cot_proxy"
    assert (tool_error.status, tool_error.attributes["error.type"]) == ("ERROR", "tool_error")
    assert (error.status, error.attributes["error.type"], error.attributes["rpc.response.status_code"],
            error.attributes["gen_ai.tool.name"]) == ("ERROR", "-32602", "-32602", "other__no_such_tool")
    assert not any("arguments" in k or "result" in k for s in (ok, tool_error, error) for k in s.attributes)


# ---------------------------------------------------------------- a team key's usage rows (SQLite and Redis)
ADMIN = "admin-key-for-mcp-usage"


def key_calls(proxy, key: str):
    """The key's calls through the SDK: two that answer, one the tool fails, one the server does not know, one
    outside the key's globs (it ends at the proxy)."""
    async def work(session):
        await session.call_tool("fake__add", {"a": 1, "b": 1})
        await session.call_tool("fake__add", {"a": 2, "b": 2})
        assert (await session.call_tool("fake__fails", {})).is_error
        for name in ("fake__no_such_tool", "other__add"):
            with pytest.raises(MCPError):
                await session.call_tool(name, {})
    sdk(proxy.url + "/mcp", work, {"Authorization": f"Bearer {key}"})


def tool_rows(keys, *args: str) -> list[list[str]]:
    done = keys("usage", "--csv", *args)
    assert done.returncode == 0, done.stderr
    return [line.split(",") for line in done.stdout.splitlines()]


def check_usage_rows(keys) -> None:
    def written() -> list[list[str]] | None:  # the worker writes its rows every half second
        found = tool_rows(keys, "--tools")
        return found if sum(int(r[4]) for r in found[1:]) == 5 else None

    rows = poll(written, timeout=20) or tool_rows(keys, "--tools")
    assert rows[0] == ["key", "server", "tool", "day", "calls", "errors", "seconds", "bytes_in", "bytes_out",
                       "cost_usd"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    by_tool = {(r[1], r[2]): r for r in rows[1:]}
    assert sorted(by_tool) == [("fake", "fake__add"), ("fake", "fake__fails"), ("fake", "other"), ("none", "other")]
    assert all(r[0] == "bot" and r[3] == today and r[9] == "0.00" for r in rows[1:])
    assert [by_tool[t][4:6] for t in sorted(by_tool)] == [["2", "0"], ["1", "1"], ["1", "1"], ["1", "1"]]
    add = by_tool[("fake", "fake__add")]
    assert float(add[6]) > 0 and int(add[7]) > 100 and int(add[8]) > 100  # seconds, bytes in and out
    model_rows = tool_rows(keys)  # the model rows' view is as it was: its header, no tool calls in it
    assert model_rows[0] == ["key", "model", "day", "requests", "input_tokens", "output_tokens", "cost_usd",
                             "unpriced_requests"] and len(model_rows) == 1


def test_a_keys_tool_calls_are_its_usage_rows_in_sqlite(module_fake, tmp_path, receiver):
    from tests.integration.test_team_keys import create, keys
    db = tmp_path / "keys.db"
    bot = create(db, "bot", "--tools", "fake__*")
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=SERVERS, TRACING="on", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                       OTEL_BSP_SCHEDULE_DELAY="50") as proxy:
        key_calls(proxy, bot)
        check_usage_rows(lambda *args: keys(db, *args))
        spans = receiver.wait(lambda got: len([s for s in got if s.attributes.get("cot_proxy.key.name") == "bot"
                                               and s.name.startswith("execute_tool")]) == 5)
    names = sorted(s.name for s in spans if s.attributes.get("cot_proxy.key.name") == "bot"
                   and s.name.startswith("execute_tool"))
    assert names == ["execute_tool fake__add"] * 2 + ["execute_tool fake__fails"] + ["execute_tool other"] * 2
    assert bot not in json.dumps([s.attributes for s in spans])  # the key's name, never the key


def test_a_keys_tool_calls_are_its_usage_rows_in_redis(module_fake):
    from tests.integration.test_shared_redis import create, keys
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    try:
        bot = create(server.url, "bot", "--tools", "fake__*")
        with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                           REDIS_URL=server.url, MCP_SERVERS=SERVERS) as proxy:
            key_calls(proxy, bot)
            check_usage_rows(lambda *args: keys(server.url, *args))
    finally:
        server.close()
