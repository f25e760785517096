"""What counts as configured (docs/install.md, "Nothing configured"): the proxy refuses to serve only the default
backend's guessed URL, OpenAI's public API, when nobody named an upstream and it holds no key for it."""

from __future__ import annotations

import json

import pytest

from argoproxy.config.settings import load
from argoproxy.config.unconfigured import nothing_configured, refusal

ENTRY = json.dumps([{"name": "m", "backend": "openai", "base_url": "http://127.0.0.1:9/v1"}])


@pytest.mark.parametrize("environ, flags, expected", [
    ({}, {}, True),
    ({"BACKEND": "openai"}, {}, True),  # names the kind of server, not which one
    ({"TARGET_BASE_URL": ""}, {}, True),  # an empty value names nothing
    ({"OPENAI_API_KEY": ""}, {}, True),
    ({"ARGO_USER": "erin"}, {}, True),  # another backend's setting in the environment: only a warning
    ({"TARGET_BASE_URL": "http://127.0.0.1:8000/v1"}, {}, False),
    ({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}, {}, False),
    ({"TARGET_BASE_URL": "https://api.openai.com/v1/"}, {}, False),  # OpenAI chosen: clients' own keys go there
    ({"OPENAI_API_KEY": "sk-upstream"}, {}, False),  # OpenAI's API with the user's key
    ({"MODELS": ENTRY}, {}, False),
    ({"BACKEND": "dashscope"}, {}, False),  # its default URL is its one real address
    ({"BACKEND": "argo", "ARGO_USER": "erin"}, {}, False),
    ({}, {"target_base_url": "http://127.0.0.1:8000/v1"}, False),
    ({}, {"use_native_openai": True, "user": "erin"}, False),
])
def test_what_counts_as_configured(tmp_path, monkeypatch, environ, flags, expected) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.yaml
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/argoproxy/config.yaml
    assert nothing_configured(load(flags, environ=environ)) is expected


def test_a_config_file_counts_by_what_it_names(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "config.yaml"
    config.write_text("port: 5055\n")
    loaded = load({"config_path": str(config)}, environ={})
    assert nothing_configured(loaded)
    assert str(refusal(loaded)).startswith(f"TARGET_BASE_URL: nothing is configured ({config} names no upstream, ")
    config.write_text("target_base_url: http://127.0.0.1:8000/v1\n")
    assert not nothing_configured(load({"config_path": str(config)}, environ={}))
    config.write_text('user: "erin"\nargo_url: "http://127.0.0.1:9/chat/"\n')  # an argo-openai-proxy config
    assert not nothing_configured(load({"config_path": str(config)}, environ={}))


def test_the_refusal_is_one_line_saying_how_to_configure(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    line = str(refusal(load({}, environ={})))
    assert "\n" not in line and line.startswith("TARGET_BASE_URL: nothing is configured (no config file, ")
    assert "https://api.openai.com/v1/" in line and "in a terminal" in line and "set TARGET_BASE_URL" in line
    assert refusal(load({}, environ={"OPENAI_API_KEY": "sk-upstream"})) is None
