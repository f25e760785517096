"""The routing settings: models / MODELS, fallbacks / FALLBACKS, key_limits / KEY_LIMITS, and their errors."""

import json
import subprocess
import sys

import pytest

from argoproxy.config.settings import SettingsError, load_settings
from tests.proxy_process import ROOT

QWEN = [
    {"name": "qwen3", "backend": "openai", "base_url": "http://gpu1:8000/v1/", "upstream_model": "Qwen/Qwen3-8B",
     "params": {"think_mode": "reasoning", "temperature": 0.6}},
    {"name": "qwen3", "backend": "openai", "base_url": "http://gpu2:8000/v1", "upstream_model": "Qwen/Qwen3-8B"},
    {"name": "argo:*", "backend": "argo"},
    {"name": "gpt-4o", "backend": "openai", "base_url": "https://api.openai.com/v1/", "api_key_env": "OPENAI_KEY_X"},
]
ENV = {"OPENAI_KEY_X": "sk-upstream-secret", "TEAM_A_KEY": "sk-team-a", "ARGO_USER": "someone"}


def test_the_issue_example_from_yaml(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("""
models:
  - {name: qwen3, backend: openai, base_url: "http://gpu1:8000/v1/", upstream_model: Qwen/Qwen3-8B,
     params: {think_mode: reasoning, temperature: 0.6}}
  - {name: qwen3, backend: openai, base_url: "http://gpu2:8000/v1/", upstream_model: Qwen/Qwen3-8B}
  - {name: "argo:*", backend: argo}
  - {name: gpt-4o, backend: openai, base_url: "https://api.openai.com/v1/", api_key_env: OPENAI_KEY_X}
fallbacks: {qwen3: [gpt-4o]}
key_limits: {TEAM_A_KEY: {rpm: 60, tpm: 100000}}
""")
    s = load_settings({}, environ={**ENV, "CONFIG_PATH": str(cfg)})
    assert [e.name for e in s.models] == ["qwen3", "qwen3", "argo:*", "gpt-4o"]
    first = s.models[0]
    assert first.upstream_model == "Qwen/Qwen3-8B" and first.weight == 1.0
    assert first.params.think_mode == "reasoning" and first.params.params == {"temperature": 0.6}
    assert s.models[2].is_glob and not first.is_glob and s.models[2].base_url == ""
    assert s.fallbacks == (("qwen3", ("gpt-4o",)),)
    assert [(k.key_env, k.rpm, k.tpm) for k in s.key_limits] == [("TEAM_A_KEY", 60, 100000)]


def test_the_same_as_json_in_the_environment():
    env = {**ENV, "MODELS": json.dumps(QWEN), "FALLBACKS": '{"qwen3": ["gpt-4o"]}',
           "KEY_LIMITS": '{"TEAM_A_KEY": {"rpm": 60}}'}
    s = load_settings({}, environ=env)
    assert s.models[1].base_url == "http://gpu2:8000/v1/"
    assert s.fallbacks == (("qwen3", ("gpt-4o",)),)
    assert s.key_limits[0].rpm == 60 and s.key_limits[0].tpm == 0


def test_params_use_the_llm_params_vocabulary():
    models = [{"name": "m", "backend": "openai", "base_url": "http://h/", "weight": "2.5",
               "params": {"temperature": "0.7", "max_tokens": "100", "think_tag_start": "<r>", "think_tag_end": "</r>",
                          "enable_think_tag_filtering": False, "append_to_last_user_message": "/no_think"}}]
    entry = load_settings({}, environ={"MODELS": json.dumps(models)}).models[0]
    rule = entry.params
    assert rule.params == {"temperature": 0.7, "max_tokens": 100}
    assert (rule.think_tag_start, rule.think_tag_end, rule.think_mode) == ("<r>", "</r>", "keep")
    assert rule.append_to_last_user_message == "/no_think" and entry.weight == 2.5


@pytest.mark.parametrize("env,message", [
    ({"MODELS": "[1]"}, "MODELS[0]: expected an object"),
    ({"MODELS": '{"name": "x"}'}, "MODELS: expected a list of model entries"),
    ({"MODELS": "[{"}, "MODELS: not valid JSON"),
    ({"MODELS": '[{"backend": "openai"}]'}, "MODELS[0].name: required"),
    ({"MODELS": '[{"name": "a", "backend": "argo"}, {"name": "b"}]'}, "MODELS[1].backend: required"),
    ({"MODELS": '[{"name": "a", "backend": "openai"}]'}, "MODELS[0].base_url: required for the openai backend"),
    ({"MODELS": '[{"name": "a", "backend": "openai", "base_url": "ftp://x"}]'}, "MODELS[0].base_url: must be an http(s) URL"),
    ({"MODELS": '[{"name": "a", "backend": "argo", "weight": -1}]'}, "MODELS[0].weight: must be greater than 0"),
    ({"MODELS": '[{"name": "a", "backend": "argo", "colour": 1}]'}, "MODELS[0].colour: unknown key"),
    ({"MODELS": '[{"name": "a", "backend": "argo", "params": {"think_mode": "x"}}]'}, "MODELS[0].params.think_mode:"),
    ({"MODELS": '[{"name": "a", "backend": "argo", "params": {"temperature": "hot"}}]'}, "MODELS[0].params.temperature:"),
    ({"MODELS": '[{"name": "a", "backend": "argo", "api_key_env": "sk-123 456"}]'}, "MODELS[0].api_key_env: must be the name"),
    ({"MODELS": '[{"name": "a", "backend": "grpc"}]'}, "models[0].backend: unknown backend 'grpc'"),
    ({"MODELS": '[{"name": "a", "backend": "argo", "api_key_env": "NOT_SET_ANYWHERE"}]'},
     "models[0].api_key_env: the environment variable NOT_SET_ANYWHERE is not set"),
    ({"FALLBACKS": '{"a": 3}'}, "FALLBACKS.a: expected a list of model names"),
    ({"FALLBACKS": '["a"]'}, "FALLBACKS: expected an object"),
    ({"MODELS": '[{"name": "a", "backend": "argo"}]', "FALLBACKS": '{"a": ["b"]}'},
     "fallbacks.a[0]: no entry of models serves 'b'"),
    ({"KEY_LIMITS": '{"TEAM_A_KEY": {"rpm": 0}}'}, "KEY_LIMITS.TEAM_A_KEY.rpm: expected a positive integer"),
    ({"KEY_LIMITS": '{"TEAM_A_KEY": {"rps": 1}}'}, "KEY_LIMITS.TEAM_A_KEY.rps: unknown key"),
    ({"KEY_LIMITS": '{"sk-literal key": {"rpm": 1}}'}, "KEY_LIMITS.sk-literal key: must be the name of an environment"),
    ({"KEY_LIMITS": '{"UNSET_KEY_VAR": {"rpm": 1}}'}, "key_limits.UNSET_KEY_VAR: the environment variable UNSET_KEY_VAR"),
])
def test_a_bad_entry_is_one_line_naming_its_key(env, message):
    with pytest.raises(SettingsError) as info:
        load_settings({}, environ={**ENV, **env})
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_no_models_is_the_single_upstream_shorthand():
    s = load_settings({}, environ={"TARGET_BASE_URL": "http://h:1/v1/"})
    assert s.models == () and s.fallbacks == () and s.key_limits == ()


def test_keys_never_appear_in_show(tmp_path):
    env = {**ENV, "MODELS": json.dumps(QWEN), "KEY_LIMITS": '{"TEAM_A_KEY": {"rpm": 60}}', "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path,
                         env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "OPENAI_KEY_X" in out.stdout and "TEAM_A_KEY" in out.stdout
    assert "sk-upstream-secret" not in out.stdout + out.stderr and "sk-team-a" not in out.stdout + out.stderr


def test_the_named_keys_are_redacted_secrets(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    s = load_settings({}, environ={**ENV, "MODELS": json.dumps(QWEN), "KEY_LIMITS": '{"TEAM_A_KEY": {"rpm": 1}}'})
    from argoproxy.redaction import configured_secrets
    assert {"sk-upstream-secret", "sk-team-a"} <= set(configured_secrets(s))


def test_credentials_in_a_base_url_are_masked_and_redacted(monkeypatch):
    models = [{"name": "m", "backend": "openai", "base_url": "http://user:pa55word@h:1/v1/"}]
    s = load_settings({}, environ={"MODELS": json.dumps(models)})
    from argoproxy.redaction import configured_secrets
    assert "pa55word" not in repr(s.models) and "pa55word" in configured_secrets(s)
