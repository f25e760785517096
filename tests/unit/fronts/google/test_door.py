"""The Google door's routes, keys and errors in-process (build_proxy with a fake upstream object;
argoproxy/fronts/google/door.py, routes.py)."""

from __future__ import annotations

import json

import pytest

from argoproxy.edge.http_objects import Request
from argoproxy.edge.paths import canonical
from tests.fakes.fake_upstream import sse_chunks
from tests.unit.fronts.google.test_request import USER


BODY = {"contents": [USER]}


@pytest.mark.parametrize("target, model, kind", [
    ("/v1beta/models/gpt-4o:generateContent", "gpt-4o", "generate_content"),
    ("/v1/models/gpt-4o:streamGenerateContent", "gpt-4o", "stream_generate_content"),
    ("/V1BETA/MODELS/Gpt-4o%3aCOUNTTOKENS", "Gpt-4o", "count_tokens"),
    ("/v1beta/models/argo:gpt-4o:generateContent", "argo:gpt-4o", "generate_content"),
    ("/v1beta/models/meta-llama/Llama-3:generateContent", "meta-llama/Llama-3", "generate_content"),
    ("/v1beta/models/argo:gpt-4o", "argo:gpt-4o", "model"),
    ("/v1beta/models/x:embedContent", "x", "embed_content"),
    ("/v1beta/models/x:predict", "x:predict", "model"),
])
def test_the_model_segment(target, model, kind):
    from argoproxy.edge.classify import standard_table
    from argoproxy.fronts import FRONTS
    route = standard_table(True, ("*",), FRONTS.values()).classify(canonical(target))
    assert (route.model, route.kind, route.front) == (model, kind, "google")


def test_keys_checked_and_never_forwarded(make):
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="sk-good")
    ok = door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=sk-good&alt=json", BODY))
    assert ok.status_code == 200 and "key" not in up.sent[-1].url
    ok = door.handle(Request.of("POST", "/v1beta/models/m:generateContent", BODY, headers={"X-Goog-Api-Key": "sk-good"}))
    assert ok.status_code == 200 and "sk-good" not in json.dumps(up.sent[-1].headers)
    for req in (Request.of("POST", "/v1beta/models/m:generateContent?key=bad", BODY),
                Request.of("POST", "/v1/chat/completions?key=sk-good", {"model": "m", "messages": []})):
        answer = door.handle(req)
        assert answer.status_code == 401
    assert json.loads(door.handle(Request.of("GET", "/v1beta/models?key=bad")).get_data())["error"]["status"] \
        == "UNAUTHENTICATED"


def test_auth_off_keys_still_stay_here(make):
    door, up, _ = make()
    door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=AIzaClientKey", BODY,
                           headers={"X-Goog-Api-Key": "AIzaClientKey", "X-Goog-Api-Client": "genai-py"}))
    sent = up.sent[-1]
    assert "AIza" not in sent.url + json.dumps(sent.headers) and "goog" not in json.dumps(sent.headers).lower()


def test_allow_list_on_the_path_model_and_the_lists(make):
    door, up, _ = make(ALLOWED_MODELS="gpt-4o")
    refused = door.handle(Request.of("POST", "/v1beta/models/evil:generateContent", BODY))
    body = json.loads(refused.get_data())
    assert refused.status_code == 403 and body["error"]["status"] == "PERMISSION_DENIED" and up.sent == []
    listing = json.loads(door.handle(Request.of("GET", "/v1beta/models")).get_data())
    assert [m["name"] for m in listing["models"]] == ["models/gpt-4o"]
    assert door.handle(Request.of("GET", "/v1beta/models/evil")).status_code == 404
    google = door.handle(Request.of("GET", "/v1/models", headers={"X-Goog-Api-Client": "google-genai-sdk"}))
    assert "models" in json.loads(google.get_data())  # /v1/models in Google's shape for a Google client
    assert "data" in json.loads(door.handle(Request.of("GET", "/v1/models")).get_data())


def test_stream_route_sends_a_stream(make):
    door, up, _ = make()
    up.stream(sse_chunks(["Hel", "lo"]))
    answer = door.handle(Request.of("POST", "/v1beta/models/m:streamGenerateContent?alt=sse", BODY))
    data = answer.get_data()
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert json.loads(up.sent[-1].body)["stream"] is True and data.count(b"data: ") == 3
    bad = door.handle(Request.of("POST", "/v1beta/models/m:streamGenerateContent?alt=proto", BODY))
    assert bad.status_code == 400


def test_key_limits_answer_resource_exhausted(make, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", "sk-team-a")
    door, up, _ = make(ENABLE_AUTH="true", KEY_LIMITS='{"TEAM_A_KEY": {"rpm": 1}}', TEAM_A_KEY="sk-team-a")
    first = door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=sk-team-a", BODY))
    second = door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=sk-team-a", BODY))
    assert first.status_code == 200 and second.status_code == 429 and len(up.sent) == 1
    assert json.loads(second.get_data())["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert int(second.headers["Retry-After"]) >= 1
