"""The Ollama door in-process (build_proxy with a fake upstream; argoproxy/fronts/ollama/door.py, answer.py):
answers whole and streamed, errors in Ollama's shape, key limits, and the door stepping aside when passed
through."""

from __future__ import annotations

import json

from argoproxy.edge.http_objects import Request
from tests.fakes.fake_upstream import sse_chunks


def lines(answer) -> list[dict]:
    return [json.loads(line) for line in b"".join(answer.response).splitlines()]


def test_chat_whole_and_streamed_through_the_door(make):
    door, up, calls = make()
    answer = door.handle(Request.of("POST", "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                           "stream": False}))
    body = json.loads(answer.get_data())
    assert answer.status_code == 200 and body["message"] == {"role": "assistant", "content": "Hello"}
    assert body["done"] is True and body["done_reason"] == "stop" and body["model"] == "m"
    assert body["created_at"].endswith("Z") and isinstance(body["total_duration"], int)
    assert json.loads(up.sent[-1].body)["messages"] == [{"role": "user", "content": "hi"}]
    assert up.sent[-1].url.endswith("/v1/chat/completions")
    up.stream(sse_chunks(["Hel", "lo"]))
    answer = door.handle(Request.of("POST", "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
    assert answer.headers["Content-Type"] == "application/x-ndjson"
    out = lines(answer)
    assert [o["message"]["content"] for o in out] == ["Hel", "lo", ""] and [o["done"] for o in out] == [False, False, True]
    assert out[-1]["done_reason"] == "stop" and "eval_count" in out[-1] and "prompt_eval_duration" in out[-1]
    assert calls[-1].start.client.front == "ollama"


def test_streamed_tool_calls_come_whole_with_object_arguments(make):
    door, up, _ = make()
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"ci'}}]}}]}
    rest = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}, "finish_reason": "tool_calls"}]}
    up.stream([b"data: " + json.dumps(chunk).encode() + b"\n\n", b"data: " + json.dumps(rest).encode() + b"\n\n",
               b"data: [DONE]\n\n"])
    out = lines(door.handle(Request.of("POST", "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "w"}]})))
    assert out[0]["message"]["tool_calls"] == [{"id": "call_1", "function": {"index": 0, "name": "weather",
                                                                             "arguments": {"city": "Paris"}}}]
    assert out[-1]["done"] is True


def test_a_stream_cut_ends_with_an_error_line(make):
    door, up, _ = make()
    up.stream(sse_chunks(["Hel"])[:1] + [b"data: {broken\n\n"])
    out = lines(door.handle(Request.of("POST", "/api/generate", {"model": "m", "prompt": "hi"})))
    assert out[0]["response"] == "Hel" and set(out[-1]) == {"error"}


def test_errors_in_ollamas_shape(make):
    door, up, _ = make(ALLOWED_MODELS="gpt-4o")
    answer = door.handle(Request.of("POST", "/api/chat", {"model": "evil", "messages": [{"role": "user", "content": "x"}]}))
    assert answer.status_code == 403 and isinstance(json.loads(answer.get_data())["error"], str)
    answer = door.handle(Request.of("POST", "/api/chat", {"model": "gpt-4o", "messages": "x"}))
    assert answer.status_code == 400 and json.loads(answer.get_data())["error"].startswith("messages")
    answer = door.handle(Request.of("POST", "/api/show", {"model": "evil"}))
    assert answer.status_code == 404 and isinstance(json.loads(answer.get_data())["error"], str)


def test_models_version_and_embeddings(make):
    door, up, _ = make()
    tags = json.loads(door.handle(Request.of("GET", "/api/tags")).get_data())
    assert [m["name"] for m in tags["models"]] == ["gpt-4o", "evil"] and tags["models"][0]["size"] == 0
    ps = json.loads(door.handle(Request.of("GET", "/api/ps")).get_data())
    assert ps["models"][0]["expires_at"].endswith("Z")
    show = json.loads(door.handle(Request.of("POST", "/api/show", {"model": "gpt-4o"})).get_data())
    assert show["capabilities"] == ["completion", "tools"] and "model_info" in show
    assert json.loads(door.handle(Request.of("GET", "/api/version")).get_data())["version"]
    up.reply({"object": "list", "data": [{"object": "embedding", "index": 1, "embedding": [0.5]},
                                         {"object": "embedding", "index": 0, "embedding": [0.25]}],
              "usage": {"prompt_tokens": 3, "total_tokens": 3}})
    embed = json.loads(door.handle(Request.of("POST", "/api/embed", {"model": "e", "input": ["a", "b"]})).get_data())
    assert embed["embeddings"] == [[0.25], [0.5]] and embed["prompt_eval_count"] == 3
    assert up.sent[-1].url.endswith("/v1/embeddings")
    up.reply({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.25]}]})
    legacy = json.loads(door.handle(Request.of("POST", "/api/embeddings", {"model": "e", "prompt": "a"})).get_data())
    assert legacy == {"embedding": [0.25]}


def test_passed_through_the_door_steps_aside(make):
    door, up, _ = make(FRONTS_PASSTHROUGH="ollama", TARGET_BASE_URL="http://upstream.test/")  # Ollama's own root
    body = {"model": "m", "messages": [], "options": {"num_ctx": 8192}}
    answer = door.handle(Request.of("POST", "/api/chat", body))
    assert up.sent[-1].url == "http://upstream.test/api/chat" and json.loads(up.sent[-1].body) == body
    assert answer.status_code == 200


def test_key_limits_count_the_doors_calls(make, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", "sk-team-a")
    door, up, calls = make(ENABLE_AUTH="true", KEY_LIMITS='{"TEAM_A_KEY": {"rpm": 1}}', TEAM_A_KEY="sk-team-a")
    key = {"Authorization": "Bearer sk-team-a"}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    first = door.handle(Request.of("POST", "/api/chat", body, headers=dict(key)))
    second = door.handle(Request.of("POST", "/api/generate", {"model": "m", "prompt": "hi"}, headers=dict(key)))
    assert first.status_code == 200 and second.status_code == 429 and len(up.sent) == 1
    assert isinstance(json.loads(second.get_data())["error"], str) and int(second.headers["Retry-After"]) >= 1
    assert door.handle(Request.of("GET", "/api/tags")).status_code == 401
    assert calls[0].end.usage["completion_tokens"] > 0  # what budgets and metrics count


def ollama_tags(*names: str, running: bool = False) -> dict:
    """An Ollama server's /api/tags (or, `running`, /api/ps) answer listing these models."""
    extra = {"expires_at": "2030-01-01T00:00:00Z", "size_vram": 1} if running else {}
    return {"models": [{"name": n, "model": n, "size": 1, "digest": "d", "details": {}, **extra} for n in names]}


def test_passed_through_model_lists_show_only_the_models_a_key_may_use(make, tmp_path):
    """FRONTS_PASSTHROUGH=ollama: the upstream's own /api/tags and /api/ps, filtered by a team key's globs and by
    ALLOWED_MODELS as /v1/models is (a name without a tag is Ollama's `:latest`); the admin key sees them all."""
    import time
    from argoproxy.teamkeys.records import KeyRecord, digest
    from argoproxy.teamkeys.store import SQLiteKeyStore
    team_key = "sk-proxy-team-0123456789abcdef"
    db = tmp_path / "keys.db"
    SQLiteKeyStore(str(db)).create(KeyRecord("team", digest(team_key), team_key[:12], ("llama3", "qwen*"),
                                             created=time.time()))
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", KEYS_DB=str(db), FRONTS_PASSTHROUGH="ollama",
                       TARGET_BASE_URL="http://upstream.test/", ALLOWED_MODELS="llama3*,qwen2.5:7b,secret*")
    team, admin = {"Authorization": f"Bearer {team_key}"}, {"Authorization": "Bearer admin-key"}
    every = ("llama3:latest", "llama3:70b", "qwen2.5:7b", "qwen3:8b", "secret-model:latest")
    for path, running in (("/api/tags", False), ("/api/ps", True)):
        up.reply(ollama_tags(*every, running=running))
        answer = door.handle(Request.of("GET", path, headers=dict(team)))
        assert up.sent[-1].url == "http://upstream.test" + path and answer.status_code == 200
        listed = json.loads(answer.get_data())["models"]
        assert [m["name"] for m in listed] == ["llama3:latest", "qwen2.5:7b"]  # globs and allow-list both
        assert listed[0] == ollama_tags("llama3:latest", running=running)["models"][0]  # entries as Ollama wrote them
        up.reply(ollama_tags(*every, running=running))
        admin_list = json.loads(door.handle(Request.of("GET", path, headers=dict(admin))).get_data())["models"]
        assert [m["name"] for m in admin_list] == ["llama3:latest", "llama3:70b", "qwen2.5:7b",
                                                   "secret-model:latest"]  # ALLOWED_MODELS binds the admin key too
    up.reply({"error": "not an ollama list"})
    answer = door.handle(Request.of("GET", "/api/tags", headers=dict(team)))
    assert answer.status_code == 502 and isinstance(json.loads(answer.get_data())["error"], str)


def test_passed_through_model_lists_go_as_they_are_without_a_filter(make):
    door, up, _ = make(FRONTS_PASSTHROUGH="ollama", TARGET_BASE_URL="http://upstream.test/")
    data = json.dumps(ollama_tags("a", "b")).encode()
    up.reply(data)
    assert door.handle(Request.of("GET", "/api/tags")).get_data() == data  # byte for byte


def test_passed_through_errors_stay_in_ollamas_shape(make):
    door, up, _ = make(FRONTS_PASSTHROUGH="ollama", TARGET_BASE_URL="http://upstream.test/", ALLOWED_MODELS="m")
    answer = door.handle(Request.of("POST", "/api/chat", {"model": "evil", "messages": []}))
    assert answer.status_code == 403 and isinstance(json.loads(answer.get_data())["error"], str) and up.sent == []
