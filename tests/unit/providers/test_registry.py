"""The provider registry: every package under argoproxy/providers/ registers itself by name, the `backend`
setting's choices and the Settings fields come from it, the Gunicorn master imports no backend, and no
provider imports the pipeline."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from argoproxy import providers
from argoproxy.providers.argo.native import ArgoNativeBackend
from argoproxy.providers.argo.standard import ArgoStandardBackend
from argoproxy.providers.base import Backend
from argoproxy.serve.gunicorn_app import describe_mode
from argoproxy.config.settings import SETTING_FIELDS, ComposedSettings, CoreSettings, Settings, SettingsError, load_settings
from argoproxy.upstream.client import Upstream
from tests.proxy_process import ROOT

PROVIDERS_DIR = Path(providers.__file__).parent
# What a provider may not import: the request flow it plugs into (it is handed a Call, never reaches up).
PIPELINE_MODULES = ("argoproxy.pipeline.gateway", "argoproxy.serve.flask_view", "argoproxy.serve.flask_app", "argoproxy.edge.auth",
                    "argoproxy.observe.metrics", "argoproxy.observe.journal")


def test_every_provider_package_is_registered():
    packages = sorted(p.name for p in PROVIDERS_DIR.iterdir() if (p / "__init__.py").is_file())
    assert len(packages) >= 3 and set(packages) <= set(providers.names())
    for name in packages:
        provider = providers.get(name)
        settings = load_settings({}, environ={"BACKEND": name, "ARGO_USER": "alice"})
        assert provider.check_settings(settings) is None
        backend = providers.create_backend(settings, Upstream(1, 1, 0))
        assert backend.name == name and isinstance(backend, Backend)
        assert provider.startup_line(settings) == describe_mode(settings)
        if provider.key_setting:  # a routing entry's api_key_env fills a setting that exists
            assert provider.key_setting in SETTING_FIELDS
        assert set(provider.entry_urls("http://127.0.0.1:9/v1/")) <= set(SETTING_FIELDS)
    argo = providers.get("argo")
    standard = load_settings({}, environ={"BACKEND": "argo", "ARGO_USER": "alice"})
    native = dataclasses.replace(standard, use_native_openai=True)
    assert argo.backend_class(standard) is ArgoStandardBackend and argo.backend_class(native) is ArgoNativeBackend
    assert isinstance(providers.create_backend(native, Upstream(1, 1, 0)), ArgoNativeBackend)


def test_backend_choices_come_from_the_registry():
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"BACKEND": "nope"})
    for name in providers.names():
        assert name in str(err.value)


def test_packages_named_cot_proxy_provider_on_the_import_path_are_found(tmp_path, monkeypatch):
    for name in ("cot_proxy_provider_acme", "cot_proxy_provider_beta", "cot_proxy_other", "cot_proxy_provider_x.py"):
        (tmp_path / name).mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "not-there"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert providers.external_packages() == ["cot_proxy_provider_acme", "cot_proxy_provider_beta"]


def test_a_provider_package_outside_argoproxy_registers_itself_at_start_up(tmp_path):
    """In a fresh interpreter, as the proxy starts: the package's settings fragment joins Settings."""
    package = tmp_path / "cot_proxy_provider_unit"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from dataclasses import dataclass\n"
        "from argoproxy.providers import Provider, register\n"
        "from argoproxy.config.setting_fields import as_str, setting\n"
        "@dataclass(frozen=True)\n"
        "class UnitSettings:\n"
        "    unit_key: str = setting('', as_str, 'Its key.', env=('UNIT_KEY',), secret=True)\n"
        "register(Provider('unit', 'argoproxy.providers.openai.backend:OpenAIBackend', settings=UnitSettings,\n"
        "                  key_setting='unit_key', default_target_url='http://127.0.0.1:9/unit/'))\n")
    code = ("from argoproxy.config.settings import load_settings; "
            "s = load_settings({}, environ={'BACKEND': 'unit', 'UNIT_KEY': 'k'}); "
            "print(s.backend, s.unit_key, s.target_base_url)")
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["unit", "k", "http://127.0.0.1:9/unit/"], out.stderr


def test_a_registered_backend_becomes_a_choice():
    class Unit(Backend):
        name = "unit-test-provider"

    providers.register(providers.Provider(Unit.name, Unit, default_target_url="http://127.0.0.1:9/unit/"))

    try:
        s = load_settings({}, environ={"BACKEND": "unit-test-provider"})
        assert s.backend == "unit-test-provider"
        assert s.target_base_url == "http://127.0.0.1:9/unit/"
        assert describe_mode(s) == "unit-test-provider backend -> http://127.0.0.1:9/unit/"
    finally:
        providers._REGISTRY.pop("unit-test-provider")


def test_settings_are_core_plus_each_fragment():
    core = {f.name for f in dataclasses.fields(CoreSettings)}
    fragments = providers.settings_fragments()
    assert set(fragments) == {p.settings for p in providers.all_providers() if p.settings is not None}
    assert {"ArgoSettings", "DashScopeSettings"} <= {cls.__name__ for cls in fragments}
    fragment_fields = [f.name for cls in fragments for f in dataclasses.fields(cls)]
    assert not core & set(fragment_fields) and len(set(fragment_fields)) == len(fragment_fields)
    assert set(SETTING_FIELDS) == core | set(fragment_fields)
    assert {"user", "argo_url", "use_native_openai", "max_image_bytes", "dashscope_api_key"} <= set(fragment_fields)
    assert issubclass(ComposedSettings, CoreSettings)


def test_provider_settings_keep_their_env_vars_and_rules():
    s = load_settings({}, environ={"BACKEND": "argo", "ARGO_USER": "alice", "USE_NATIVE_OPENAI": "1",
                                   "DASHSCOPE_API_KEY": "sk-ds"})
    assert (s.user, s.use_native_openai, s.dashscope_api_key) == ("alice", True, "sk-ds")
    assert describe_mode(s).startswith("ARGO native OpenAI mode -> ")
    with pytest.raises(SettingsError, match="^user: "):
        load_settings({}, environ={"BACKEND": "argo"})
    assert providers.get("argo").check_settings(s) is None


def test_the_master_imports_no_backend():
    """What Gunicorn's master loads (gunicorn.conf.py) must leave requests/urllib3 for the workers to import
    after gevent has patched them."""
    code = ("import sys, argoproxy.serve.gunicorn_app, argoproxy.serve.gunicorn_hooks, argoproxy.config.settings, "
            "argoproxy.fronts, argoproxy.serve.gunicorn_errors, argoproxy.cli; "
            "print(sorted(m for m in ('requests', 'urllib3', 'flask', 'PIL', 'argoproxy.providers.base') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(PROVIDERS_DIR.rglob("*.py")), ids=lambda p: str(p.relative_to(PROVIDERS_DIR)))
def test_no_provider_imports_the_pipeline(path):
    bad = {name for name in _imports(path) if name.startswith(PIPELINE_MODULES)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("workers,loaded", [("2", True), ("1", False)])
def test_the_master_loads_the_token_vocabulary_for_several_workers(tmp_path, workers, loaded):
    """With more than one worker the master loads tiktoken's vocabulary (about 46 MB) before the fork, so the
    workers share it instead of each loading a copy; it still imports no requests or urllib3."""
    code = ("import sys, os; from argoproxy.config.settings import load_settings; "
            "from argoproxy.serve import gunicorn_hooks; from argoproxy.meter import tokens; "
            f"gunicorn_hooks.gunicorn_hooks(load_settings({{}}, environ={{'HOME': {str(tmp_path)!r}, 'WORKERS': '{workers}', "
            "'TARGET_BASE_URL': 'http://127.0.0.1:9/v1'})); "
            "print(tokens.encoding.cache_info().currsize, sorted(m for m in ('requests', 'urllib3') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "COT_PROXY_SHARED_DIR")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.split(None, 1) == [str(int(loaded)), "[]\n"]
