"""The Interactions door (argoproxy/fronts/interactions/) through the real app under Gunicorn, with the official
google-genai SDK's `client.interactions` as the client: create whole and streamed, previous_interaction_id chains,
get and delete; background runs followed, resumed after an event and cancelled; each key seeing only its own, and
a request without a key refused in the API's error shape; the rest of the API a 404."""

from __future__ import annotations

import pytest
import requests
from google.genai._interactions import APIStatusError  # the interactions client's errors (its own module names them)

from tests.clients import google_sdk
from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks
from tests.polling import poll
from tests.proxy_process import running_proxy

MODEL = "fake-model"


def sdk(proxy, key: str = "sk-client"):
    """google-genai on the proxy (its `interactions` used while the Client is held: collected, it closes)."""
    return google_sdk(proxy, key=key, version="v1beta")


def test_create_stream_chain_get_and_delete_with_the_sdk():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as p:
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


def test_background_runs_are_followed_resumed_and_cancelled():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as p:
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
