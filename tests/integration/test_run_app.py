"""run_app.sh as users run it: first-time setup answered in a pseudo-terminal (pexpect), a complete config
starting without prompts, and no standard input at all (it must not hang). The connectivity checks go to a
fake ARGO server on loopback; the script reuses the test virtual environment (COT_PROXY_VENV), so no pip
install happens here."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pexpect

from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import ROOT, answer_port_question, clean_environ, free_port

SCRIPT = ROOT / "run_app.sh"
VENV = Path(sys.executable).parent.parent  # the environment running these tests
def script_env(home: Path, **extra: str) -> dict[str, str]:
    env = clean_environ(("COT_PROXY_",))
    # One worker on loopback keeps the tests light; these override the config as the environment does.
    env.update(HOME=str(home), COT_PROXY_VENV=str(VENV), HOST="127.0.0.1", WORKERS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def argo_env(argo: FakeArgo) -> dict[str, str]:
    return {"ARGO_URL": argo.chat_url, "ARGO_STREAM_URL": argo.stream_url, "ARGO_EMBEDDING_URL": argo.embed_url}


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def post(url: str, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_healthy(port: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = get(f"http://127.0.0.1:{port}/health", timeout=2)
            if status == 200:
                return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing healthy on port {port}")
        time.sleep(0.1)


@contextmanager
def spawn(config: Path | None, env: dict[str, str], cwd: Path) -> Iterator[pexpect.spawn]:
    """run_app.sh in a pseudo-terminal; whatever it started is stopped afterwards (SIGINT: Gunicorn's quick exit)."""
    args = [str(config)] if config else []
    child = pexpect.spawn(str(SCRIPT), args, env=env, cwd=str(cwd), encoding="utf-8", timeout=30,
                          dimensions=(50, 200))
    child.logfile_read = io.StringIO()
    try:
        yield child
    finally:
        if child.isalive():
            child.kill(signal.SIGINT)
            try:
                child.expect(pexpect.EOF, timeout=15)
            except pexpect.TIMEOUT:
                child.kill(signal.SIGKILL)
        child.close(force=True)


@contextmanager
def taken(port: int) -> Iterator[None]:
    """The port in use while the block runs (by this test, or already by something else)."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", port))
        holder.listen()
    except OSError:
        pass  # taken already
    try:
        yield
    finally:
        holder.close()


def transcript(child: pexpect.spawn) -> str:
    return child.logfile_read.getvalue()


def test_first_time_setup_argo_in_a_terminal(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "config.yaml"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    with FakeArgo() as argo, busy, taken(5000), spawn(config, script_env(tmp_path, **argo_env(argo)), tmp_path) as child:
        child.expect_exact(f"{config} not found.")
        child.expect_exact("Would you like to create it now? [Y/n] ")
        child.sendline("")
        # The backend first, then only that backend's questions.
        child.expect_exact("Which backend should cot_proxy serve?")
        child.expect_exact("Choose 1-3 [1]: ")
        child.sendline("7")
        child.expect_exact("Error: answer a number from 1 to 3.")
        child.expect_exact("Choose 1-3 [1]: ")
        child.sendline("2")
        # The username: validated until it is acceptable.
        for bad, error in (("cels", "Error: 'cels' is not allowed as a username"),
                           ("", "Error: Username cannot be empty"),
                           ("two words", "Error: Username cannot contain spaces")):
            child.expect_exact("Enter your username: ")
            child.sendline(bad)
            child.expect_exact(error)
        child.expect_exact("Enter your username: ")
        child.sendline("alice")
        # The port: 5000 is taken, so the next free one is offered, saying so; then out of range, then one in use,
        # then the next free one above it offered.
        child.expect(r"Port 5000 is already in use \(another server, or this proxy already running\): offering (\d+)\.")
        offered = int(child.match.group(1))
        assert offered > 5000
        child.expect_exact(f"Enter port [{offered}]: ")
        child.sendline("80")
        child.expect_exact("Error: the port must be a number from 1024 to 65535.")
        child.expect(r"Enter port \[(\d+)\]: ")
        child.sendline(str(busy_port))
        child.expect_exact(f"Port {busy_port} is already in use.")
        child.expect(r"Enter port \[(\d+)\]: ")
        port = int(child.match.group(1))
        assert port > busy_port
        child.sendline("")
        child.expect_exact("Enable verbose mode? [Y/n] ")
        child.sendline("n")
        # A login node: a key of the user's own, in a file only they can read.
        child.expect_exact("Then clients will need a key of your own. [y/N] ")
        child.sendline("y")
        key_file = tmp_path / ".config" / "argoproxy" / "api_key"
        child.expect_exact(f"Created your key file {key_file} (only you can read it). Clients send that key: "
                           f"export COT_PROXY_KEY=$(cat {key_file}) in the clients' shell")
        child.expect_exact("Any time: `./run_app.sh signin setup`")  # sign-in is offered, not asked
        # Review, then the connectivity checks with ARGO's real payloads, then the server.
        child.expect_exact(f"Created {config} with your settings:")
        child.expect_exact('user: "alice"')
        child.expect_exact("Press enter to continue or Ctrl+C to abort.")
        child.sendline("")
        child.expect_exact(f"Validating chat API connectivity: {argo.chat_url} ... ok")
        child.expect_exact(f"Validating embedding API connectivity: {argo.embed_url} ... ok")
        child.expect_exact(f"Starting cot_proxy (argo backend) on port {port}: 1 worker,")
        child.expect_exact("cot_proxy listening on")
        # The client's key is COT_PROXY_KEY: the lines to paste set it from the key file, then send it.
        child.expect_exact("Try it (in another terminal):")
        child.expect(r"  (export COT_PROXY_KEY=[^\r\n]+)\r\n  (curl [^\r\n]+)\r\n")
        export, curl = child.match.group(1), child.match.group(2)
        assert export == f"export COT_PROXY_KEY=$(cat {key_file})" and "$COT_PROXY_KEY" in curl

        assert wait_healthy(port)["status"] == "healthy"
        pasted = subprocess.run(["bash", "-c", f"{export}\n{curl}"], capture_output=True, text=True, timeout=30,
                                env={"PATH": "/usr/bin:/bin"})
        assert json.loads(pasted.stdout)["choices"][0]["message"]["content"], pasted
        assert get(f"http://127.0.0.1:{port}/v1/models")[0] == 401
        key = key_file.read_text().strip()
        assert oct(key_file.stat().st_mode & 0o777) == "0o600" and oct(key_file.parent.stat().st_mode & 0o777) == "0o700"
        status, models = get(f"http://127.0.0.1:{port}/v1/models", {"Authorization": f"Bearer {key}"})
        assert status == 200 and models["object"] == "list" and models["data"]

        text = config.read_text()
        assert "\nbackend: \"argo\"\n" in text
        assert f"\nport: {port}\n" in text
        assert '\nuser: "alice"\n' in text
        assert "\nverbose: false\n" in text
        assert "# Your ANL username" in text
        chat, embed = argo.requests[0].json, argo.requests[1].json
        assert chat == {"user": "alice", "model": "gpt4o", "messages": [{"role": "user", "content": "What are you?"}]}
        assert embed == {"user": "alice", "model": "v3small", "prompt": ["hello"]}
        assert "Traceback" not in transcript(child) and "pyenv" not in transcript(child)


def test_first_time_setup_openai_compatible_server(tmp_path: Path) -> None:
    """Any user: an OpenAI-compatible server's URL, and no ARGO question at all."""
    config = tmp_path / "config.yaml"
    with FakeOpenAI() as fake, spawn(config, script_env(tmp_path), tmp_path) as child:
        child.expect_exact("[Y/n] ")
        child.sendline("y")
        child.expect_exact("Choose 1-3 [1]: ")
        child.sendline("")
        child.expect_exact("No model server yet? Stop here (Ctrl+C) and try the proxy in front of a demo model of "
                           "its own: `./run_app.sh demo` (or `cot-proxy demo`).")
        child.expect_exact("Base URL of the OpenAI-compatible server (e.g. http://localhost:8000/v1): ")
        child.sendline("localhost:8000")
        child.expect_exact("Error: must be an http(s) URL, got 'localhost:8000'")
        child.expect_exact("Base URL of the OpenAI-compatible server")
        child.sendline(fake.base_url + "chat/completions")
        child.expect(r"Enter port \[(\d+)\]: ")  # the offer itself: tests/unit/test_first_run_port.py
        port = answer_port_question(child)  # not the offer: 5000 may be taken by another test by the time it starts
        child.sendline("")
        child.expect_exact("[y/N] ")  # not a shared machine: no key
        child.sendline("")
        child.expect_exact("Press enter to continue or Ctrl+C to abort.")
        child.sendline("")
        child.expect_exact(f"Validating openai API connectivity: {fake.base_url}models ... ok")
        child.expect_exact("cot_proxy listening on")
        # The start's last lines: a request that works as printed, and the agent line for this proxy.
        child.expect_exact("Try it (in another terminal):")
        child.expect(r"  (curl [^\r\n]+)\r\n")
        curl = child.match.group(1)
        child.expect(r"  (\S+) run -- (\w+)    # a coding agent through this proxy")
        assert child.match.group(1).endswith("run_app.sh")  # the config is the directory's config.yaml: not named
        assert wait_healthy(port)["target_url"] == fake.base_url
        assert curl.startswith(f"curl http://127.0.0.1:{port}/v1/chat/completions ")
        printed = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30)
        assert json.loads(printed.stdout)["choices"][0]["message"]["content"] == fake.default_content, printed
        assert fake.received[-1].json()["model"] == "fake-model"  # the first model the upstream lists
        status, answer = post(f"http://127.0.0.1:{port}/v1/chat/completions",
                              {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200 and answer["choices"][0]["message"]["content"] == fake.default_content
        assert "username" not in transcript(child).lower()
    text = config.read_text()
    assert f'\ntarget_base_url: "{fake.base_url}"\n' in text and '\nbackend: "openai"\n' in text
    assert "\nverbose: true\n" in text


def test_ctrl_c_during_setup_and_while_serving_is_quiet(tmp_path: Path) -> None:
    with spawn(tmp_path / "config.yaml", script_env(tmp_path), tmp_path) as child:
        child.expect_exact("[Y/n] ")
        # The prompt is written just before input() blocks: a ^C in between is seen only at the next one.
        for _ in range(20):
            child.sendintr()
            if child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=1) == 0:
                break
        child.close()
        assert child.exitstatus == 130 or child.signalstatus == signal.SIGINT
        assert "Traceback" not in transcript(child) and "KeyboardInterrupt" not in transcript(child)
    with FakeOpenAI() as fake:
        port = free_port()
        config = tmp_path / "served.yaml"
        config.write_text(f"backend: openai\ntarget_base_url: {fake.base_url}\nport: {port}\n")
        with spawn(config, script_env(tmp_path, WORKERS="2"), tmp_path) as child:
            child.expect_exact("cot_proxy listening on")
            assert wait_healthy(port)["status"] == "healthy"
            child.sendintr()  # the terminal's Ctrl+C: SIGINT to the whole foreground process group
            child.expect(pexpect.EOF, timeout=20)
            child.close()
            output = transcript(child)
            assert "Traceback" not in output and "Error" not in output, output
            assert "2 gevent workers" in output


def test_on_a_unix_socket_it_says_so_not_a_port(tmp_path: Path) -> None:
    """`run_app.sh` with a socket said it started "on port 5000" (the port setting it does not use)."""
    with FakeArgo() as argo:
        sock = tmp_path / "run" / "proxy.sock"
        config = tmp_path / "config.yaml"
        config.write_text(f"backend: argo\nsocket: {sock}\nuser: bob\nverbose: false\nargo_url: {argo.chat_url}\n"
                          f"argo_stream_url: {argo.stream_url}\nargo_embedding_url: {argo.embed_url}\n")
        with spawn(config, script_env(tmp_path), tmp_path) as child:
            child.expect_exact("cot_proxy listening on")
            output = transcript(child)
            assert f"Starting cot_proxy (argo backend) on unix:{sock}: 1 worker" in output, output
            assert "on port" not in output


def test_complete_argo_config_starts_without_prompts(tmp_path: Path) -> None:
    with FakeArgo() as argo:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"backend: argo\nport: {port}\nuser: bob\nverbose: false\nargo_url: {argo.chat_url}\n"
                          f"argo_stream_url: {argo.stream_url}\nargo_embedding_url: {argo.embed_url}\n")
        with spawn(config, script_env(tmp_path), tmp_path) as child:
            child.expect_exact("cot_proxy listening on")
            output = transcript(child)
            assert not re.search(r"\[[yY]/[nN]\]|Enter |Press enter", output), output  # nothing was asked
            assert f"Starting cot_proxy (argo backend) on port {port}" in output
            assert wait_healthy(port)["status"] == "healthy"
            status, answer = post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                  {"model": "argo:gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
            assert status == 200, answer
            assert answer["choices"][0]["message"]["content"] == argo.reply
            assert argo.requests[-1].json["user"] == "bob"


def test_complete_openai_config_without_a_terminal(tmp_path: Path) -> None:
    """backend: openai + target_base_url: no ARGO username, the check targets only the base URL, and no
    standard input is needed once the config is complete."""
    with FakeOpenAI() as fake:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"backend: openai\ntarget_base_url: {fake.base_url}\nport: {port}\nverbose: false\n")
        proc = subprocess.Popen([str(SCRIPT), str(config)], env=script_env(tmp_path), cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            body = wait_healthy(port)
            assert body["status"] == "healthy" and body["target_url"] == fake.base_url
            assert [(r.method, r.path) for r in fake.received][:1] == [("GET", "/v1/models")]
        finally:
            proc.send_signal(signal.SIGINT)
            output = proc.communicate(timeout=15)[0].decode()
        assert f"Validating openai API connectivity: {fake.base_url}models ... ok" in output
        assert "username" not in output.lower()


def test_no_stdin_and_missing_config_names_the_default_backends_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    started = time.monotonic()
    result = subprocess.run([str(SCRIPT), str(config)], env=script_env(tmp_path), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert time.monotonic() - started < 10
    assert result.returncode == 2
    assert f"config file {config} not found" in result.stderr
    assert "run ./run_app.sh in a terminal" in result.stderr.lower()
    assert "cp " in result.stderr and "config.sample.yaml" in result.stderr
    assert "the default openai backend needs" in result.stderr and "target_base_url:" in result.stderr
    assert "user:" not in result.stderr
    assert not config.exists()


def test_no_stdin_and_missing_config_names_the_chosen_backends_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    result = subprocess.run([str(SCRIPT), str(config)], env=script_env(tmp_path, BACKEND="argo"), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "the argo backend (BACKEND) needs" in result.stderr and "user: your_anl_username" in result.stderr
    assert "or set ARGO_USER in the environment or in .env" in result.stderr
    assert "target_base_url" not in result.stderr


def test_no_stdin_and_empty_user_exits_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"backend: argo\nport: {free_port()}\nuser: \"\"\n")
    result = subprocess.run([str(SCRIPT), str(config)], env=script_env(tmp_path), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.startswith("cot_proxy: bad setting user: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_empty_user_in_a_terminal_is_asked_for(tmp_path: Path) -> None:
    """A config copied by hand from the sample (user "") asks only for the username, saves it and starts."""
    with FakeArgo() as argo:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"backend: argo\nport: {port}\nuser: \"\"\nverbose: false\n")
        with spawn(config, script_env(tmp_path, **argo_env(argo)), tmp_path) as child:
            child.expect_exact("Enter your username: ")
            child.sendline("Cels")
            child.expect_exact("Error: 'cels' is not allowed as a username")
            child.expect_exact("Enter your username: ")
            child.sendline("dave")
            child.expect_exact(f'Saved user: "dave" in {config}.')
            child.expect_exact("cot_proxy listening on")
            assert wait_healthy(port)["status"] == "healthy"
        assert '\nuser: "dave"\n' in config.read_text()
        assert argo.requests[0].json["user"] == "dave"


def test_bad_setting_stops_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("backend: argo\nport: 99999\nuser: bob\n")
    result = subprocess.run([str(SCRIPT), str(config)], env=script_env(tmp_path), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["cot_proxy: bad setting port: must be between 1 and 65535, got 99999"]


def test_an_sdk_url_pointing_at_the_proxy_is_named_not_asked_for(tmp_path: Path) -> None:
    """OPENAI_BASE_URL exported for the user's clients, pointing at the proxy: the one line says so (it said the
    config was missing and TARGET_BASE_URL unset)."""
    port = free_port()
    result = subprocess.run([str(SCRIPT), "--port", str(port)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            env=script_env(tmp_path, OPENAI_BASE_URL=f"http://localhost:{port}/v1"),
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cot_proxy: bad setting OPENAI_BASE_URL: http://localhost:{port}/v1/ is this proxy itself (port {port}): "
        "requests would loop; set the upstream server's URL (an SDK's OPENAI_BASE_URL pointing at the proxy "
        "belongs to the client's environment, not the proxy's)"]


def test_declining_to_create_the_config_aborts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    with spawn(config, script_env(tmp_path), tmp_path) as child:
        child.expect_exact("[Y/n] ")
        child.sendline("n")
        child.expect_exact("Aborting: config file required.")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1
    assert not config.exists()


def test_unreachable_argo_warns_and_asks(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/argoapi/api/v1/resource/"
    config = tmp_path / "config.yaml"
    config.write_text(f"backend: argo\nport: {free_port()}\nuser: bob\nargo_url: {closed}chat/\n"
                      f"argo_embedding_url: {closed}embed/\n")
    with spawn(config, script_env(tmp_path), tmp_path) as child:
        child.expect_exact(f"Warning: Could not connect to chat API: {closed}chat/")
        child.expect_exact(f"Warning: Could not connect to embedding API: {closed}embed/")
        child.expect_exact("Continue anyway? [y/N] ")
        child.sendline("")
        child.expect_exact("Aborting.")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1


def test_argo_proxy_config_without_backend_key_runs_argo(tmp_path: Path) -> None:
    """A config.yaml from argo-openai-proxy (no backend: key) still runs the ARGO backend."""
    with FakeArgo() as argo:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"port: {port}\nargo_url: {argo.chat_url}\nargo_stream_url: {argo.stream_url}\n"
                          f"argo_embedding_url: {argo.embed_url}\nuser: carol\nverbose: false\nnum_workers: 2\n"
                          "timeout: 600\n")
        with spawn(config, script_env(tmp_path), tmp_path) as child:
            child.expect_exact(f"Starting cot_proxy (argo backend) on port {port}")
            child.expect_exact("cot_proxy listening on")
            assert wait_healthy(port)["backend"] == "argo"


def test_no_python_found_says_so_without_pyenv_noise(tmp_path: Path) -> None:
    """pyenv's shims answer for every python3.X and print errors for absent versions: none reach the user."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\necho \"pyenv: {name}: command not found\" >&2\nexit 127\n")
        shim.chmod(0o755)
    env = script_env(tmp_path, PATH=f"{bin_dir}:/usr/bin:/bin", COT_PROXY_VENV=str(tmp_path / "no-venv"))
    result = subprocess.run([str(SCRIPT), str(tmp_path / "config.yaml")], env=env, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "Error: cot_proxy needs Python 3.11 or newer (python3.11, python3.12, ... on PATH)."]


def test_runs_from_a_venv_of_requirements_txt_alone(tmp_path: Path) -> None:
    """What run_app.sh installs on a fresh machine (requirements.txt) is enough to start it."""
    from tests.fresh_venv import requirements_venv
    with FakeOpenAI() as fake:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(f"backend: openai\ntarget_base_url: {fake.base_url}\nport: {port}\n")
        env = script_env(tmp_path, COT_PROXY_VENV=str(requirements_venv()), WORKERS="2")
        proc = subprocess.Popen([str(SCRIPT), str(config)], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert wait_healthy(port)["status"] == "healthy"
            status, answer = post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                  {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            assert status == 200, answer
        finally:
            proc.send_signal(signal.SIGINT)
            output = proc.communicate(timeout=20)[0].decode()
    assert "Traceback" not in output and "2 gevent workers" in output, output


def serve_without_stdin(args: list[str], env: dict[str, str], cwd: Path, port: int) -> tuple[dict, str]:
    """run_app.sh with no standard input: /health's answer once it serves, and its output after Ctrl+C."""
    proc = subprocess.Popen([str(SCRIPT), *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = wait_healthy(port)
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=15)[0].decode()
    return health, output


def test_dotenv_and_config_of_the_working_directory(tmp_path: Path) -> None:
    """As every other way of starting: `.env` and (without an argument) config.yaml are the working
    directory's, not the script's (seed 001: "Without arguments: uses config.yaml in current directory")."""
    work = tmp_path / "work"
    work.mkdir()
    with FakeOpenAI() as fake:
        port = free_port()
        (work / "config.yaml").write_text(f"backend: openai\nport: {port}\n")
        (work / ".env").write_text(f"TARGET_BASE_URL={fake.base_url}\n")
        health, output = serve_without_stdin([], script_env(tmp_path), work, port)
    assert health["target_url"] == fake.base_url, output
    assert f"config {work / 'config.yaml'}" in output


def test_no_config_file_but_the_environment_names_the_upstream(tmp_path: Path) -> None:
    """TARGET_BASE_URL in the environment (or .env) is a complete setup, as for `python cot_proxy.py`: it
    serves without questions and says where its settings came from."""
    with FakeOpenAI() as fake:
        port = free_port()
        health, output = serve_without_stdin([], script_env(tmp_path, TARGET_BASE_URL=fake.base_url,
                                                            PORT=str(port)), tmp_path, port)
    assert health["target_url"] == fake.base_url, output
    assert "no config file: settings from the environment (TARGET_BASE_URL)" in output
    assert not (tmp_path / "config.yaml").exists()


def test_connectivity_check_names_a_failing_proxy(tmp_path: Path) -> None:
    """Behind a corporate proxy that is down, the first-run check blames the proxy, as the proxy's own errors
    do, not "no connection" to the upstream."""
    dead_proxy = f"127.0.0.1:{free_port()}"
    config = tmp_path / "config.yaml"
    config.write_text(f"backend: openai\ntarget_base_url: http://upstream.example:8000/v1\nport: {free_port()}\n")
    env = script_env(tmp_path, HTTP_PROXY=f"http://{dead_proxy}", NO_PROXY="", COT_PROXY_SKIP_CHECKS="0")
    proc = subprocess.Popen([str(SCRIPT), str(config)], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:  # the checks come before serving; stop reading once they are done
            lines.append(line)
            if line.startswith("Starting cot_proxy"):
                break
    finally:
        proc.send_signal(signal.SIGINT)
        lines.append(proc.communicate(timeout=15)[0])
    output = "".join(lines)
    assert (f"Validating openai API connectivity: http://upstream.example:8000/v1/models ... failed: The proxy "
            f"{dead_proxy} (HTTP_PROXY) refused the connection") in output, output


def test_a_bad_value_is_named_even_without_a_config_file(tmp_path: Path) -> None:
    """The environment names the upstream, so no config file is needed; a bad value beside it is that
    value's one-line error, not "config file not found" nor the setup questions."""
    env = script_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1", PORT="0x")
    result = subprocess.run([str(SCRIPT)], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "bad setting PORT: expected an integer" in result.stderr, result.stderr
    assert "not found" not in result.stderr + result.stdout


def test_flags_are_the_same_as_every_other_entry_points(tmp_path: Path) -> None:
    """./run_app.sh [config] [flags] takes python cot_proxy.py's flags; a flag is never taken for a path."""
    bad = subprocess.run([str(SCRIPT), "--no-such-flag"], env=script_env(tmp_path), cwd=tmp_path,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "run_app.sh: error: unrecognized arguments: --no-such-flag" in bad.stderr
    with FakeOpenAI() as fake:
        port = free_port()
        env = script_env(tmp_path, TARGET_BASE_URL=fake.base_url, PORT="1")  # the flag wins over the environment
        health, output = serve_without_stdin(["--port", str(port), "--think-mode", "keep"], env, tmp_path, port)
    assert health["target_url"] == fake.base_url and f":{port}" in output, output


def test_a_bad_socket_path_is_named_before_any_question(tmp_path: Path) -> None:
    """`run_app.sh --socket /tmp/x.sock` with TARGET_BASE_URL set and no config: it said to set TARGET_BASE_URL
    (set already), and in a terminal asked the whole first run, wrote config.yaml, then named SOCKET."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: other users can enter it
    result = subprocess.run([str(SCRIPT), "--socket", str(shared / "x.sock")],
                            env=script_env(tmp_path, TARGET_BASE_URL="http://127.0.0.1:9/v1"), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "bad setting SOCKET" in result.stderr and "TARGET_BASE_URL" not in result.stderr, result.stderr
    assert not (tmp_path / "config.yaml").exists()
