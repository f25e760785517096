"""The one guard (argoproxy/pipeline/guard.py, issue 37 item 1) in-process: the bypasses the copies let through are
refused under ALLOWED_MODELS and under a team key's globs alike, MODEL_FREE_PATHS lets the paths that name no model
through, and every upstream-bound route of every backend reaches `Guard.check`."""

from __future__ import annotations

import json
import time

import pytest

from argoproxy.config.model_free_paths import DEFAULT_MODEL_FREE, route_globs
from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.fronts.google.routes import METHODS as GOOGLE_METHODS
from argoproxy.pipeline.guard import Guard, ModelFree
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore

MSG = [{"role": "user", "content": "hi"}]
TEAM_KEY = "sk-proxy-team-0123456789abcdef"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(params=["allow_list", "key_globs", "allow_list_ollama_passed", "key_globs_ollama_passed"])
def guarded(request, make, tmp_path):
    """(door, upstream, headers): a proxy holding requests to gpt-4o* by ALLOWED_MODELS, or by a team key's globs;
    with FRONTS_PASSTHROUGH=ollama (an upstream that is itself Ollama: /api/* forwarded as it is) or not."""
    passed = {"FRONTS_PASSTHROUGH": "ollama"} if request.param.endswith("passed") else {}
    if request.param.startswith("allow_list"):
        door, up, _ = make(ALLOWED_MODELS="gpt-4o*", **passed)
        return door, up, {}
    db = tmp_path / "keys.db"
    SQLiteKeyStore(str(db)).create(KeyRecord("team", digest(TEAM_KEY), TEAM_KEY[:12], ("gpt-4o*",),
                                             created=time.time()))
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", KEYS_DB=str(db), **passed)
    return door, up, {"Authorization": f"Bearer {TEAM_KEY}"}


def refused(status: int, body: dict) -> bool:
    """A 403 model_not_allowed in the door's shape (OpenAI's, or Ollama's `{"error": "..."}` on /api/*)."""
    error = body.get("error")
    return status == 403 and (error.get("code") == "model_not_allowed" if isinstance(error, dict)
                              else "model" in str(error))


def handle(door, method: str, target: str, body: bytes | dict | None = None, headers: dict | None = None):
    answer = door.handle(Request.of(method, target, body, headers))
    return answer.status_code, json.loads(answer.get_data() or b"{}")


def test_a_json_body_sent_as_a_form_is_read_as_json(guarded):
    """Bypass (a): llama.cpp's server and Ollama read JSON whatever the Content-Type says."""
    door, up, auth = guarded
    evil = json.dumps({"model": "evil", "messages": MSG}).encode()
    for target in ("/api/chat", "/v1/images/generations", "/anything/else"):
        status, body = handle(door, "POST", target, evil, {**FORM, **auth})
        assert refused(status, body), (target, body)
        status, body = handle(door, "POST", target, b' \n{"Model": "evil"}', {"Content-Type": "text/plain", **auth})
        assert status in (400, 403), (target, body)  # a key in another case is Go's `model` (Ollama): never sent
    assert up.sent == []
    status, _ = handle(door, "POST", "/v1/images/generations", b'{"model": "gpt-4o", "prompt": "x"}', {**FORM, **auth})
    assert status == 200 and len(up.sent) == 1
    status, _ = handle(door, "POST", "/v1/audio/speech", b"model=gpt-4o-mini-tts&input=hi", {**FORM, **auth})
    assert status == 200  # a form that is not JSON is still read as a form


def test_azure_batch_paths_are_checked_like_v1_batches(guarded):
    """Bypass (b): /openai/files and /openai/batches?api-version= carry batch work as /v1/files and /v1/batches."""
    door, up, auth = guarded
    line = json.dumps({"custom_id": "1", "method": "POST", "url": "/chat/completions", "body": {"model": "evil"}})
    boundary = "b0und"
    upload = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
              f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.jsonl"\r\n'
              f'Content-Type: application/jsonl\r\n\r\n{line}\n\r\n--{boundary}--\r\n').encode()
    status, body = handle(door, "POST", "/openai/files?api-version=2024-10-21", upload,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}", **auth})
    assert status == 403 and "Line 1" in body["error"]["message"], body
    assert up.sent == []
    up.reply((line + "\n").encode())  # the input file, as the upstream holds it
    status, body = handle(door, "POST", "/openai/batches?api-version=2024-10-21",
                          {"input_file_id": "file-1", "endpoint": "/chat/completions"}, auth)
    assert status == 403 and "input file file-1" in body["error"]["message"], body
    assert [(r.method, r.url) for r in up.sent] == \
        [("GET", "http://upstream.test/v1/openai/files/file-1/content?api-version=2024-10-21")]


@pytest.mark.parametrize("method,target,body", [
    ("POST", "/api/pull", {"name": "evil"}),
    ("POST", "/api/pull", {"model": "evil"}),
    ("DELETE", "/api/delete", {"name": "evil"}),
    ("POST", "/api/push", {"name": "evil"}),
    ("POST", "/api/create", {"model": "gpt-4o-copy", "from": "evil"}),
    ("POST", "/api/copy", {"source": "gpt-4o", "destination": "evil"}),
    ("POST", "/v1/videos", {"prompt": "a cat"}),  # no model: the upstream's default (sora-2)
    ("POST", "/v1/videos", None),
    ("POST", "/tokenize", b"\x00\x01binary"),  # a body that is neither JSON nor a form: unreadable
    # a permitted top-level model carried forbidden ones nested inside (the attacker review)
    ("POST", "/v1/fine_tuning/jobs", {"model": "gpt-4o", "training_file": "f", "method": {
        "type": "reinforcement", "reinforcement": {"grader": {"type": "score_model", "model": "evil"}}}}),
    ("POST", "/v1/realtime/client_secrets", {"model": "gpt-4o", "session": {"type": "realtime", "model": "evil"}}),
    ("POST", "/v1/evals/e1/runs", {"model": "gpt-4o", "data_source": {"type": "completions", "model": "evil"}}),
    ("POST", "/v1/anything",
     json.dumps([{"model": "gpt-4o", "tools": [{"type": "image_generation", "Model": "evil"}]}]).encode()),
])
def test_models_named_elsewhere_or_not_at_all_are_refused(guarded, method, target, body):
    """Bypass (c): Ollama's API names its model under `name` (and source/destination/from); a request naming none
    would get the upstream's default."""
    door, up, auth = guarded
    status, answer = handle(door, method, target, body, auth)
    assert refused(status, answer), answer
    assert up.sent == []


def test_paths_that_name_no_model_pass_and_allowed_names_pass(guarded):
    door, up, auth = guarded
    for method, target in (("GET", "/v1/files"), ("GET", "/v1/files/file-1/content"), ("DELETE", "/v1/files/f"),
                           ("GET", "/openai/batches/b-1?api-version=1"), ("HEAD", "/v1/files"),
                           ("GET", "/v1/chat/completions/c-1"), ("POST", "/v1/batches/b-1/cancel")):
        assert handle(door, method, target, None, auth)[0] == 200, target
    assert handle(door, "POST", "/api/pull", {"name": "gpt-4o"}, auth)[0] == (403 if auth else 200)  # operator's
    assert handle(door, "POST", "/v1/videos", {"model": "gpt-4o-video", "prompt": "x"}, auth)[0] == 200
    schema = {"type": "object", "properties": {"model": {"type": "string"}}}  # a nested non-string names none
    assert handle(door, "POST", "/v1/videos", {"model": "gpt-4o-video", "schema": schema}, auth)[0] == 200
    nested = {"model": "gpt-4o", "session": {"model": "gpt-4o-realtime"}}  # nested names pass when allowed
    assert handle(door, "POST", "/v1/realtime/client_secrets", nested, auth)[0] == 200


def test_model_free_paths_are_the_operators(make):
    door, up, _ = make(ALLOWED_MODELS="gpt-4o", MODEL_FREE_PATHS="POST /tokenize, /props*")
    assert handle(door, "POST", "/tokenize", {"content": "hi"})[0] == 200
    assert handle(door, "GET", "/props/x")[0] == 200
    assert handle(door, "GET", "/v1/files")[0] == 403  # the default list is replaced, not extended
    assert handle(door, "POST", "/tokenize", {"content": "hi", "model": "evil"})[0] == 403  # a named one is checked


def test_model_free_globs_cover_the_apis_spellings():
    free = ModelFree(DEFAULT_MODEL_FREE)
    assert free("GET", "v1/files") and free("HEAD", "v1/files/abc") and free("GET", "openai/files/abc/content")
    assert free("GET", "files") and free("GET", "openai/v1/batches/x") and free("DELETE", "V1/Files/x")
    assert not free("POST", "v1/videos") and not free("POST", "v1/images/generations") and not free("GET", "x")
    assert not free("POST", "api/pull") and not free("POST", "v1/chat/completions")


def test_a_bad_model_free_entry_stops_start_up_naming_the_key():
    assert route_globs("GET /v1/files*, /props") == ("GET /v1/files*", "/props")
    with pytest.raises(ValueError):
        route_globs("FETCH /v1/files")
    with pytest.raises(ValueError):
        route_globs("v1/files")
    with pytest.raises(Exception) as info:
        load_settings({}, environ={"MODEL_FREE_PATHS": "GET v1/files"})
    assert "MODEL_FREE_PATHS" in str(info.value) or "model_free_paths" in str(info.value)


# ------------------------------------------------------------------ every upstream-bound route reaches the guard
ROUTE_SAMPLES = {  # a request for each route kind, by the kinds the route table and backends' extra routes name
    "chat": ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": MSG}),
    "completions": ("POST", "/v1/completions", {"model": "gpt-4o", "prompt": "hi"}),
    "embeddings": ("POST", "/v1/embeddings", {"model": "gpt-4o", "input": "hi"}),
    "responses": ("POST", "/v1/responses", {"model": "gpt-4o", "input": "hi"}),
    "interactions": ("POST", "/v1beta/interactions", {"model": "gpt-4o", "input": "hi"}),
    "responses_compact": ("POST", "/v1/responses/compact", {"model": "gpt-4o", "input": "hi"}),
    "messages": ("POST", "/v1/messages", {"model": "gpt-4o", "max_tokens": 8, "messages": MSG}),
    "count_tokens": ("POST", "/v1/messages/count_tokens", {"model": "gpt-4o", "messages": MSG}),
    "generate_content": ("POST", "/v1beta/models/gpt-4o:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}),
    "embed_content": ("POST", "/v1beta/models/gpt-4o:embedContent", {"content": {"parts": [{"text": "x"}]}}),
    "batch_embed_contents": ("POST", "/v1beta/models/gpt-4o:batchEmbedContents",
                             {"requests": [{"content": {"parts": [{"text": "x"}]}}]}),
    "stream_generate_content": ("POST", "/v1beta/models/gpt-4o:streamGenerateContent",
                                {"contents": [{"parts": [{"text": "x"}]}]}),
    "count_google_tokens": ("POST", "/v1beta/models/gpt-4o:countTokens", {"contents": [{"parts": [{"text": "x"}]}]}),
    "models": ("GET", "/v1/models", None),
    "model": ("GET", "/v1/models/gpt-4o", None),
    "argo_chat": ("POST", "/v1/chat", {"model": "gpt4o", "prompt": ["hi"]}),
    "argo_embed": ("POST", "/v1/embed", {"model": "v3small", "prompt": ["hi"]}),
    "argo_status": ("GET", "/v1/status", None),
    "passthrough": ("POST", "/v1/images/generations", {"model": "gpt-4o", "prompt": "x"}),
    "ollama_chat": ("POST", "/api/chat", {"model": "gpt-4o", "messages": MSG}),
    "ollama_generate": ("POST", "/api/generate", {"model": "gpt-4o", "prompt": "hi"}),
    "ollama_embed": ("POST", "/api/embed", {"model": "gpt-4o", "input": "hi"}),
    "ollama_embeddings": ("POST", "/api/embeddings", {"model": "gpt-4o", "prompt": "hi"}),
    "ollama_tags": ("GET", "/api/tags", None),
    "ollama_ps": ("GET", "/api/ps", None),
}
OWN_KINDS = {"root", "health", "metrics", "ui", "ui_data", "ollama_version"}  # answered by the proxy
# (and stored responses, family `state`: answered from the proxy's store)
BACKENDS = {
    "openai": {},
    "dashscope": {"BACKEND": "dashscope", "DASHSCOPE_API_KEY": "k"},
    "argo": {"BACKEND": "argo", "ARGO_USER": "tester"},
    "argo_native": {"BACKEND": "argo", "ARGO_USER": "tester", "USE_NATIVE_OPENAI": "true"},
    "routed": {"MODELS": json.dumps([{"name": "gpt-4o", "backend": "openai", "base_url": "http://upstream.test/v1"}])},
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_upstream_bound_route_reaches_the_one_guard(make, monkeypatch, backend):
    """Every route the table holds (fixed, front doors, the backend's own, forwarded) reaches Guard.check once: a
    new route that skips it has no sample here, or fails below."""
    reached: list[str] = []
    original = Guard.check

    def check(self, call, *args, **kwargs):
        reached.append(call.plan.kind)
        return original(self, call, *args, **kwargs)
    monkeypatch.setattr(Guard, "check", check)
    door, up, _ = make(**BACKENDS[backend])
    kinds = {route.kind for route in door.table.fixed.values() if route.family not in ("own", "state", "console")}
    kinds |= {kind for kind, _ in GOOGLE_METHODS.values()}
    kinds |= {"model"} | ({"passthrough"} if door.forwards else set())  # /v1/models/{id}; any forwarded path
    assert kinds - OWN_KINDS - set(ROUTE_SAMPLES) == set(), "a route without a sample: add one"
    targets = {(kind, ROUTE_SAMPLES[kind][1]) for kind in kinds - OWN_KINDS}
    targets |= {(route.kind, "/" + route.path) for route in door.table.fixed.values()  # each spelling (/v1/...)
                if route.kind in ROUTE_SAMPLES and ROUTE_SAMPLES[route.kind][0] in route.methods}
    for kind, target in sorted(targets):
        method, _, body = ROUTE_SAMPLES[kind]
        reached.clear()
        answer = door.handle(Request.of(method, target, body))
        error = json.loads(answer.get_data()).get("error") if answer.status_code == 404 else None
        if isinstance(error, dict) and error.get("code") == "unknown_route":
            continue  # a fixed route this backend does not serve: it never goes upstream
        assert reached, (backend, kind, target, answer.status_code, answer.get_data()[:300])


def test_argo_raw_routes_hold_the_asked_name_or_its_id(make, tmp_path):
    """ARGO's /v1/chat names the model asked for and the id it resolves to: either may be listed (as on /v1
    routes); a team key's globs hold there too (they were not checked at all)."""
    argo = {"BACKEND": "argo", "ARGO_USER": "tester"}
    door, up, _ = make(ALLOWED_MODELS="argo:gpt-4o", **argo)
    up.reply({"response": "hi"})
    assert handle(door, "POST", "/v1/chat", {"model": "argo:gpt-4o", "prompt": ["hi"]})[0] == 200
    assert handle(door, "POST", "/v1/chat", {"model": "gpt4o", "prompt": ["hi"]})[0] == 403  # id alone not listed
    db = tmp_path / "keys.db"
    SQLiteKeyStore(str(db)).create(KeyRecord("team", digest(TEAM_KEY), TEAM_KEY[:12], ("gpt4o",), created=time.time()))
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", KEYS_DB=str(db), **argo)
    auth = {"Authorization": f"Bearer {TEAM_KEY}"}
    assert handle(door, "POST", "/v1/chat", {"model": "gpto3mini", "prompt": ["hi"]}, auth)[0] == 403
    assert up.sent == []


def test_a_team_key_without_globs_reads_back_no_batch_file(make, tmp_path):
    """Without globs or an allow-list, a team key's forwarded body is read for its usage rows only: a batch's
    input file is not fetched from the upstream for that."""
    db = tmp_path / "keys.db"
    SQLiteKeyStore(str(db)).create(KeyRecord("team", digest(TEAM_KEY), TEAM_KEY[:12], (), created=time.time()))
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", KEYS_DB=str(db))
    status, _ = handle(door, "POST", "/v1/batches", {"input_file_id": "file-1", "endpoint": "/v1/chat/completions"},
                       {"Authorization": f"Bearer {TEAM_KEY}"})
    assert status == 200 and [(r.method, r.url) for r in up.sent] == [("POST", "http://upstream.test/v1/batches")]


OPERATOR_ROUTES = (("POST", "/api/pull", {"model": "gpt-4o"}), ("DELETE", "/api/delete", {"model": "m"}),
                   ("POST", "/api/copy", {"source": "a", "destination": "b"}), ("POST", "/api/push", {"model": "m"}),
                   ("POST", "/api/create", {"model": "m"}), ("POST", "/api/blobs/sha256:0a", None),
                   # Ollama's account: who it is signed in to ollama.com as, and signing it out
                   ("POST", "/api/me", None), ("POST", "/api/signout", None),
                   ("DELETE", "/api/user/keys/c3NoLWVkMjU1MTk", None), ("DELETE", "/API/User/Keys/x", None))


def test_only_the_operators_keys_manage_the_upstreams_models_and_account(make, tmp_path, monkeypatch):
    """Ollama's pull, push, copy, create and delete change what every team is served (a copy then a push sent an
    operator's model to a registry host a glob like `good*` admitted), and its account routes sign the server
    out of ollama.com for everyone: the operator's keys only; a team key and a key_limits key alike are refused."""
    db = tmp_path / "keys.db"
    SQLiteKeyStore(str(db)).create(KeyRecord("team", digest(TEAM_KEY), TEAM_KEY[:12], (), created=time.time()))
    monkeypatch.setenv("LIMITED_KEY", "sk-limited-0123456789")
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", KEYS_DB=str(db), FRONTS_PASSTHROUGH="ollama",
                       KEY_LIMITS='{"LIMITED_KEY": {"rpm": 1000}}', LIMITED_KEY="sk-limited-0123456789")
    team, admin = {"Authorization": f"Bearer {TEAM_KEY}"}, {"Authorization": "Bearer admin-key"}
    limited = {"Authorization": "Bearer sk-limited-0123456789"}
    for method, target, body in OPERATOR_ROUTES:
        for key in (team, limited):
            status, answer = handle(door, method, target, body, key)
            assert status == 403 and "operator" in answer["error"], (target, answer)
        assert up.sent == []
        assert handle(door, method, target, body, admin)[0] == 200, target
        up.sent.clear()
    for key in (team, limited):  # they use models as before
        assert handle(door, "POST", "/api/chat", {"model": "m", "messages": MSG}, key)[0] == 200
