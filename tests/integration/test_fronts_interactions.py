"""The Interactions door (argoproxy/fronts/interactions/) through the real app under Gunicorn, with the official
google-genai SDK's `client.interactions` as the client: create whole and streamed, previous_interaction_id chains,
get and delete; background runs followed, resumed after an event and cancelled; each key seeing only its own, and
a request without a key refused in the API's error shape; the rest of the API a 404; answers and every stream event
valid against the API's document (the OpenAPI document llm-comply vendors, Gemini API v1beta)."""

from __future__ import annotations

import json
from pathlib import Path

import llm_comply
import pytest
import requests
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from google.genai._interactions import APIStatusError  # the interactions client's errors (its own module names them)

from tests.clients import google_sdk
from tests.fakes import capable_model as capable
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.specs import OpenAPIValidator

MODEL = "fake-model"


def sdk(proxy, key: str = "sk-client"):
    """google-genai on the proxy (its `interactions` used while the Client is held: collected, it closes)."""
    return google_sdk(proxy, key=key, version="v1beta")


@pytest.fixture(scope="module")
def served():
    """(fake upstream, proxy) with the default settings, shared by this module's tests that need no others."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as p:
        fake.accepts_json_schema = True
        yield fake, p


def test_create_stream_chain_get_and_delete_with_the_sdk(served):
    fake, p = served
    held = sdk(p)
    client = held.interactions
    first = client.create(model=MODEL, input="My name is Ada.", system_instruction="Be brief.")
    assert first.status == "completed" and first.output_text == fake.default_content
    assert fake.received[-1].json()["messages"][0] == {"role": "system", "content": "Be brief."}
    fake.add(Stream(chat_chunks(["Ada", "!"], usage=True)))
    events = list(client.create(model=MODEL, input="Who am I?", previous_interaction_id=first.id, stream=True))
    assert [e.event_type for e in events] == ["interaction.created", "step.start", "step.delta", "step.delta",
                                              "step.stop", "interaction.completed"]
    sent = fake.received[-1].json()["messages"]
    assert [m["content"] for m in sent] == ["My name is Ada.", fake.default_content, "Who am I?"]
    second = events[-1].interaction
    got = client.get(second.id)
    assert (got.status, got.previous_interaction_id, got.output_text) == ("completed", first.id, "Ada!")
    client.delete(first.id)
    with pytest.raises(APIStatusError) as err:
        client.get(first.id)
    assert err.value.status_code == 404
    third = client.create(model=MODEL, input="And now?", previous_interaction_id=second.id)  # its own turns go on
    assert third.status == "completed"
    assert [m["content"] for m in fake.received[-1].json()["messages"]] == ["Who am I?", "Ada!", "And now?"]


def test_background_runs_are_followed_resumed_and_cancelled(served):
    fake, p = served
    held = sdk(p)
    client = held.interactions
    fake.add(Stream(chat_chunks([f"w{i} " for i in range(10)], usage=True), delay=0.02))
    stream = client.create(model=MODEL, input="long job", background=True, stream=True)
    created = next(iter(stream))
    run_id = created.interaction.id
    stream.close()  # the client leaves: the run goes on
    assert poll(lambda: client.get(run_id).status == "completed", timeout=20)
    assert client.get(run_id).output_text == "".join(f"w{i} " for i in range(10))
    url = f"{p.url}/v1beta/interactions/{run_id}?stream=true&last_event_id=3"
    resumed = requests.get(url, headers={"x-goog-api-key": "sk-client"}, timeout=30).text
    assert '"event_id":"4"' in resumed and '"event_id":"3"' not in resumed and "interaction.completed" in resumed
    fake.add(Stream(chat_chunks([f"s{i} " for i in range(300)], usage=True), delay=0.05))
    running = client.create(model=MODEL, input="slow job", background=True)
    assert running.status == "in_progress"
    assert client.cancel(running.id).status == "cancelled"
    assert poll(lambda: client.get(running.id).status == "cancelled", timeout=10)
    plain = client.create(model=MODEL, input="quick")
    with pytest.raises(APIStatusError) as err:
        client.cancel(plain.id)
    assert err.value.status_code == 400


def test_google_genai_on_its_default_v1_whole_and_streamed_with_a_typed_response_format(served):
    """google-genai 3.6.1's client.interactions as it comes: /v1/interactions (it went upstream, a 404) and
    `response_format` a typed text format, alone or in a list (it was read as the schema itself)."""
    fake, p = served
    held = google_sdk(p)  # no api_version: the SDK's default, v1
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    typed = {"type": "text", "mime_type": "application/json", "schema": schema}
    asked = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    fake.add(Reply(chat_completion('{"name": "Ada"}')))
    made = held.interactions.create(model=MODEL, input="Who?", response_format=typed)
    assert (made.status, made.output_text) == ("completed", '{"name": "Ada"}')
    sent = fake.received[-1]
    assert sent.path == "/v1/chat/completions" and sent.json()["response_format"] == asked
    fake.add(Stream(chat_chunks(['{"name": ', '"Ada"}'], usage=True)))
    events = list(held.interactions.create(model=MODEL, input="Who?", response_format=[typed], stream=True))
    assert "".join(e.delta.text for e in events if e.event_type == "step.delta") == '{"name": "Ada"}'
    assert events[-1].event_type == "interaction.completed"
    assert events[-1].interaction.usage.total_output_tokens == 7  # the upstream's, asked for
    sent = fake.received[-1].json()
    assert sent["response_format"] == asked and sent["stream_options"] == {"include_usage": True}
    assert held.interactions.get(made.id).id == made.id


def test_each_key_sees_its_own_and_the_rest_of_the_api_is_404():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET="key-a,key-b") as p:
        held = sdk(p, "key-a"), sdk(p, "key-b")
        a, b = held[0].interactions, held[1].interactions
        mine = a.create(model=MODEL, input="private")
        for attempt in (lambda: b.get(mine.id), lambda: b.delete(mine.id), lambda: b.cancel(mine.id)):
            with pytest.raises(APIStatusError) as err:
                attempt()
            assert err.value.status_code == 404
        with pytest.raises(APIStatusError) as err:
            b.create(model=MODEL, input="theirs", previous_interaction_id=mine.id)
        assert err.value.status_code == 400 and "private" not in str(err.value)
        assert a.get(mine.id).id == mine.id
        url = p.url + "/v1beta/interactions"
        refused = requests.post(url, json={"model": MODEL, "input": "x"}, timeout=30)
        assert refused.status_code == 401 and set(refused.json()["error"]) == {"code", "message"}
        for path in ("/v1beta/agents", "/v1beta/webhooks/w1"):
            other = requests.get(p.url + path, headers={"x-goog-api-key": "key-a"}, timeout=30)
            assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def problems(schema: str, instance: object) -> list[str]:
    """Where `instance` departs from the Interactions document's `schema` (tests/specs' reading of oneOf)."""
    doc = json.loads((Path(llm_comply.__file__).parent / "specs" / "google_interactions.json").read_text())
    registry = Registry().with_resource("urn:spec:interactions",
                                        Resource.from_contents(doc, default_specification=DRAFT202012))
    validator = OpenAPIValidator({"$ref": f"urn:spec:interactions#/components/schemas/{schema}"}, registry=registry)
    return [f"{list(e.absolute_path)}: {e.message:.200}" for e in validator.iter_errors(instance)]


def test_answers_and_stream_events_conform_to_the_document():
    tools = [{"type": "function", "name": "get_weather", "parameters": capable.WEATHER_PARAMETERS}]
    body = {"model": "gemini-2.5-flash", "input": [{"type": "user_input", "content": [
        {"type": "text", "text": "Weather?"}, {"type": "image", "mime_type": "image/png", "data": capable.PNG}]}],
        "tools": tools, "generation_config": {"thinking_level": "low"}}
    headers = {"x-goog-api-key": "sk-client"}
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, THINK_MODE="reasoning") as p:
        fake.accepts_null_content = True
        url = p.url + "/v1beta/interactions"
        fake.add(Reply(capable.whole()))
        whole = requests.post(url, json=body, headers=headers, timeout=30).json()
        assert [s["type"] for s in whole["steps"]] == ["thought", "model_output", "function_call", "function_call"]
        assert problems("Interaction", whole) == []
        fake.add(Stream(capable.chunks()))
        text = requests.post(url, json={**body, "stream": True}, headers=headers, timeout=30).text
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        assert len(events) > 8 and events[-1]["event_type"] == "interaction.completed"
        assert [(e["event_type"], problems("InteractionSseEvent", e)) for e in events if
                problems("InteractionSseEvent", e)] == []
        refused = requests.post(url, json={"model": "gemini-2.5-flash"}, headers=headers, timeout=30)
        assert refused.status_code == 400 and problems("Error", refused.json()["error"]) == []
