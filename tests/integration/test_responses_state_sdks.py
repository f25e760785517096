"""Stateful Responses through the real app under Gunicorn, driven by the agent frameworks that lean on it: the
OpenAI Agents SDK (a function tool over two turns chained by previous_response_id, and once with a
conversation) and LangChain's ChatOpenAI(use_responses_api=True, use_previous_response_id=True), on the openai
backend (a chat upstream) and on ARGO."""

from __future__ import annotations

import json

import pytest

from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_argo import argo_env
from tests.integration.test_fronts import ArgoUpstream, OpenAIUpstream
from tests.proxy_process import running_proxy

agents = pytest.importorskip("agents")


@pytest.fixture(scope="module", params=["openai", "argo"])
def up(request):
    if request.param == "openai":
        with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as p:
            yield OpenAIUpstream(fake), p
    else:
        with FakeArgo() as argo, running_proxy(**argo_env(argo)) as p:
            yield ArgoUpstream(argo), p


def agent_for(u, p):
    import openai
    agents.set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=p.base_url, api_key="sk-client", max_retries=0, timeout=30)

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}, 21 C"

    model = agents.OpenAIResponsesModel(model=u.model, openai_client=client)
    return agents.Agent(name="weather", instructions="Answer briefly.", tools=[get_weather], model=model), client


def tool_then_text(u, text: str) -> None:
    """The next answer calls get_weather, the one after it (the tool's result in hand) says `text`."""
    if isinstance(u, ArgoUpstream):
        call = {"content": None, "tool_calls": [{"id": "call_w1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
        u.argo.reply = lambda body: text if "sunny in Paris" in json.dumps(body) else call
    else:
        u.text(text)
        u.tool_call(False)


def test_agents_sdk_two_turns_by_previous_response_id(up):
    u, p = up
    agent, _ = agent_for(u, p)
    tool_then_text(u, "Sunny.")
    first = agents.Runner.run_sync(agent, "Weather in Paris?")
    # the tool's result went back on the same chain (the SDK sends only the new item with previous_response_id)
    assert "sunny in Paris, 21 C" in json.dumps(u.last_body()) and "Weather in Paris?" in json.dumps(u.last_body())
    u.text("Tomorrow too.")
    second = agents.Runner.run_sync(agent, "And tomorrow?", previous_response_id=first.last_response_id)
    sent = json.dumps(u.last_body())
    assert "Weather in Paris?" in sent and "sunny in Paris, 21 C" in sent and "And tomorrow?" in sent
    assert second.final_output == "Tomorrow too."


def test_agents_sdk_with_a_conversation(up):
    from tests.clients import openai_sdk
    u, p = up
    agent, _ = agent_for(u, p)
    conv = openai_sdk(p).conversations.create()
    u.text("Hello Ada.")
    agents.Runner.run_sync(agent, "My name is Ada.", conversation_id=conv.id)
    u.text("You are Ada.")
    second = agents.Runner.run_sync(agent, "Who am I?", conversation_id=conv.id)
    sent = json.dumps(u.last_body())
    assert "My name is Ada." in sent and "Hello Ada." in sent and "Who am I?" in sent
    assert second.final_output == "You are Ada."


def test_langchain_three_turn_chat_by_previous_response_id(up):
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.messages import HumanMessage
    u, p = up
    llm = langchain_openai.ChatOpenAI(model=u.model, base_url=p.base_url, api_key="sk-client", max_retries=0,
                                      use_responses_api=True, use_previous_response_id=True)
    history: list = []
    for n, (ask, answer) in enumerate([("I like tea.", "Noted: tea."), ("And biscuits.", "Tea and biscuits."),
                                       ("What do I like?", "Tea and biscuits, you said.")]):
        u.text(answer)
        history.append(HumanMessage(ask))
        reply = llm.invoke(history)
        history.append(reply)
        assert reply.content[0]["text"] if isinstance(reply.content, list) else reply.content
    sent = json.dumps(u.last_body())
    assert "I like tea." in sent and "Noted: tea." in sent and "And biscuits." in sent and "What do I like?" in sent
