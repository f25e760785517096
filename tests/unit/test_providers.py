"""The provider registry: every package under argoproxy/providers/ registers itself by name, the `backend`
setting's choices and the Settings fields come from it, the Gunicorn master imports no backend, and no
provider imports the pipeline."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from argoproxy import providers
from argoproxy.providers.argo.backend import ArgoBackend
from argoproxy.providers.base import Backend
from argoproxy.server import describe_mode
from argoproxy.settings import SETTING_FIELDS, CoreSettings, Settings, SettingsError, load_settings
from argoproxy.upstream import Upstream
from tests.proxy_process import ROOT

PROVIDERS_DIR = Path(providers.__file__).parent
# What a provider may not import: the request flow it plugs into (it is handed a Call, never reaches up).
PIPELINE_MODULES = ("argoproxy.pipeline", "argoproxy.routes", "argoproxy.app", "argoproxy.auth",
                    "argoproxy.metrics", "argoproxy.journal")


def test_every_provider_package_is_registered():
    packages = sorted(p.name for p in PROVIDERS_DIR.iterdir() if (p / "__init__.py").is_file())
    assert packages == ["argo", "dashscope", "openai"]
    assert set(packages) <= set(providers.names())
    for name in packages:
        backend = providers.create_backend(load_settings({}, environ={"BACKEND": name, "ARGO_USER": "alice"}),
                                           Upstream(1, 1, 0))
        assert backend.name == name
    assert providers.get("argo").backend_class() is ArgoBackend


def test_backend_choices_come_from_the_registry():
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"BACKEND": "nope"})
    for name in ("openai", "argo", "dashscope"):
        assert name in str(err.value)


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
    assert {cls.__name__ for cls in fragments} == {"ArgoSettings", "DashScopeSettings"}
    fragment_fields = [f.name for cls in fragments for f in dataclasses.fields(cls)]
    assert not core & set(fragment_fields) and len(set(fragment_fields)) == len(fragment_fields)
    assert set(SETTING_FIELDS) == core | set(fragment_fields)
    assert {"user", "argo_url", "use_native_openai", "max_image_bytes", "dashscope_api_key"} <= set(fragment_fields)
    assert issubclass(Settings, CoreSettings)


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
    code = ("import sys, argoproxy.server, argoproxy.processes, argoproxy.settings; "
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
