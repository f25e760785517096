"""Every seed way of starting reads one config the same way: a seed ARGO config.yaml (no `backend:` key) runs
the ARGO backend through `python cot_proxy.py config.yaml`, `gunicorn -c gunicorn.conf.py cot_proxy:app`,
the Docker image's CMD (the config mounted at /app/config.yaml), the console scripts after `pip install .`,
and `./run_app.sh`; each start-up line says why. And `--native-openai` / USE_NATIVE_OPENAI choose ARGO."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import ROOT, clean_environ, free_port, project_directory

def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = clean_environ(("COT_PROXY_", "USE_NATIVE", "NATIVE_"), {"PYTHONPATH", "VIRTUAL_ENV"})
    env.update(HOME=str(home), HOST="127.0.0.1", WORKERS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def seed_argo_config(path: Path, argo: FakeArgo, port: int) -> Path:
    """argo-openai-proxy's config.yaml, as its first-time setup wrote it."""
    path.write_text(f'port: {port}\nargo_url: "{argo.chat_url}"\nargo_stream_url: "{argo.stream_url}"\n'
                    f'argo_embedding_url: "{argo.embed_url}"\nuser: "carol"\nverbose: false\nnum_workers: 1\n'
                    "timeout: 600\n")
    return path


def health(port: int, proc: subprocess.Popen, log: Path, timeout: float = 40.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # asked again while it may still come up (its ARGO probe, a busy machine)
            answer = json.loads(exc.read())
            if time.monotonic() > deadline:
                return answer
            time.sleep(0.1)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing on port {port}: {log.read_text()}") from None
            time.sleep(0.1)


def chat(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(
        {"model": "argo:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def python_cot_proxy(config: Path, tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    return [sys.executable, str(ROOT / "cot_proxy.py"), str(config)], tmp, {}


def python_app(config: Path, tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    """`python app.py`, as seeds 001, 003 and 004 start their servers."""
    return [sys.executable, str(ROOT / "app.py"), str(config)], tmp, {}


def gunicorn_app(config: Path, tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    return ([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"], tmp,
            {"CONFIG_PATH": str(config), "PYTHONPATH": str(ROOT)})


def gunicorn_conf(config: Path, tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    return ([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"], tmp,
            {"CONFIG_PATH": str(config), "PYTHONPATH": str(ROOT)})


def docker_cmd(config: Path, tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    """The image's WORKDIR /app holds cot_proxy.py, gunicorn.conf.py, argoproxy/ and the mounted config.yaml."""
    app = tmp / "app"
    app.mkdir()
    for name in ("cot_proxy.py", "gunicorn.conf.py"):
        shutil.copy2(ROOT / name, app / name)
    shutil.copytree(ROOT / "argoproxy", app / "argoproxy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(config, app / "config.yaml")
    return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "cot_proxy:app"], app, {}


def console_script(name: str) -> Callable[[Path, Path], tuple[list[str], Path, dict[str, str]]]:
    def start(config: Path, tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
        from tests.fresh_venv import installed_venv
        return [str(installed_venv() / "bin" / name), str(config)], tmp, {}
    start.__name__ = name
    return start


def run_app(config: Path, tmp: Path) -> tuple[list[str], Path, dict[str, str]]:
    return [str(ROOT / "run_app.sh"), str(config)], tmp, {"COT_PROXY_VENV": str(Path(sys.executable).parent.parent)}


@pytest.mark.parametrize("entry", [python_cot_proxy, python_app, gunicorn_conf, gunicorn_app, docker_cmd,
                                   console_script("cot-proxy"), console_script("argo-proxy"), run_app],
                         ids=lambda e: e.__name__)
def test_a_seed_argo_config_runs_argo_through_every_entry_point(tmp_path: Path, entry) -> None:
    with FakeArgo() as argo:
        port = free_port()
        config = seed_argo_config(tmp_path / "config.yaml", argo, port)
        command, cwd, extra = entry(config, tmp_path)
        log = tmp_path / "start.log"
        env = clean_env(tmp_path, **extra)
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            assert health(port, proc, log)["backend"] == "argo"
            assert chat(port)["choices"][0]["message"]["content"] == argo.reply
            assert argo.requests[-1].json["user"] == "carol"
        finally:
            proc.terminate()
            proc.wait(30)
        text = log.read_text()
        shown = "config.yaml" if entry is docker_cmd else str(config)
        assert (f"(ARGO standard mode, real streaming; argo backend: {shown} has its keys (argo_url, argo_stream_url, "
                "argo_embedding_url, ...) and no backend: key, 1 gevent worker)") in text, text


def test_gunicorn_with_its_config_file_alone_finds_the_app(tmp_path: Path) -> None:
    """`gunicorn -c gunicorn.conf.py`, as docs/install.md and docs/settings.md write it, without `cot_proxy:app`: the
    config file names the app (it used to stop: "No application module specified"). Gunicorn's --check-config loads
    the config and the app, and serves nothing."""
    env = clean_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1", PORT=str(free_port()), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--check-config"],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_native_openai_chooses_argo(tmp_path: Path, how: str) -> None:
    with FakeOpenAI() as native:
        port = free_port()
        args = ["--native-openai"] if how == "flag" else []
        env = clean_env(tmp_path, PORT=str(port), ARGO_USER="dave", NATIVE_OPENAI_BASE_URL=native.base_url,
                        PYTHONPATH=str(ROOT))
        if how == "environment":
            env["USE_NATIVE_OPENAI"] = "true"
        log = tmp_path / "start.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "cot_proxy.py"), *args], cwd=tmp_path, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert health(port, proc, log)["backend"] == "argo"
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(),
                {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=20) as response:
                assert response.status == 200
            assert native.received[-1].path == "/v1/chat/completions"
        finally:
            proc.terminate()
            proc.wait(30)
        label = "--native-openai" if how == "flag" else "USE_NATIVE_OPENAI"
        assert f"ARGO native OpenAI mode -> {native.base_url}; argo backend: {label} implies it" in log.read_text()


def test_target_base_url_beside_a_seed_argo_config_stops_start_up(tmp_path: Path) -> None:
    with FakeArgo() as argo:
        config = seed_argo_config(tmp_path / "config.yaml", argo, free_port())
        result = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), str(config)], cwd=tmp_path,
                                env=clean_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1"),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cot_proxy: bad setting TARGET_BASE_URL: ")
    assert "the backend is argo" in lines[0] and "BACKEND=openai" in lines[0]


def test_argo_settings_with_explicit_openai_backend_stop_start_up(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--backend", "openai", "--native-openai"],
                            cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cot_proxy: bad setting --native-openai: argo's setting (on the command line), but the backend is openai "
        "(on the command line): remove one of them, or set backend argo"]


def started_and_stopped(tmp_path: Path, args: list[str], **extra: str) -> list[str]:
    """The lines the proxy printed, started with these arguments and settings in front of a fake upstream, once
    healthy and stopped."""
    with FakeOpenAI() as fake:
        port = free_port()
        env = clean_env(tmp_path, TARGET_BASE_URL=fake.base_url, PORT=str(port), **extra)
        log = tmp_path / "start.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            assert health(port, proc, log)["status"] == "healthy"
        finally:
            proc.terminate()
            proc.wait(30)
    return log.read_text().splitlines()


def test_a_setting_the_backend_does_not_use_is_a_warning(tmp_path: Path) -> None:
    lines = started_and_stopped(tmp_path, ["-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"],
                                ARGO_USER="erin", PYTHONPATH=str(ROOT))
    assert lines[0] == "cot_proxy: warning: ARGO_USER is set in the environment, but the openai backend does not use it"
    assert lines.count(lines[0]) == 1  # once, from the master, not once per worker


def test_a_warning_is_said_once_where_the_proxy_starts_gunicorn_itself(tmp_path: Path) -> None:
    """`python cot_proxy.py` (and ./run_app.sh, which runs it) checks the settings before starting Gunicorn, whose
    configuration reads them again: the warnings were said at each."""
    lines = started_and_stopped(tmp_path, [str(ROOT / "cot_proxy.py")], ARGO_USER="erin")
    said = "cot_proxy: warning: ARGO_USER is set in the environment, but the openai backend does not use it"
    assert lines.count(said) == 1, lines


def test_gunicorn_cmd_args_where_the_proxy_starts_itself_is_a_warning(tmp_path: Path) -> None:
    """`python cot_proxy.py` runs Gunicorn from the proxy's settings and does not read GUNICORN_CMD_ARGS (Gunicorn's
    own command does): a worker class asked for there would silently not be used."""
    lines = started_and_stopped(tmp_path, [str(ROOT / "cot_proxy.py")], GUNICORN_CMD_ARGS="--worker-class=gthread")
    warning = [line for line in lines if "GUNICORN_CMD_ARGS" in line]
    assert len(warning) == 1 and warning[0].startswith("cot_proxy: warning: GUNICORN_CMD_ARGS is not read"), lines


def test_the_default_upstream_is_never_silent(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert "target_base_url: 'https://api.openai.com/v1/'" in result.stdout
    from argoproxy.serve.gunicorn_app import startup_line
    from argoproxy.config.settings import load_settings
    line = startup_line(load_settings({}, environ={}))
    assert "openai backend -> https://api.openai.com/v1/, the default URL: TARGET_BASE_URL sets another" in line


def test_gunicorn_without_its_config_file_still_says_where_requests_go(tmp_path: Path) -> None:
    """`gunicorn cot_proxy:app` where no gunicorn.conf.py is read (seed 002's own command line, an installed
    package started from another directory): no master announced the upstream, so the worker does, with
    the warnings; never a silent api.openai.com. (With the upstream's key only: OpenAI's API chosen; with nothing
    configured at all it refuses, tests/integration/test_nothing_configured.py.)"""
    port = free_port()
    log = tmp_path / "out.log"
    env = clean_env(tmp_path, PYTHONPATH=str(ROOT), ARGO_USER="erin", OPENAI_API_KEY="sk-upstream-test")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
                                 "cot_proxy:app"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "cot_proxy worker" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        text = log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "openai backend -> https://api.openai.com/v1/, the default URL: TARGET_BASE_URL sets another" in text, text
    assert "cot_proxy: warning: ARGO_USER is set in the environment" in text


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    """A second proxy on the same port: one line naming the port, at once, instead of Gunicorn's five tries
    over five seconds and ten ERROR lines."""
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = clean_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1", PORT=str(port))
        for command in ([sys.executable, str(ROOT / "cot_proxy.py")],
                        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"]):
            started = time.monotonic()
            result = subprocess.run(command, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                                    capture_output=True, text=True, timeout=60)
            assert time.monotonic() - started < 4, result.stderr
            assert result.returncode != 0
            lines = result.stderr.strip().splitlines()
            assert lines == [f"cot_proxy: bad setting PORT: port {port} on 127.0.0.1 is already in use (another "
                             "server, or this proxy started twice): stop it or choose another port"], result.stderr


@pytest.mark.parametrize("host, says", [
    ("999.1.1.1", "cot_proxy: bad setting HOST: expected an IP address or a host name (0.0.0.0: every interface), "
                  "got '999.1.1.1'"),  # refused as read: a resolver could take it for another address
    ("no-such-host.invalid", "cot_proxy: bad setting HOST: `no-such-host.invalid` is neither an address nor a host "
                             "name this machine can resolve"),
    ("192.0.2.1", "cot_proxy: bad setting HOST: this machine has no address 192.0.2.1 to listen on (127.0.0.1: "
                  "this machine only; 0.0.0.0: every interface)"),
])
def test_a_host_it_cannot_listen_on_is_one_line(tmp_path: Path, host: str, says: str) -> None:
    """HOST that is no address, names no host or is not this machine's: one line naming HOST, exit code 2, at once
    (Gunicorn tried five times and printed its errors, after the warning that anyone could reach the port)."""
    env = clean_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1", HOST=host, PORT="5000")
    result = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path,
                            env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [says], result.stderr


def test_a_port_in_use_names_where_it_was_set(tmp_path: Path) -> None:
    """The line names what the user would change: --port when the port came from the flag, the config's key
    when from the file; ./run_app.sh without a terminal says the same with exit code 2, as the README says."""
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"target_base_url: http://127.0.0.1:9/v1\nport: {port}\n")
        env = {**clean_env(tmp_path, COT_PROXY_SKIP_CHECKS="1", COT_PROXY_VENV=sys.prefix), "PYTHONPATH": str(ROOT)}
        env.pop("PORT", None)
        runs = {"--port": ([sys.executable, str(ROOT / "cot_proxy.py"), "--port", str(port)], "--port"),
                "script --port": ([str(ROOT / "run_app.sh"), "--port", str(port)], "--port"),
                "config": ([sys.executable, str(ROOT / "cot_proxy.py"), str(config)], f"port (in {config})"),
                "script config": ([str(ROOT / "run_app.sh"), str(config)], f"port (in {config})")}
        for name, (command, label) in runs.items():
            extra = {} if "config" in name else {"TARGET_BASE_URL": "http://127.0.0.1:9/v1"}
            result = subprocess.run(command, cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True,
                                    timeout=60, stdin=subprocess.DEVNULL)
            assert result.returncode == 2, (name, result.stderr)
            lines = [line for line in result.stderr.strip().splitlines() if line.startswith("cot_proxy:")]
            assert lines and lines[-1].startswith(f"cot_proxy: bad setting {label}: port {port}"), (name, result.stderr)


def test_gunicorn_own_flags_in_the_project_directory_are_what_the_line_says(tmp_path: Path) -> None:
    """`gunicorn -w 2 -b ADDR cot_proxy:app` in the project directory reads ./gunicorn.conf.py by itself; its
    -b and -w win, and the start-up line says them, not the settings' port and workers. The settings' port is
    taken (as 5000 is beside a proxy the README's steps left running): the start-up check is of -b's port."""
    import socket
    port, settings_port = free_port(), free_port()
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    env = {**clean_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1", PORT=str(settings_port), WORKERS="1",
                       CONFIG_PATH=str(empty)), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "proxy.log"
    with socket.create_server(("127.0.0.1", settings_port)), open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                                 "cot_proxy:app"], cwd=project_directory(tmp_path), env=env,
                                stdout=subprocess.DEVNULL, stderr=out)
        try:
            health(port, proc, log)
            deadline = time.monotonic() + 20
            while "listening on" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(20)
    lines = [line for line in log.read_text().splitlines() if "listening on" in line]
    assert len(lines) == 1 and lines[0].startswith(f"cot_proxy listening on http://127.0.0.1:{port} ("), lines
    assert lines[0].endswith("2 gevent workers)") and str(settings_port) not in lines[0]


def test_gunicorn_bind_elsewhere_takes_the_server_on_the_settings_port_as_its_upstream(tmp_path: Path) -> None:
    """`gunicorn -b 127.0.0.1:OTHER` with TARGET_BASE_URL at the settings' port on loopback (a server there, as a
    new user put the demo's): the proxy listens on OTHER, so that upstream is not itself; it was refused as a loop."""
    import socket
    port, settings_port = free_port(), free_port()
    env = {**clean_env(tmp_path, TARGET_BASE_URL=f"http://127.0.0.1:{settings_port}/v1", PORT=str(settings_port),
                       WORKERS="1"), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "proxy.log"
    with socket.create_server(("127.0.0.1", settings_port)), open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "cot_proxy:app"],
                                cwd=project_directory(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=out)
        try:
            deadline = time.monotonic() + 40
            while "listening on" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:  # the quick stop, as the suite's proxies stop (a SIGTERM waits on a worker still booting)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    text = log.read_text()
    assert "would loop" not in text and f"cot_proxy listening on http://127.0.0.1:{port} (" in text, text


def test_gunicorn_bind_on_a_taken_port_is_one_line_naming_it(tmp_path: Path) -> None:
    import socket
    env = {**clean_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1", PORT=str(free_port())),
           "PYTHONPATH": str(ROOT)}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        done = subprocess.run([sys.executable, "-m", "gunicorn", "-b", bind, "cot_proxy:app"],
                              cwd=project_directory(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"cot_proxy: bad setting -b {bind}: port {bind.split(':')[1]} on 127.0.0.1 is already in use (another "
        "server, or this proxy started twice): stop it or choose another port"), done.stderr


def _ipv6_loopback() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("host", ["[::1]", "::1"])
def test_an_ipv6_host_is_listened_on_written_either_way(tmp_path: Path, host: str) -> None:
    """HOST=[::1] as a URL writes it, or bare: the proxy listens there (the start-up probe refused the first,
    Gunicorn's bind split the second at its last ':')."""
    port = free_port()
    with FakeOpenAI() as fake:
        proc = subprocess.Popen([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env={**clean_env(tmp_path, HOST=host, PORT=str(port),
                                                                         TARGET_BASE_URL=fake.base_url),
                                                             "PYTHONPATH": str(ROOT)})
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://[::1]:{port}/health", timeout=5) as r:
                        assert r.status == 200
                        break
                except (urllib.error.URLError, ConnectionError):
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_python_app_py_takes_seed_004s_command_line_as_cot_proxy_py_does(tmp_path: Path) -> None:
    """Seed 004's minimum usage, `python app.py --output_path ./logs --expose_host ... --timeout 60000`: the same
    settings as through cot_proxy.py, and its --help-all under its own name."""
    flags = ["--output_path", "./logs", "--expose_host", "0.0.0.0", "--expose_port", "58080", "--url",
             "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions", "--timeout", "60000", "--show"]
    env = clean_env(tmp_path)
    shown = [subprocess.run([sys.executable, str(ROOT / name), *flags], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60) for name in ("app.py", "cot_proxy.py")]
    assert shown[0].returncode == 0, shown[0].stderr
    assert shown[0].stdout == shown[1].stdout and shown[0].stderr == shown[1].stderr
    assert "port: 58080\n" in shown[0].stdout and "timeout: 60.0\n" in shown[0].stdout
    helped = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help-all"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: app.py ") and "--output_path" in helped.stdout
