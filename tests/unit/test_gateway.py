"""The pipeline's logic in-process: the Door and Gateway built by build_proxy, a Request in and an Answer out,
with a fake upstream object (tests/fakes/fake_upstream.py). No server, no sockets, no Flask: milliseconds per
test. The wire (Gunicorn, real sockets, SDKs) is tested end to end in tests/integration/."""

from __future__ import annotations

import json
import subprocess
import sys

from argoproxy.edge.http_objects import Answer, Request
from tests.fakes.fake_upstream import chat_completion, sse_chunks
from tests.proxy_process import ROOT

MSG = [{"role": "user", "content": "hi"}]


def body_of(answer: Answer) -> bytes:
    return answer.get_data()


def json_of(answer: Answer) -> dict:
    return json.loads(body_of(answer))


def test_chat_through_the_door(make):
    door, up, calls = make()
    answer = door.handle(Request.of("POST", "/v1//chat/completions/", {"model": "m", "messages": MSG}))
    assert answer.status_code == 200 and json_of(answer)["choices"][0]["message"]["content"] == "Hello"
    assert [r.url for r in up.sent] == ["http://upstream.test/v1/chat/completions"]
    assert [(c.start.kind, c.start.client.path, c.end.status) for c in calls] == [("chat", "v1/chat/completions", 200)]


def test_refused_paths_never_reach_the_upstream_and_are_observed(make):
    door, up, calls = make()
    for target in ("/v1/chat/completions%23", "/v1/../admin", "/v1/chat/completions;x=1", "/v1/%2e%2e/x"):
        answer = door.handle(Request.of("POST", target, {"model": "m", "messages": MSG}, request_id="rid-1"))
        err = json_of(answer)["error"]
        assert answer.status_code == 400 and err["code"] == "invalid_path" and err["request_id"] == "rid-1"
    assert up.sent == [] and [c.start.kind for c in calls] == ["invalid_path"] * 4


def test_allow_list_on_api_forwarded_query_and_model_routes(make):
    door, up, _ = make(ALLOWED_MODELS="gpt-4o")
    refused = [Request.of("POST", "/V1/Chat/Completions", {"model": "evil", "messages": MSG}),
               Request.of("POST", "/v1/images/generations", {"model": "evil", "prompt": "x"}),
               Request.of("GET", "/v1/files?model=evil"),
               Request.of("GET", "/v1/models/evil")]
    assert [door.handle(r).status_code for r in refused] == [403, 403, 403, 404]
    assert up.sent == []
    listing = json_of(door.handle(Request.of("GET", "/models/")))
    assert [m["id"] for m in listing["data"]] == ["gpt-4o"]


def test_duplicate_keys_are_400(make):
    door, up, _ = make()
    answer = door.handle(Request.of("POST", "/v1/chat/completions",
                                    b'{"model": "a", "model": "b", "messages": [{"role": "user", "content": "x"}]}'))
    assert answer.status_code == 400 and json_of(answer)["error"]["code"] == "duplicate_key" and up.sent == []


def test_auth_on_every_route_and_the_client_key_never_goes_upstream(make):
    door, up, calls = make(ENABLE_AUTH="true", API_KEY_SECRET="k1", OPENAI_API_KEY="sk-up")
    for target in ("/v1/chat/completions", "/v1/files", "/metrics", "/v1/models", "/nowhere"):
        assert door.handle(Request.of("GET", target)).status_code == 401
    assert door.handle(Request.of("GET", "/health")).status_code != 401
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {"model": "m", "messages": MSG},
                                    headers={"Authorization": "Bearer k1"}))
    assert answer.status_code == 200 and up.sent[-1].headers["Authorization"] == "Bearer sk-up"
    assert {c.end.status for c in calls} >= {401, 200}


def test_think_tags_split_across_stream_chunks(make):
    door, up, _ = make()
    up.stream(sse_chunks(["<th", "ink>secret</thi", "nk>Hi", " there"]))
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {"model": "m", "messages": MSG, "stream": True}))
    assert answer.is_streamed and answer.headers["Content-Type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in body_of(answer).decode().split("\n\n")
              if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "Hi there"


def test_upstream_stream_aggregated_for_a_whole_answer(make):
    door, up, _ = make(UPSTREAM_MODE="stream")
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {"model": "m", "messages": MSG}))
    assert json.loads(up.sent[0].body)["stream"] is True
    assert answer.status_code == 200 and json_of(answer)["choices"][0]["message"]["content"] == "Hello"


def test_llm_params_and_think_on_a_whole_answer(make):
    door, up, _ = make(LLM_PARAMS="model=m,temperature=0.1")
    up.reply(chat_completion("<think>why</think>Because"))
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {"model": "m", "messages": MSG}))
    assert json.loads(up.sent[0].body)["temperature"] == 0.1
    assert json_of(answer)["choices"][0]["message"]["content"] == "Because"


def test_forward_paths_and_upstream_errors(make):
    door, up, _ = make(FORWARD_PATHS="/v1/files*")
    assert door.handle(Request.of("GET", "/v1/files/abc")).status_code == 200
    assert door.handle(Request.of("GET", "/v1/batches")).status_code == 404
    up.reply({"error": {"message": "bad key sk-up-secret", "type": "invalid_request_error"}}, status=401)
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {"model": "m", "messages": MSG}))
    assert answer.status_code == 401 and [r.url for r in up.sent][-1].endswith("/v1/chat/completions")


def test_front_doors_keep_their_error_shape(make):
    door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="k1")
    body = json_of(door.handle(Request.of("POST", "/v1/messages", {"model": "m"})))
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"


def test_compatible_mode_answers_errors_with_200(make):
    door, _, _ = make(COMPATIBLE_MODE="true")
    answer = door.handle(Request.of("POST", "/v1/chat/completions", b"{bad"))
    assert answer.status_code == 200 and json_of(answer)["error"]["code"] == "invalid_json"


def test_methods_unknown_routes_and_metrics(make):
    door, _, _ = make()
    answer = door.handle(Request.of("GET", "/v1/chat/completions"))
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    metrics = door.handle(Request.of("GET", "/metrics"))
    assert metrics.status_code == 200 and b'cot_proxy_requests_total{' in body_of(metrics)


def test_the_door_and_everything_behind_it_import_no_flask():
    """Flask is the app layer's alone (app.py, routes.py): the door, the request ids and the pipeline run without it."""
    code = ("import sys; import argoproxy.serve.proxy, argoproxy.edge.http_objects, argoproxy.edge.request_ids, argoproxy.serve.door; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
