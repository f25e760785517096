"""Private by default on a shared machine: loopback unless HOST says otherwise, a warning for an open port
with no key, a Unix socket only its owner can use (SOCKET), and the per-user key file (API_KEY_FILE)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx  # the SDKs' own fork of httpx (openai and anthropic require it)
import psutil
import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import ROOT, clean_environ, free_port, project_directory, running_proxy

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def listening(pid: int, port: int) -> set[str]:
    """The addresses the Gunicorn master (pid) listens on at this port."""
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def start(home: Path, args: list[str], **env: str) -> subprocess.Popen:
    environ = clean_environ(("COT_PROXY_",), {"HOST"})
    environ.update(HOME=str(home), WORKERS="1", PYTHONUNBUFFERED="1", **env)
    with open(home / "proxy.log", "ab") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "cot_proxy.py"), *args], cwd=home, env=environ,
                                stdout=subprocess.DEVNULL, stderr=log)


def wait_for(predicate, proc: subprocess.Popen, home: Path, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {(home / 'proxy.log').read_text()}")
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not ready: {(home / 'proxy.log').read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_python_cot_proxy_listens_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    with FakeOpenAI() as fake:
        proc = start(tmp_path, ["--port", str(port)], TARGET_BASE_URL=fake.base_url)
        try:
            addresses = wait_for(lambda: listening(proc.pid, port), proc, tmp_path)
            assert addresses == {"127.0.0.1"}
        finally:
            stop(proc)
    log = (tmp_path / "proxy.log").read_text()
    assert f"listening on http://127.0.0.1:{port}" in log and "ENABLE_AUTH is off" not in log


def test_every_interface_without_a_key_is_a_warning(tmp_path: Path) -> None:
    port = free_port()
    with FakeOpenAI() as fake:
        proc = start(tmp_path, ["--port", str(port), "--host", "0.0.0.0"], TARGET_BASE_URL=fake.base_url)
        try:
            assert wait_for(lambda: listening(proc.pid, port), proc, tmp_path) == {"0.0.0.0"}
        finally:
            stop(proc)
    warning = [line for line in (tmp_path / "proxy.log").read_text().splitlines() if "warning" in line]
    assert any("HOST is 0.0.0.0 and ENABLE_AUTH is off" in line and f"port {port}" in line for line in warning)


@pytest.mark.parametrize("how", ["-b in the project directory", "PORT without gunicorn.conf.py"])
def test_gunicorn_binding_every_interface_itself_is_a_warning(tmp_path: Path, how: str) -> None:
    """Gunicorn's own bind (`-b`, or its default 0.0.0.0:$PORT when started where no gunicorn.conf.py is read)
    is not HOST: the warning looked at HOST alone and said nothing while every interface was open."""
    port = free_port()
    environ = clean_environ(("COT_PROXY_",), {"HOST"})
    environ.update(HOME=str(tmp_path), PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    project = project_directory(tmp_path)
    if how.startswith("-b"):
        args, cwd = ["-w", "1", "-b", f"0.0.0.0:{port}", "cot_proxy:app"], project
    else:
        args, cwd = ["--chdir", str(project), "-w", "1", "cot_proxy:app"], tmp_path
        environ["PORT"] = str(port)
    with FakeOpenAI() as fake:
        environ["TARGET_BASE_URL"] = fake.base_url
        with open(tmp_path / "proxy.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gunicorn", *args], cwd=cwd, env=environ,
                                    stdout=subprocess.DEVNULL, stderr=log)
        try:
            assert wait_for(lambda: listening(proc.pid, port), proc, tmp_path) == {"0.0.0.0"}
            wait_for(lambda: "ENABLE_AUTH is off" in (tmp_path / "proxy.log").read_text(), proc, tmp_path, 20)
        finally:
            stop(proc)
    warning = [line for line in (tmp_path / "proxy.log").read_text().splitlines() if "warning" in line]
    assert any(f"bind is 0.0.0.0:{port} and ENABLE_AUTH is off" in line for line in warning), warning


def test_the_image_keeps_every_interface_quietly(tmp_path: Path) -> None:
    """The Docker image sets HOST=0.0.0.0 and marks itself: the port mapping is the boundary, no warning."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "HOST=0.0.0.0" in dockerfile and "COT_PROXY_CONTAINER=1" in dockerfile
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, HOST="0.0.0.0",
                                             COT_PROXY_CONTAINER="1") as proxy:
        assert listening(proxy.proc.pid, proxy.port) == {"0.0.0.0"}
        assert "ENABLE_AUTH is off" not in proxy.read_log()


@pytest.fixture
def private_home():
    # A short path: a Unix socket's path is limited to 107 bytes.
    home = Path(tempfile.mkdtemp(prefix="cp-"))
    yield home
    subprocess.run(["rm", "-rf", str(home)], check=False)


def test_socket_is_private_and_serves_the_sdks(private_home: Path) -> None:
    path = private_home / "run" / "proxy.sock"  # its directory does not exist yet: made 0700
    with FakeOpenAI() as fake:
        proc = start(private_home, ["--socket", str(path)], TARGET_BASE_URL=fake.base_url, PORT=str(free_port()))
        try:
            wait_for(lambda: path.exists() and stat.S_ISSOCK(path.stat().st_mode), proc, private_home)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            assert not psutil.Process(proc.pid).net_connections("inet")  # no TCP port at all

            curl = wait_for(lambda: _curl(path), proc, private_home)
            assert curl["choices"][0]["message"]["content"]

            import anthropic
            import openai
            transport = httpx.HTTPTransport(uds=str(path))
            client = openai.OpenAI(base_url="http://localhost/v1", api_key="unused",
                                   http_client=httpx.Client(transport=transport), max_retries=0)
            answer = client.chat.completions.create(**CHAT)
            assert answer.choices[0].message.content
            claude = anthropic.Anthropic(base_url="http://localhost", api_key="unused",
                                         http_client=httpx.Client(transport=httpx.HTTPTransport(uds=str(path))),
                                         max_retries=0)
            message = claude.messages.create(model="gpt-4o", max_tokens=50,
                                             messages=[{"role": "user", "content": "hi"}])
            assert message.content[0].text
            # A browser cannot reach a socket (no DNS rebinding): a client may name any host over it.
            named = openai.OpenAI(base_url="http://cot-proxy/v1", api_key="unused", max_retries=0,
                                  http_client=httpx.Client(transport=httpx.HTTPTransport(uds=str(path))))
            assert named.chat.completions.create(**CHAT).choices[0].message.content
        finally:
            stop(proc)
    assert f"listening on unix:{path}" in (private_home / "proxy.log").read_text()


def _curl(path: Path) -> dict | None:
    done = subprocess.run(["curl", "-s", "--unix-socket", str(path), "http://localhost/v1/chat/completions",
                           "-H", "Content-Type: application/json", "-d", json.dumps(CHAT)],
                          capture_output=True, text=True, timeout=20)
    try:
        return json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        return None


def test_socket_in_a_directory_others_can_enter_stops_start_up(private_home: Path) -> None:
    shared = private_home / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    proc = start(private_home, ["--socket", str(shared / "proxy.sock")], TARGET_BASE_URL="http://127.0.0.1:9/v1")
    assert proc.wait(30) == 2
    lines = (private_home / "proxy.log").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cot_proxy: bad setting SOCKET:") and "other users" in lines[0]
    assert not (shared / "proxy.sock").exists()


def test_a_socket_path_taken_stops_start_up_and_a_stale_one_is_replaced(private_home: Path) -> None:
    """A second start on the same SOCKET replaced the first one's socket (its clients silently went to the new
    one, and the first was unreachable); a file or directory there gave Gunicorn's traceback. A socket nobody
    listens on (a proxy killed) is still replaced."""
    run = private_home / "run"
    run.mkdir(mode=0o700)
    path = run / "proxy.sock"
    path.write_text("x")
    proc = start(private_home, ["--socket", str(path)], TARGET_BASE_URL="http://127.0.0.1:9/v1")
    assert proc.wait(30) == 2
    lines = (private_home / "proxy.log").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"cot_proxy: bad setting --socket: {path} exists and is not a socket: " \
        "remove it or choose another path", lines
    path.unlink()

    import socket
    with socket.socket(socket.AF_UNIX) as stale:  # bound, then closed without being removed
        stale.bind(str(path))
    (private_home / "proxy.log").unlink()
    with FakeOpenAI() as fake:
        first = start(private_home, ["--socket", str(path)], TARGET_BASE_URL=fake.base_url)
        try:
            assert wait_for(lambda: _curl(path), first, private_home)["choices"]
            second_home = private_home / "second"
            second_home.mkdir()
            second = start(second_home, [], SOCKET=str(path), TARGET_BASE_URL=fake.base_url)
            assert second.wait(30) == 2
            said = (second_home / "proxy.log").read_text().strip().splitlines()
            assert said == [f"cot_proxy: bad setting SOCKET: {path} is in use (another server, or this proxy "
                            "started twice): stop it or choose another path"], said
            assert _curl(path)["choices"]  # the first still serves its socket
        finally:
            stop(first)


def test_key_file_holds_the_accepted_key(tmp_path: Path) -> None:
    key_file = tmp_path / "api_key"
    key_file.write_text("# mine\nsk-proxy-from-file\n")
    key_file.chmod(0o600)
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_FILE=str(key_file)) as proxy:
        with httpx.Client(base_url=proxy.base_url, timeout=20) as http:
            assert http.post("/chat/completions", json=CHAT).status_code == 401
            assert http.post("/chat/completions", json=CHAT,
                             headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = http.post("/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-proxy-from-file"})
            assert ok.status_code == 200
        assert "sk-proxy-from-file" not in json.dumps([r.headers for r in fake.received])
        log = proxy.read_log()
        assert "sk-proxy-from-file" not in log
        assert "generated API key" not in log and "sk-proxy-" not in log  # no other key made up and printed


@pytest.mark.parametrize("layout", ["symlinked parent", "open ancestor"])
def test_socket_below_a_directory_another_user_can_swap_stops_start_up(private_home: Path, layout: str) -> None:
    """Issue 38, item 11: every directory up to the root is checked, not only the socket's own. A private
    directory inside one every user may write (without the sticky bit) can be renamed away and replaced; a
    symbolic link as the socket's directory points wherever whoever controls it wants."""
    real = private_home / "real"
    real.mkdir(mode=0o700)
    if layout == "symlinked parent":
        (private_home / "link").symlink_to(real)
        path, said = private_home / "link" / "proxy.sock", "symbolic link"
    else:
        opened = private_home / "open"
        opened.mkdir()
        os.chmod(opened, 0o777)
        (opened / "mine").mkdir(mode=0o700)
        path, said = opened / "mine" / "proxy.sock", "can be written by every user and is not sticky"
    proc = start(private_home, ["--socket", str(path)], TARGET_BASE_URL="http://127.0.0.1:9/v1")
    try:
        assert proc.wait(30) == 2
    finally:
        stop(proc)  # it served, before: not left running
    lines = (private_home / "proxy.log").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cot_proxy: bad setting SOCKET:") and said in lines[0], lines
    assert not path.exists()


def test_a_sticky_ancestor_like_tmp_is_fine(private_home: Path) -> None:
    from argoproxy.config.listener import socket_problem
    sticky = private_home / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "mine").mkdir(mode=0o700)
    assert socket_problem(str(sticky / "mine" / "proxy.sock")) is None
    assert socket_problem(str(sticky / "new" / "proxy.sock")) is None  # made 0700 at start-up
