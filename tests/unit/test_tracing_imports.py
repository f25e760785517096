"""Where OpenTelemetry is loaded: never in the Gunicorn master (its workers start the SDK after the fork, and gevent
must patch a worker before the exporter's requests and threads exist), and, with tracing off, nowhere at all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.proxy_process import ROOT, clean_environ, free_port

LOADED = "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('opentelemetry.')}))"


def run(code: str, tmp_path, **env: str) -> str:
    environ = {**clean_environ(("COT_PROXY_", "PROMETHEUS_")), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
               "TARGET_BASE_URL": "http://127.0.0.1:9/v1", **env}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environ, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("env", [{"TRACING": "on"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}],
                         ids=["TRACING=on", "an endpoint"])
def test_the_master_never_imports_opentelemetry(tmp_path, env):
    """What Gunicorn's master runs (gunicorn.conf.py: the settings, Gunicorn's options and hooks) with tracing on."""
    code = ("import sys; from argoproxy.serve.gunicorn_app import startup_options; "
            "options = startup_options()[1]; assert 'worker_exit' in options, sorted(options); " + LOADED)
    assert run(code, tmp_path, PORT=str(free_port()), **env) == "[]"


def test_the_master_never_imports_an_http_client(tmp_path):
    """gevent patches a worker after the fork: requests or urllib3 imported by the master before it (their pools,
    locks and sockets) would be unpatched in every worker; a CI run where the start-up line's URL masking came
    from the health check's module, which imports requests, was slow and failed throughout. Tracing on names its
    collector at start-up."""
    code = ("import sys; from argoproxy.serve.gunicorn_app import startup_options; startup_options(); "
            "print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))")
    assert run(code, tmp_path, PORT=str(free_port()), TRACING="on",
               OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318") == "[]"


def test_a_worker_loads_it_only_when_tracing(tmp_path):
    """The app a worker builds (create_app): not one OpenTelemetry module when off; the SDK and exporter when on."""
    code = ("import sys; from argoproxy.config.settings import load_settings; "
            "from argoproxy.serve.flask_app import create_app; create_app(load_settings()); " + LOADED)
    assert run(code, tmp_path) == "[]"
    assert run(code, tmp_path, TRACING="off", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318") == "[]"
    assert run(code, tmp_path, OTEL_SDK_DISABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318") == "[]"
    loaded = run(code, tmp_path, TRACING="on")
    assert "sdk" in loaded and "exporter" in loaded, loaded


def test_the_environment_of_the_suite_does_not_trace(tmp_path):
    """The suite's proxies trace only when a test says so: a developer's OTEL_* variables are not theirs."""
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4318"
    try:
        assert not any(name.startswith("OTEL_") or name.startswith("TRACING") for name in clean_environ())
    finally:
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
