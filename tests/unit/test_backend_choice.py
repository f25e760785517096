"""One loader for every entry point: which backend runs, why, and what settings of another backend do."""

from __future__ import annotations

from pathlib import Path

import pytest

from argoproxy.config.settings import SettingsError, load, load_settings

ARGO_CONFIG = "port: 44497\nuser: carol\nargo_url: http://argo.example/chat/\nverbose: true\n"


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_a_seed_argo_config_without_backend_runs_argo_and_says_why(tmp_path: Path) -> None:
    path = config(tmp_path, ARGO_CONFIG)
    loaded = load({"config_path": path}, environ={})
    assert loaded.settings.backend == "argo"
    assert loaded.backend_reason == f"{path} has its keys (user, argo_url) and no backend: key"
    assert loaded.warnings == ()


@pytest.mark.parametrize("flags,environ,reason", [
    ({"use_native_openai": True}, {}, "--native-openai implies it"),
    ({}, {"USE_NATIVE_OPENAI": "true"}, "USE_NATIVE_OPENAI implies it"),
])
def test_native_openai_implies_argo(flags: dict, environ: dict, reason: str) -> None:
    loaded = load({**flags, "user": "dave"}, environ=environ) if flags else load({}, environ={**environ,
                                                                                               "ARGO_USER": "dave"})
    assert loaded.settings.backend == "argo" and loaded.settings.use_native_openai
    assert reason in loaded.backend_reason or loaded.backend_reason.endswith("implies it")


def test_use_native_openai_false_implies_nothing() -> None:
    loaded = load({}, environ={"USE_NATIVE_OPENAI": "false"})
    assert loaded.settings.backend == "openai"


def test_no_backend_anywhere_is_the_default_and_says_so() -> None:
    loaded = load({}, environ={})
    assert loaded.settings.backend == "openai" and loaded.backend_reason == ""
    assert loaded.settings.target_base_url == "https://api.openai.com/v1/"


def test_explicit_backend_wins_over_inference(tmp_path: Path) -> None:
    path = config(tmp_path, "backend: argo\n" + ARGO_CONFIG)
    loaded = load({"config_path": path}, environ={})
    assert loaded.settings.backend == "argo" and loaded.backend_reason == ""


def test_argo_keys_with_another_backend_in_the_file_stop_start_up(tmp_path: Path) -> None:
    path = config(tmp_path, "backend: openai\n" + ARGO_CONFIG)
    with pytest.raises(SettingsError) as error:
        load_settings({"config_path": path}, environ={})
    message = str(error.value)
    assert message.startswith("user: argo's setting")
    assert "the backend is openai" in message and "\n" not in message


def test_argo_config_with_backend_from_the_environment_stops_start_up(tmp_path: Path) -> None:
    path = config(tmp_path, ARGO_CONFIG)
    with pytest.raises(SettingsError, match=r"^user: argo's setting .*the backend is dashscope \(in the environment\)"):
        load_settings({"config_path": path}, environ={"BACKEND": "dashscope"})


def test_native_openai_flag_with_explicit_openai_backend_stops_start_up() -> None:
    with pytest.raises(SettingsError, match=r"^--native-openai: argo's setting .*the backend is openai"):
        load_settings({"use_native_openai": True, "backend": "openai"}, environ={})


def test_argo_variables_in_the_environment_are_a_warning_naming_them() -> None:
    loaded = load({"backend": "openai"}, environ={"ARGO_USER": "erin", "REAL_STREAM": "false"})
    assert loaded.settings.backend == "openai"
    assert loaded.warnings == ("ARGO_USER is set in the environment, but the openai backend does not use it",
                               "REAL_STREAM is set in the environment, but the openai backend does not use it")


def test_target_base_url_with_an_inferred_argo_config_stops_start_up(tmp_path: Path) -> None:
    """Never a silent choice between the environment's upstream and the file's."""
    path = config(tmp_path, ARGO_CONFIG)
    with pytest.raises(SettingsError) as error:
        load_settings({"config_path": path}, environ={"TARGET_BASE_URL": "http://localhost:8000/v1"})
    message = str(error.value)
    assert message.startswith("TARGET_BASE_URL: ") and "the backend is argo" in message
    assert "BACKEND=openai" in message and path in message


def test_target_base_url_with_an_explicit_argo_backend_is_a_warning(tmp_path: Path) -> None:
    path = config(tmp_path, "backend: argo\n" + ARGO_CONFIG)
    loaded = load({"config_path": path}, environ={"TARGET_BASE_URL": "http://localhost:8000/v1"})
    assert loaded.warnings == ("TARGET_BASE_URL is set in the environment, but the argo backend does not use it",)


def test_target_base_url_chooses_openai_over_an_argo_config_when_backend_says_so(tmp_path: Path) -> None:
    path = config(tmp_path, "port: 5000\nverbose: true\n")
    loaded = load({"config_path": path}, environ={"TARGET_BASE_URL": "http://localhost:8000/v1"})
    assert loaded.settings.backend == "openai"
    assert loaded.settings.target_base_url == "http://localhost:8000/v1/"


def test_keys_of_two_backends_without_a_backend_stop_start_up(tmp_path: Path) -> None:
    path = config(tmp_path, ARGO_CONFIG + "dashscope_api_key: sk-x\n")
    with pytest.raises(SettingsError, match=r"^backend: settings of more than one backend"):
        load_settings({"config_path": path}, environ={})


MODELS = '[{"name": "qwen3", "backend": "openai", "base_url": "http://127.0.0.1:9/v1/"}]'


def test_target_base_url_beside_models_that_name_their_upstreams_is_a_warning() -> None:
    loaded = load({}, environ={"MODELS": MODELS, "TARGET_BASE_URL": "http://127.0.0.1:8/v1/"})
    assert loaded.warnings == ("TARGET_BASE_URL is set, but every `models` entry names its own upstream, "
                               "so it is not used",)


def test_fronts_passthrough_beside_models_is_a_warning() -> None:
    loaded = load({}, environ={"MODELS": MODELS, "FRONTS_PASSTHROUGH": "responses"})
    assert loaded.warnings == ("FRONTS_PASSTHROUGH is set, but with `models` the front doors translate for every "
                               "deployment, so it is not used",)


def test_target_base_url_serving_a_models_entry_without_base_url_is_no_warning() -> None:
    models = '[{"name": "ds", "backend": "dashscope"}]'
    loaded = load({"backend": "dashscope"}, environ={"MODELS": models, "TARGET_BASE_URL": "http://127.0.0.1:8/v1/"})
    assert loaded.warnings == ()


def test_a_providers_settings_serving_models_entries_are_used(tmp_path: Path) -> None:
    """The issue's example: an `argo:*` entry beside openai ones; ARGO's user serves that entry, from the
    environment or the config file, and is no warning (nor a conflict with the default openai backend)."""
    models = MODELS[:-1] + ', {"name": "argo:*", "backend": "argo"}]'
    loaded = load({}, environ={"MODELS": models, "ARGO_USER": "alice"})
    assert loaded.warnings == () and loaded.settings.user == "alice"
    path = config(tmp_path, "user: alice\nmodels:\n  - {name: 'argo:*', backend: argo}\n"
                            "  - {name: q, backend: openai, base_url: 'http://127.0.0.1:9/v1/'}\nbackend: openai\n")
    loaded = load({"config_path": path}, environ={})
    assert loaded.warnings == () and loaded.settings.user == "alice"
    loaded = load({}, environ={"MODELS": MODELS, "ARGO_USER": "alice"})  # no argo entry: unused, as before
    assert loaded.warnings == ("ARGO_USER is set in the environment, but the openai backend does not use it",)


def test_use_native_openai_in_the_environment_with_another_explicit_backend_stops_start_up() -> None:
    """USE_NATIVE_OPENAI=true chooses ARGO's native mode (seed 000): beside BACKEND=openai the two contradict
    each other, wherever they come from."""
    with pytest.raises(SettingsError) as error:
        load_settings({}, environ={"BACKEND": "openai", "USE_NATIVE_OPENAI": "true", "ARGO_USER": "dave"})
    message = str(error.value)
    assert message.startswith("USE_NATIVE_OPENAI: argo's setting (in the environment)")
    assert "the backend is openai (in the environment)" in message and "\n" not in message


@pytest.mark.parametrize("environ,backend", [
    ({"ARGO_USER": "dave"}, "argo"),
    ({"DASHSCOPE_API_KEY": "sk-d"}, "dashscope"),
])
def test_openai_api_key_with_a_backend_that_does_not_send_it_is_a_warning(environ: dict, backend: str) -> None:
    loaded = load({"backend": backend}, environ={**environ, "OPENAI_API_KEY": "sk-secret"})
    assert loaded.warnings == (f"OPENAI_API_KEY is set in the environment, but the {backend} backend does not use it",)
    assert "sk-secret" not in str(loaded.warnings)
    assert load({"backend": backend}, environ={**environ, "OPENAI_API_KEY": ""}).warnings == ()


def test_native_url_without_native_mode_is_a_warning(tmp_path: Path) -> None:
    """Seed 000's native_openai_base_url without use_native_openai: ARGO's standard endpoints get the requests."""
    path = config(tmp_path, ARGO_CONFIG + "native_openai_base_url: http://argo.example/v1/\n")
    loaded = load({"config_path": path}, environ={})
    assert loaded.settings.backend == "argo" and not loaded.settings.use_native_openai
    assert loaded.warnings == ("native_openai_base_url is set, but use_native_openai is off (ARGO standard mode), "
                               "so it is not used",)
    assert load({"config_path": path, "use_native_openai": True}, environ={}).warnings == ()


def test_native_openai_is_named_as_the_reason_beside_other_argo_flags() -> None:
    loaded = load({"use_native_openai": True, "username_passthrough": True}, environ={})
    assert loaded.settings.backend == "argo" and loaded.backend_reason == "--native-openai implies it"


@pytest.mark.parametrize("environ,warning", [
    ({"API_KEY_SECRET": "k1"}, "API_KEY_SECRET is set, but enable_auth is off, so it is not used: clients need no "
                               "key (ENABLE_AUTH=true requires one)"),
    ({"THREADS": "8"}, "THREADS is set, but the worker class is gevent, not gthread, so it is not used"),
    ({"WORKER_CLASS": "gthread", "WORKER_CONNECTIONS": "10"},
     "WORKER_CONNECTIONS is set, but the worker class is gthread, not gevent, so it is not used"),
    ({"SOCKET": "/run/user/1/p.sock", "ALLOWED_HOSTS": "hub.example.org"},
     "ALLOWED_HOSTS is set, but the proxy does not listen on a loopback TCP address (only there are host names "
     "checked), so it is not used"),
])
def test_a_setting_another_one_switches_off_is_a_warning(environ: dict, warning: str) -> None:
    """API_KEY_SECRET without ENABLE_AUTH above all: the user expects a guarded proxy and gets an open one."""
    assert load({}, environ=environ).warnings == (warning,)


def test_settings_that_apply_are_no_warning() -> None:
    assert load({}, environ={"API_KEY_SECRET": "k1", "ENABLE_AUTH": "true", "WORKER_CONNECTIONS": "10"}).warnings == ()
    assert load({}, environ={"THREADS": "8", "WORKER_CLASS": "gthread", "API_KEY_SECRET": ""}).warnings == ()
    assert load({}, environ={"ALLOWED_HOSTS": "hub.example.org"}).warnings == ()
