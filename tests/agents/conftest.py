"""The proxy (Gunicorn on loopback) in front of each backend the agents are run over, and the agents' workdirs."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.agents.scripted import ReplayToReal, ScriptedUpstream, argo_reply
from tests.fakes.argo_rules import native_refusal
from tests.fakes.fake_argo import CHAT_PATH, STREAM_PATH, FakeArgo
from tests.integration.test_argo import argo_env
from tests.proxy_process import ProxyProcess, running_proxy
from tests.real.servers import llama_cpp_server


@dataclass
class Backend:
    """A running proxy and a way to read the chat requests its upstream received (in the upstream's shape)."""
    name: str
    proxy: ProxyProcess
    bodies: Callable[[], list[dict]]
    reset: Callable[[], None]


@pytest.fixture(scope="session")
def openai_backend() -> Iterator[Backend]:
    with ScriptedUpstream() as up, running_proxy(BACKEND="openai", TARGET_BASE_URL=up.base_url) as proxy:
        yield Backend("openai", proxy, up.bodies, up.reset)


@pytest.fixture(scope="session")
def argo_standard_backend() -> Iterator[Backend]:
    with FakeArgo() as argo, running_proxy(**argo_env(argo)) as proxy:
        argo.reply = argo_reply
        bodies = lambda: [r.json for r in argo.requests if r.path in (CHAT_PATH, STREAM_PATH)]  # noqa: E731
        yield Backend("argo", proxy, bodies, argo.reset)


@pytest.fixture(scope="session")
def argo_native_backend() -> Iterator[Backend]:
    with ScriptedUpstream(refuse=native_refusal) as up, FakeArgo() as argo:  # refuses what ARGO's native APIs refuse
        up.accepts_null_content = True  # ARGO's OpenAI-compatible API takes null beside tool calls, as OpenAI does
        with running_proxy(**argo_env(argo, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=up.base_url)) as proxy:
            yield Backend("argo-native", proxy, up.bodies, up.reset)


BACKENDS = ("openai", "argo", "argo-native")
_FIXTURES = {"openai": "openai_backend", "argo": "argo_standard_backend", "argo-native": "argo_native_backend"}


@pytest.fixture
def backend(request) -> Backend:
    """The backend named by the test's `backend_name` parameter, its upstream's record cleared."""
    chosen = request.getfixturevalue(_FIXTURES[request.getfixturevalue("backend_name")])
    chosen.reset()
    return chosen


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    """(workdir, token): a git repository holding note.txt, whose only content is a fresh random token."""
    workdir = tmp_path / "project"
    workdir.mkdir()
    token = "TOKEN-" + secrets.token_hex(16)
    (workdir / "note.txt").write_text(token + "\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "note.txt"], ["commit", "-q", "-m", "note"]):
        subprocess.run(git + args, cwd=workdir, check=True, capture_output=True, timeout=30)
    return workdir, token


REAL_TIMEOUT = 600  # seconds for one request to the real server: an agent's prompt is thousands of tokens
LLAMA_MAX_TOKENS = 64  # what each answer may take: a user of so small a model sets a limit (Codex names none)


@pytest.fixture(scope="session")
def llama_agents() -> Iterator[tuple[ReplayToReal, ProxyProcess]]:
    """llama.cpp's own server (SmolLM2-135M, the tests/real recipe with the model's whole 8,192-token context)
    behind the replay shim, behind the proxy (openai backend)."""
    # An answer ends at its first line or full stop: cut at max_tokens instead, it would reach an agent as a reply
    # that hit its limit (Claude Code gives up on such a turn, exit 1), and the 135M model rarely stops by itself
    # (it can repeat "127.0.0.1 -" until the limit).
    with llama_cpp_server(n_ctx=8192) as real, ReplayToReal(real.base_url, REAL_TIMEOUT, stop=("\n", ".")) as shim:
        shim.server_log = real.log  # a failing run's report ends with what the server said
        # max_tokens for every model name an agent asks for (its main and its small model): the server otherwise
        # generates until its context is full when a request names no limit, minutes on 2 cores.
        with running_proxy(BACKEND="openai", TARGET_BASE_URL=shim.base_url, TIMEOUT=str(REAL_TIMEOUT),
                           LLM_PARAMS=f"model=*,max_tokens={LLAMA_MAX_TOKENS}") as proxy:
            yield shim, proxy
