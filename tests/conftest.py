"""Shared fixtures: a fake OpenAI upstream and the real proxy under Gunicorn in front of it."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import ROOT, running_proxy

# A non-interactive shell starts background jobs (CI's two passes run side by side) with SIGINT ignored, and an
# ignored signal is inherited: the proxies these tests start would shrug off the Ctrl+C they test. Any handler
# here is reset to the default in every child at exec, as a terminal's processes have it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Hypothesis' per-example deadline (200 ms) is a timing assertion: under CI's two passes side by side an example
# can take longer on a loaded machine and fail a correct test.
# Its example database stays where it was, in the checkout's .hypothesis/ (the tests' working directory is not).
settings.register_profile("no_deadline", deadline=None,
                          database=DirectoryBasedExampleDatabase(str(ROOT / ".hypothesis" / "examples")))
settings.load_profile("no_deadline")


def pytest_configure(config: pytest.Config) -> None:
    """Tests run in an empty working directory of their own. The loaders read ./config.yaml and ./.env, and
    keep ./keys.db and ./responses.db, in the working directory: what a user's ./run_app.sh left in the checkout
    must not change what a test sees. Tests name the checkout's files by tests.proxy_process.ROOT, and start
    processes that load settings in a directory of their own."""
    if _distributes(config):
        return  # xdist's controller runs no test: its workers start in its directory and read the paths given there
    # pytest reads --ignore and --ignore-glob as paths from the working directory only when it collects, after this
    for name in ("ignore", "ignore_glob"):
        given = getattr(config.option, name, None)
        if given:
            setattr(config.option, name, [os.path.abspath(path) for path in given])
    empty = tempfile.mkdtemp(prefix="cot_proxy_tests_cwd_")
    config.stash[_WORKDIRS] = (os.getcwd(), empty)
    os.chdir(empty)
    # what a test starts (python -c, the entry points) imports this checkout's code from any directory
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _WORKDIRS in config.stash:
        started_in, empty = config.stash[_WORKDIRS]
        os.chdir(started_in)
        shutil.rmtree(empty, ignore_errors=True)  # only the directory made above


def _distributes(config: pytest.Config) -> bool:
    """Is this xdist's controller, handing the tests to workers (xdist's own test for it)?"""
    return (config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))
            and not config.getoption("collectonly"))


_WORKDIRS = pytest.StashKey[tuple[str, str]]()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (./run_tests.sh's default): three workers per core this process may run on (xdist counts physical
    cores, one on many VMs). Most tests wait on sockets and subprocesses, not on the cores, and tests/agents
    holds one worker for its whole folder (below): with two workers per core the cores of a 2-core machine were
    idle a seventh of the time, with three a twentieth (the suite 18% sooner). PYTEST_XDIST_AUTO_NUM_WORKERS sets
    another number."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return 3 * len(os.sched_getaffinity(0))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadfile (pytest.ini): a module's tests run on one worker, so its module-scoped proxy starts once;
    tests/real and tests/agents each run on one worker too, as their servers are session fixtures (a llama.cpp
    server or LiteLLM's proxy takes seconds to tens of seconds to start)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SessionServersTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            parts = path.split("/")
            return "/".join(parts[:2]) if parts[:2] in (["tests", "real"], ["tests", "agents"]) else path

    return SessionServersTogether(config, log)


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def module_fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(module_fake):
    """The proxy with default settings in front of module_fake."""
    with running_proxy(TARGET_BASE_URL=module_fake.base_url) as p:
        yield p


@pytest.fixture
def upstream(module_fake):
    """module_fake with its queue and log reset for this test."""
    module_fake.reset()
    return module_fake


@pytest.fixture(scope="module")
def redis_url():
    """A real redis-server (Debian's) for the module: tests of what replicas share (tests/redis_server.py)."""
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.close()
