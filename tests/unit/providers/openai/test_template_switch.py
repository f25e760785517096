"""A chat request's reasoning_effort as a local server's chat template reads it (providers/openai/template_switch.py):
`chat_template_kwargs.enable_thinking`, false for "none", true for any other effort, the client's own keys winning,
for vLLM and llama.cpp's server only."""

from __future__ import annotations

import pytest

from argoproxy.providers.openai.template_switch import template_kwargs


@pytest.mark.parametrize("effort, on", [("none", False), ("minimal", True), ("low", True), ("medium", True),
                                        ("high", True), ("xhigh", True)])
@pytest.mark.parametrize("server", ["llama.cpp", "vLLM"])
def test_the_effort_switches_the_template(server, effort, on):
    assert template_kwargs({"reasoning_effort": effort}, server) == {"enable_thinking": on}


@pytest.mark.parametrize("server", [None, "Ollama"])
def test_no_other_server_gets_it(server):
    assert template_kwargs({"reasoning_effort": "high"}, server) is None


def test_the_clients_own_keys_win():
    body = {"reasoning_effort": "none", "chat_template_kwargs": {"custom": [1], "enable_thinking": True}}
    assert template_kwargs(body, "vLLM") is None  # its own switch: the body goes as it is
    body = {"reasoning_effort": "none", "chat_template_kwargs": {"custom": [1]}}
    assert template_kwargs(body, "vLLM") == {"enable_thinking": False, "custom": [1]}
    assert body["chat_template_kwargs"] == {"custom": [1]}  # the request's own object untouched


@pytest.mark.parametrize("body", [{}, {"reasoning_effort": None}, {"reasoning_effort": 3},
                                  {"reasoning_effort": "high", "chat_template_kwargs": "enable_thinking=true"},
                                  {"reasoning_effort": "high", "chat_template_kwargs": [1]}])
def test_nothing_else_is_switched(body):
    """No effort, or kwargs that are not an object: the server judges the request as the client wrote it."""
    assert template_kwargs(body, "llama.cpp") is None
