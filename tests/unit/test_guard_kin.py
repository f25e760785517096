"""Kin of issue 12's examples, found by attacking the running proxy from outside, pinned in-process (the door and
gateway from build_proxy, a fake upstream object): every spelling a lenient upstream would read as `model` is
checked against ALLOWED_MODELS, or refused when the proxy and the upstream could read different values."""

from __future__ import annotations

import gzip
import json

import pytest

from argoproxy.edge.http_objects import Request
from argoproxy.serve.proxy import build_proxy
from argoproxy.config.settings import load_settings
from tests.fakes.fake_upstream import FakeUpstream

MSG = [{"role": "user", "content": "hi"}]
GOOD = {"model": "gpt-4o", "messages": MSG}


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    """A door with ALLOWED_MODELS=gpt-4o in front of a fake upstream: (door, upstream)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off", "ALLOWED_MODELS": "gpt-4o",
                                          "TARGET_BASE_URL": "http://upstream.test/v1/"})
    upstream = FakeUpstream()
    return build_proxy(settings, upstream), upstream


def status_and_code(answer) -> tuple[int, str | None]:
    body = json.loads(answer.get_data())
    return answer.status_code, (body.get("error") or {}).get("code")


@pytest.mark.parametrize("query", ["MODEL=evil", "Model=evil", "mode%6c=evil", "%6D%6F%64%65%6C=evil",
                                   "x=1;model=evil", "model[]=evil", "model%5B%5D=evil", "model+=evil",
                                   "a=1&mode%6C=evil"])
def test_query_spellings_of_model_are_checked(guarded, query):
    door, up = guarded
    for method, target, body in (("POST", "/v1/chat/completions", GOOD), ("GET", "/v1/files", None)):
        answer = door.handle(Request.of(method, f"{target}?{query}", body))
        assert status_and_code(answer) == (403, "model_not_allowed"), (target, query, answer.get_data())
    assert up.sent == []


def test_query_model_given_twice_in_two_spellings_is_400(guarded):
    door, up = guarded
    answer = door.handle(Request.of("GET", "/v1/files?model=gpt-4o&MODEL=gpt-4o"))
    assert status_and_code(answer) == (400, "duplicate_parameter") and up.sent == []
    answer = door.handle(Request.of("GET", "/v1/files?model=%ff"))
    assert status_and_code(answer) == (400, "invalid_query") and up.sent == []


def test_allowed_query_model_and_unrelated_parameters_pass(guarded):
    door, up = guarded
    for query in ("model=gpt-4o", "limit=10&order=desc", "models=evil", "x=model"):
        assert door.handle(Request.of("GET", f"/v1/files?{query}")).status_code == 200, query
    assert [r.url.rsplit("?", 1)[1] for r in up.sent] == ["model=gpt-4o", "limit=10&order=desc", "models=evil",
                                                          "x=model"]


def multipart(fields: list[tuple[str, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for disposition, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("content_type, body", [
    ("MULTIPART/FORM-DATA; BOUNDARY=XyZ", multipart([('name="model"', b"evil")])),
    ("Multipart/Form-Data; boundary=XyZ", multipart([('name="model"', b"evil")])),
    ("multipart/mixed; boundary=XyZ", multipart([('name="model"', b"evil")])),
    ("multipart/form-data; boundary=XyZ", multipart([('name="Model"', b"evil")])),
    ("multipart/form-data; boundary=XyZ", multipart([('name="model[]"', b"evil")])),
    ("application/x-www-form-urlencoded", b"x=1;model=evil"),
    ("application/x-www-form-urlencoded", b"MODEL=evil"),
    ("Application/X-WWW-Form-Urlencoded", b"model=evil"),
])
def test_form_spellings_of_model_are_checked(guarded, content_type, body):
    door, up = guarded
    answer = door.handle(Request.of("POST", "/v1/audio/transcriptions", body, {"Content-Type": content_type}))
    assert status_and_code(answer) == (403, "model_not_allowed"), answer.get_data()
    assert up.sent == []


def test_multipart_with_two_boundaries_is_refused(guarded):
    door, up = guarded
    body = multipart([('name="model"', b"gpt-4o")], "abc") + multipart([('name="model"', b"evil")], "XyZ")
    for content_type in ("multipart/form-data; boundary=XyZ; boundary=abc",
                         "multipart/form-data; boundary=abc; BOUNDARY=XyZ"):
        answer = door.handle(Request.of("POST", "/v1/audio/speech", body, {"Content-Type": content_type}))
        assert answer.status_code == 400, (content_type, answer.get_data())
    assert up.sent == []


def test_forwarded_json_array_elements_are_checked(guarded):
    door, up = guarded
    answer = door.handle(Request.of("POST", "/v1/audio/speech", b'[{"model": "gpt-4o"}, {"model": "evil"}]',
                                    {"Content-Type": "application/json"}))
    assert status_and_code(answer) == (403, "model_not_allowed") and up.sent == []


@pytest.mark.parametrize("target", ["/v1/chat/completions", "/v1/audio/speech", "/v1/responses"])
@pytest.mark.parametrize("key", ["Model", "MODEL", "mOdel"])
def test_top_level_keys_differing_only_in_case_are_400(guarded, target, key):
    # Go's encoding/json (Ollama, LocalAI...) matches keys case-insensitively, the last one winning.
    door, up = guarded
    raw = b'{"model": "gpt-4o", "%s": "evil", "messages": [{"role": "user", "content": "x"}], "input": "x"}' % \
        key.encode()
    answer = door.handle(Request.of("POST", target, raw, {"Content-Type": "application/json"}))
    assert answer.status_code == 400 and b"duplicate_key" in answer.get_data(), answer.get_data()
    assert up.sent == []


def test_keys_differing_in_case_below_the_top_level_are_kept(guarded):
    door, up = guarded
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"Name": {"type": "string"}, "name": {"type": "string"}}}}}
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {**GOOD, "tools": [tool]}))
    assert answer.status_code == 200 and len(up.sent) == 1


@pytest.mark.parametrize("target", ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings"])
def test_compressed_bodies_on_routes_the_proxy_reads_are_415(guarded, target):
    door, up = guarded
    raw = gzip.compress(json.dumps({**GOOD, "input": "x", "max_tokens": 5}).encode())
    answer = door.handle(Request.of("POST", target, raw, {"Content-Type": "application/json",
                                                          "Content-Encoding": "gzip"}))
    assert answer.status_code == 415 and b"Content-Encoding" in answer.get_data(), answer.get_data()
    assert up.sent == []


def test_argo_model_list_and_details_follow_the_allow_list_after_alias_resolution(tmp_path, monkeypatch):
    # A chat with `argo:gpt-4o` is allowed by ALLOWED_MODELS=gpt4o (checked on the resolved id), so the
    # list and the detail route show it too; other aliases stay hidden.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off", "BACKEND": "argo",
                                          "ARGO_USER": "alice", "ALLOWED_MODELS": "gpt4o"})
    door = build_proxy(settings, FakeUpstream())
    listing = json.loads(door.handle(Request.of("GET", "/v1/models")).get_data())
    assert listing["data"] and all(m["internal_name"] == "gpt4o" for m in listing["data"])
    assert "argo:gpt-4o" in {m["id"] for m in listing["data"]}
    assert door.handle(Request.of("GET", "/v1/models/argo:gpt-4o")).status_code == 200
    assert status_and_code(door.handle(Request.of("GET", "/v1/models/argo:gpt-o1"))) == (404, "model_not_found")


def test_key_budgets_count_forwarded_and_backend_routes_too(tmp_path, monkeypatch):
    # A key with `rpm: 2` must not get unmetered calls through a forwarded route (images, audio...) or ARGO's
    # raw routes: every call that goes upstream on the client's behalf counts.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("TEAM_KEY", "team-key-0123456789")
    auth = {"Authorization": "Bearer team-key-0123456789"}
    for env, target, body in (({"TARGET_BASE_URL": "http://upstream.test/v1/"}, "/v1/audio/speech", {"model": "m"}),
                              ({"BACKEND": "argo", "ARGO_USER": "alice"}, "/v1/chat", {"model": "gpt4o",
                                                                                      "prompt": ["x"]})):
        settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off", "ENABLE_AUTH": "true",
                                              "KEY_LIMITS": '{"TEAM_KEY": {"rpm": 2}}', "TEAM_KEY": "team-key-0123456789",
                                              **env})
        upstream = FakeUpstream()
        door = build_proxy(settings, upstream)
        for _ in range(3):
            upstream.reply({"response": "ok"})
        statuses = [door.handle(Request.of("POST", target, body, dict(auth))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429], (target, statuses)
        assert len(upstream.sent) == 2
