"""The Interactions door in-process (build_proxy with a fake upstream; argoproxy/fronts/interactions/door.py,
kept.py): create whole and streamed, a stored interaction read, chained, deleted, its cancel refused when it is no
background run, what the API has beyond that 404 in its error shape, and the door without a store."""

from __future__ import annotations

import json

from argoproxy.edge.http_objects import Request
from tests.fakes import capable_model as capable
from tests.fakes.fake_upstream import sse_chunks

PATH = "/v1beta/interactions"


def post(door, body, path=PATH, headers=None):
    answer = door.handle(Request.of("POST", path, body, headers=headers) if headers else Request.of("POST", path, body))
    return answer.status_code, json.loads(answer.get_data())


def get(door, path, method="GET"):
    answer = door.handle(Request.of(method, path))
    return answer.status_code, json.loads(answer.get_data())


def sse(answer) -> list[dict]:
    text = b"".join(answer.response).decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_create_whole_then_read_chain_and_delete_it(make):
    door, up, calls = make()
    status, first = post(door, {"model": "m", "input": "My name is Ada.", "system_instruction": "Be brief."})
    assert status == 200 and first["status"] == "completed" and first["id"].startswith("v1_")
    assert first["steps"] == [{"type": "model_output", "content": [{"type": "text", "text": "Hello"}]}]
    assert json.loads(up.sent[-1].body)["messages"] == [{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "My name is Ada."}]
    assert calls[-1].start.client.front == "interactions"  # observed as every door's calls (metrics, journals, traces)
    assert get(door, f"{PATH}/{first['id']}") == (200, first)
    status, second = post(door, {"model": "m", "input": "Who am I?", "previous_interaction_id": first["id"]})
    assert status == 200 and second["previous_interaction_id"] == first["id"]
    assert json.loads(up.sent[-1].body)["messages"] == [{"role": "user", "content": "My name is Ada."},
                                                       {"role": "assistant", "content": "Hello"},
                                                       {"role": "user", "content": "Who am I?"}]
    assert get(door, f"{PATH}/{first['id']}", "DELETE") == (200, {})
    status, gone = get(door, f"{PATH}/{first['id']}")
    assert status == 404 and gone == {"error": {"code": "not_found",
                                                "message": f"Interaction with id '{first['id']}' not found."}}
    status, refused = post(door, {"model": "m", "input": "x", "previous_interaction_id": first["id"]})
    assert status == 400 and refused["error"]["code"] == "invalid_argument"


def test_a_stream_is_stored_at_its_end_and_a_store_false_one_is_not(make):
    door, up, _ = make()
    up.stream(sse_chunks(["Hel", "lo"]))
    events = sse(door.handle(Request.of("POST", PATH, {"model": "m", "input": "hi", "stream": True})))
    assert [e["event_type"] for e in events] == ["interaction.created", "step.start", "step.delta", "step.delta",
                                                 "step.stop", "interaction.completed"]
    final = events[-1]["interaction"]
    assert get(door, f"{PATH}/{final['id']}") == (200, final)
    status, unstored = post(door, {"model": "m", "input": "hi", "store": False})
    assert status == 200 and get(door, f"{PATH}/{unstored['id']}")[0] == 404


def test_a_tool_call_requires_action_and_its_result_goes_back(make):
    door, up, _ = make()
    up.reply(capable.whole(reasoning=False))
    status, out = post(door, {"model": "m", "input": "weather?", "tools": [
        {"type": "function", "name": "get_weather", "parameters": capable.WEATHER_PARAMETERS}]})
    assert status == 200 and out["status"] == "requires_action"
    call = next(s for s in out["steps"] if s["type"] == "function_call")
    status, _ = post(door, {"model": "m", "previous_interaction_id": out["id"], "input": [
        {"type": "function_result", "call_id": call["id"], "name": "get_weather", "result": "sunny"}]})
    sent = json.loads(up.sent[-1].body)["messages"]
    assert status == 200 and sent[-1] == {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    assert [c["id"] for c in sent[-2]["tool_calls"]] == ["call_paris", "call_rome"]


def test_another_doors_ids_are_not_found_and_a_cancel_needs_a_background_run(make):
    door, _, _ = make()
    _, interaction = post(door, {"model": "m", "input": "hi"})
    response = json.loads(door.handle(Request.of("POST", "/v1/responses", {"model": "m", "input": "hi"})).get_data())
    assert get(door, f"{PATH}/{response['id']}")[0] == 404
    assert door.handle(Request.of("GET", f"/v1/responses/{interaction['id']}")).status_code == 404
    status, refused = post(door, {}, f"{PATH}/{interaction['id']}/cancel")
    assert status == 400 and refused["error"]["code"] == "failed_precondition"


def test_the_rest_of_the_api_is_404_in_its_error_shape(make):
    door, _, _ = make()
    for path in ("/v1beta/agents", "/v1beta/agents/deep-research", "/v1beta/webhooks", "/v1beta/webhooks/w1:ping",
                 "/v1alpha/triggers", "/v1beta/environments/e1", f"{PATH}/v1_x/steps"):
        status, body = get(door, path)
        assert status == 404 and set(body) == {"error"} and body["error"]["code"] == "not_found", (path, body)
    status, body = post(door, {"agent": "deep-research", "input": "x"})
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = post(door, {})
    assert status == 400 and body["error"]["code"] == "invalid_argument"


def test_without_a_store_it_answers_and_refuses_what_needs_one(make):
    door, _, _ = make(RESPONSES_STORE="off")
    status, out = post(door, {"model": "m", "input": "hi"})
    assert status == 200 and out["steps"][0]["type"] == "model_output"
    status, refused = post(door, {"model": "m", "input": "hi", "previous_interaction_id": out["id"]})
    assert status == 400 and "previous_interaction_id" in refused["error"]["message"]
    assert get(door, f"{PATH}/{out['id']}")[0] == 404


def test_key_limits_count_its_calls_and_reserve_for_the_stored_history(make, monkeypatch):
    """The meter reads an interaction as it is sent: with its chain's stored steps (kept.py's request_for), so a
    request that fits a key's tokens per minute alone is refused on a chain whose history does not."""
    monkeypatch.setenv("TEAM_A_KEY", "sk-team-a")
    door, up, calls = make(ENABLE_AUTH="true", KEY_LIMITS='{"TEAM_A_KEY": {"tpm": 3000}}', TEAM_A_KEY="sk-team-a")
    key = {"X-Goog-Api-Key": "sk-team-a"}
    long = {"model": "m", "input": "word " * 2000, "generation_config": {"max_output_tokens": 10}}
    status, first = post(door, long, headers=dict(key))
    assert status == 200 and calls[-1].end.usage["completion_tokens"] > 0
    assert post(door, {**long, "store": False}, headers=dict(key))[0] == 200  # alone, it fits
    status, refused = post(door, {**long, "previous_interaction_id": first["id"]}, headers=dict(key))
    assert status in (400, 429) and refused["error"]["code"] in ("invalid_argument", "resource_exhausted")
    assert "3000 tokens per minute" in refused["error"]["message"] and len(up.sent) == 2
    assert door.handle(Request.of("POST", PATH, {"model": "m", "input": "x"})).status_code == 401


def test_every_route_is_served_under_v1_as_under_v1beta(make):
    """google-genai 3.6.1's client.interactions calls /v1/interactions (its default API version): the request went
    upstream, a 404. Under /v1/ the rest of Google's API is not the door's: /v1/agents is an OpenAI-compatible
    server's own path (Mistral's), forwarded."""
    door, up, _ = make()
    status, made = post(door, {"model": "m", "input": "hi"}, "/v1/interactions")
    assert status == 200 and made["id"].startswith("v1_") and len(up.sent) == 1
    assert get(door, f"/v1/interactions/{made['id']}") == (200, made) == get(door, f"{PATH}/{made['id']}")
    status, refused = post(door, {}, f"/V1/Interactions/{made['id']}/cancel")
    assert status == 400 and refused["error"]["code"] == "failed_precondition"
    assert get(door, f"/v1/interactions/{made['id']}", "DELETE") == (200, {})
    assert get(door, f"/v1/interactions/{made['id']}")[0] == 404
    up.reply({"object": "list", "data": []})
    assert get(door, "/v1/agents") == (200, {"object": "list", "data": []}) and up.sent[-1].url.endswith("/v1/agents")
    door, up, _ = make(RESPONSES_STORE="off")
    status, body = get(door, "/v1/interactions/v1_x")
    assert status == 404 and body["error"]["code"] == "not_found" and up.sent == []
