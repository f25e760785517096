"""Ways of starting cot_proxy on a machine that has only what the project's own files install: `pip install .`
and its console scripts `cot-proxy` / `argo-proxy`, and `python cot_proxy.py` run by a Python without the
dependencies. (The Docker CMD from requirements.txt alone: test_docker.py; run_app.sh: test_run_app.py.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import ROOT, ProxyProcess, clean_environ, free_port, wait_for_port

def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = clean_environ(("COT_PROXY_", "PYTHON"), {"VIRTUAL_ENV"})
    env.update(HOME=str(home), HOST="127.0.0.1", WORKERS="1")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed() -> Path:
    from tests.fresh_venv import installed_venv
    return installed_venv()


def help_text(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run([*command, "--help-all"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def options(text: str) -> list[str]:
    return sorted(word.strip(",") for word in text.split() if word.startswith("-"))


def test_console_scripts_take_the_same_flags(installed: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    reference = options(help_text([str(installed / "bin" / "python"), str(ROOT / "cot_proxy.py")], tmp_path, env))
    assert "--native-openai" in reference and "--port" in reference
    for script in ("cot-proxy", "argo-proxy"):
        text = help_text([str(installed / "bin" / script)], tmp_path, env)
        assert text.startswith(f"usage: {script} ")
        assert options(text) == reference


@pytest.mark.parametrize("script", ["cot-proxy", "argo-proxy"])
def test_console_script_serves_a_config_file(installed: Path, tmp_path: Path, script: str) -> None:
    """Installed with `pip install .` and run from another directory: no checkout on sys.path."""
    with FakeOpenAI() as fake:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"backend: openai\ntarget_base_url: {fake.base_url}\n")
        log = tmp_path / "proxy.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen([str(installed / "bin" / script), str(config), "--port", str(port)],
                                    cwd=tmp_path, env=clean_env(tmp_path), stdout=subprocess.DEVNULL, stderr=err)
        proxy = ProxyProcess(proc, port, str(tmp_path))
        try:
            wait_for_port(port, proc)
            request = urllib.request.Request(proxy.base_url + "/chat/completions", json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(),
                {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.loads(response.read())["object"] == "chat.completion"
        finally:
            proxy.stop()
        text = log.read_text()
        assert f"openai backend -> {fake.base_url}" in text and "1 gevent worker)" in text
        assert "Traceback" not in text


def test_installed_package_has_no_checkout_on_its_path(installed: Path, tmp_path: Path) -> None:
    code = "import argoproxy, cot_proxy; print(argoproxy.__file__); print(cot_proxy.__file__)"
    result = subprocess.run([str(installed / "bin" / "python"), "-c", code], cwd=tmp_path, env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert all(str(installed) in line for line in result.stdout.splitlines())


def bare_python() -> list[str]:
    """A Python that has none of the dependencies: the base interpreter without its site-packages."""
    return [getattr(sys, "_base_executable", sys.executable), "-S"]


def checkout_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", "tests",
                                                               "bench", "logs", ".hypothesis"))
    return copy


def test_cot_proxy_py_outside_any_environment_says_how_to_run_it(tmp_path: Path) -> None:
    copy = checkout_copy(tmp_path)
    result = subprocess.run([*bare_python(), "cot_proxy.py", "--port", "5000"], cwd=copy, env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "./run_app.sh" in lines[0] and "pip install -r requirements.txt" in lines[0]
    assert "Traceback" not in result.stderr


def test_cot_proxy_py_outside_the_environment_uses_the_projects_venv(tmp_path: Path) -> None:
    from tests.fresh_venv import requirements_venv
    copy = checkout_copy(tmp_path)
    (copy / ".venv").symlink_to(requirements_venv())
    result = subprocess.run([*bare_python(), "cot_proxy.py", "--help-all"], cwd=copy, env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: cot_proxy.py ") and "--native-openai" in result.stdout


def start(command: list[str], cwd: Path, env: dict[str, str], port: int) -> ProxyProcess:
    """A proxy in its own process group (as a terminal runs it), stderr in cwd/proxy.log."""
    with open(cwd / "proxy.log", "wb") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    proxy = ProxyProcess(proc, port, str(cwd))
    try:
        wait_for_port(port, proc)
    except BaseException:
        proxy.stop(signal.SIGKILL)
        raise
    return proxy


def health(proxy: ProxyProcess) -> dict:
    try:
        with urllib.request.urlopen(proxy.url + "/health", timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def wait_or_explain(proxy: ProxyProcess, timeout: float) -> int:
    """The master's exit status; if it hangs instead, fail with what each process of the group was doing."""
    try:
        return proxy.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        processes = subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:24,etime,args", "-s", str(proxy.proc.pid)],
                                   capture_output=True, text=True).stdout
        os.killpg(proxy.proc.pid, signal.SIGKILL)
        proxy.proc.wait()
        pytest.fail(f"still running {timeout} s after SIGINT:\n{processes}\nlog:\n{proxy.read_log()}")


@pytest.mark.parametrize("worker_class,workers", [("gevent", "1"), ("gevent", "2"), ("gthread", "2"), ("sync", "1")])
def test_ctrl_c_stops_quietly(tmp_path: Path, worker_class: str, workers: str) -> None:
    """Ctrl+C in a terminal sends SIGINT to the whole process group: master and workers."""
    port = free_port()
    env = clean_env(tmp_path, TARGET_BASE_URL=f"http://127.0.0.1:{free_port()}/v1", WORKER_CLASS=worker_class,
                    WORKERS=workers, PYTHONPATH=str(ROOT))
    proxy = start([sys.executable, str(ROOT / "cot_proxy.py"), "--port", str(port)], tmp_path, env, port)
    assert health(proxy)["status"] == "unhealthy"  # the workers served a request before the interrupt
    os.killpg(proxy.proc.pid, signal.SIGINT)
    assert wait_or_explain(proxy, timeout=15) == 0
    log = proxy.read_log()
    assert log.strip().splitlines() == [f"cot_proxy listening on http://127.0.0.1:{port} "
                                        f"(openai backend -> {env['TARGET_BASE_URL']}/, {workers} {worker_class} "
                                        f"worker{'s' if workers != '1' else ''})"], log


def test_dotenv_in_the_working_directory(tmp_path: Path) -> None:
    """`.env` where the proxy starts (seed 003): below the real environment, above config.yaml."""
    with FakeOpenAI() as fake:
        port = free_port()
        (tmp_path / "config.yaml").write_text("target_base_url: http://127.0.0.1:9/v1\nthink_mode: keep\n")
        (tmp_path / ".env").write_text(f"# the upstream\nTARGET_BASE_URL={fake.base_url}\nPORT=1\n"
                                       "export THINK_MODE='reasoning'\n")
        env = clean_env(tmp_path, PORT=str(port), PYTHONPATH=str(ROOT))
        proxy = start([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"],
                      tmp_path, env, port)
        try:
            assert health(proxy) == {"status": "healthy", "target_url": fake.base_url}
        finally:
            proxy.stop()
        show = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert f"target_base_url: '{fake.base_url}'" in show.stdout  # .env over config.yaml
        assert f"port: {port}\n" in show.stdout  # the environment over .env
        assert "think_mode: 'reasoning'" in show.stdout


def test_run_tests_sh_on_a_machine_without_python_3_11(tmp_path: Path) -> None:
    """The README's test command on a machine whose python3 is too old says so in one line (as run_app.sh),
    instead of building a virtual environment that pip then fails to fill."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3.13", "python3.12", "python3.11"):  # pyenv's shims for absent versions
        (bin_dir / name).write_text(f"#!/bin/sh\necho \"pyenv: {name}: command not found\" >&2\nexit 127\n")
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 1\n")  # a Python 3.10: the version check fails
    for shim in bin_dir.iterdir():
        shim.chmod(0o755)
    env = clean_env(tmp_path, PATH=f"{bin_dir}:/usr/bin:/bin", COT_PROXY_VENV=str(tmp_path / "no-venv"))
    result = subprocess.run([str(ROOT / "run_tests.sh"), "--version"], env=env, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: cot_proxy needs Python 3.11 or newer (python3.11, python3.12, ... on PATH)."]
    assert not (tmp_path / "no-venv").exists()
