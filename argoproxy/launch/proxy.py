"""The proxy `cot-proxy run` points an agent at: where it is, starting one, and proving that what listens there is
the user's own before any key or prompt is sent to it.

A proxy started here runs in the run's private scratch directory, not in the user's working directory: it reads
no `.env` or `config.yaml` of a directory the user has not trusted, and `python -m` imports nothing from there.
What it should read comes explicitly: `--config` with the file's absolute path, the environment run builds
(argoproxy/launch/environments.py), and the paths of its files made absolute.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from argoproxy.config.settings import Settings
from argoproxy.edge import listener_proof

START_TIMEOUT = 60.0  # seconds for a proxy started here to listen
STOP_TIMEOUT = 15.0
MODELS_TIMEOUT = 10.0
PROOF_TIMEOUT = 30.0  # a proxy just started may still be forking its workers


class Refused(Exception):
    """Stop with this one line (exit status 2)."""


def address(settings: Settings) -> tuple[str, int]:
    """Where a client on this machine reaches the proxy (every-interface binds through loopback)."""
    if settings.socket:
        raise Refused(f"the agents speak TCP, and SOCKET={settings.socket} makes the proxy listen on a Unix socket "
                      "only: unset SOCKET for this run (or give the agent a TCP front)")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(settings.host, settings.host)
    return host.strip("[]"), settings.port


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# ---- starting one ----------------------------------------------------------------------------------------------

def path_flags(settings: Settings) -> list[str]:
    """The settings naming files, as absolute paths: the proxy started here runs in another directory. Each only
    where the proxy reads it (a file it does not use would be warned about)."""
    used = {"--config": settings.config_path,
            "--api-key-file": settings.api_key_file if settings.enable_auth else "",
            "--keys-db": settings.keys_db if settings.enable_auth and not settings.redis_url else "",
            "--responses-db": settings.responses_db if settings.responses_store and not settings.redis_url else "",
            "--log-dir": settings.log_dir}
    return [word for flag, value in used.items() if value
            for word in (flag, str(Path(value).expanduser().absolute()))]


class StartedProxy:
    """The proxy run started: in a session of its own (the terminal's Ctrl+C is the agent's), output to a log."""

    def __init__(self, proxy_args: list[str], env: dict[str, str], scratch: Path, host: str, port: int,
                 log: Path) -> None:
        self.log = log
        package_root = str(Path(__file__).resolve().parents[2])  # the package is found where this one was loaded
        env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)}
        with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "argoproxy.cli", *proxy_args], env=env, cwd=scratch,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not listening(host, port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                self.stop()
                raise Refused("the proxy did not start:\n  " + "\n  ".join(tail or ["(no output)"]))
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Gunicorn's quick exit: the agent is gone, nothing to finish
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---- proving it is the user's ------------------------------------------------------------------------------------

def prove(host: str, port: int, private_dir: Path) -> None:
    """Refused unless the listener answers the listener proof (argoproxy/edge/listener_proof.py) for a nonce
    written in `private_dir` (the user's, mode 0700)."""
    nonce = secrets.token_bytes(32)
    path = private_dir / listener_proof.FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(nonce)
    try:
        if not _answers(host, port, path, nonce):
            raise Refused(f"what listens on {base_url(host, port)} did not prove it is your proxy, so it gets no key "
                          "and no prompt: stop it, or give this run another --port")
    finally:
        path.unlink(missing_ok=True)


def _answers(host: str, port: int, path: Path, nonce: bytes) -> bool:
    challenge = secrets.token_hex(32)
    connection = http.client.HTTPConnection(host, port, timeout=PROOF_TIMEOUT)
    try:
        connection.connect()
        mine = connection.sock.getsockname()  # the client's end, as the listener's socket sees it
        connection.request("GET", "/" + listener_proof.PROOF_PATH,
                           headers={listener_proof.FILE_HEADER: str(path), listener_proof.CHALLENGE_HEADER: challenge})
        answer = connection.getresponse()
        body = answer.read(4096)
        proof = json.loads(body).get("proof") if answer.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError, AttributeError):
        return False
    finally:
        connection.close()
    expected = listener_proof.digest(nonce, challenge, (str(mine[0]), str(mine[1])))
    return isinstance(proof, str) and secrets.compare_digest(proof, expected)


# ---- asking it ---------------------------------------------------------------------------------------------------

# The user's own proxy is asked directly, never through an HTTP proxy of their environment (http_proxy and the
# like, which urllib follows for loopback too unless no_proxy names it): that one would get the key in clear.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def served_models(url: str, key: str) -> list[dict[str, Any]]:
    """The proxy's model list entries (each with a string `id`), as it lists them: with the window it reads
    from the upstream where it knows one (pipeline/model_context.py's context_length reads it)."""
    request = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with DIRECT.open(request, timeout=MODELS_TIMEOUT) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise Refused(f"the proxy at {url} refused the key ({exc.code}): set COT_PROXY_KEY to a key it "
                          "accepts") from None
        return []
    except (OSError, ValueError):
        return []
    data = body.get("data") if isinstance(body, dict) else None
    return [m for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]


def accepts(url: str, key: str) -> bool:
    """Whether the proxy takes this key (its model list answers 200)."""
    request = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with DIRECT.open(request, timeout=MODELS_TIMEOUT) as answer:
            answer.read()
            return True
    except (OSError, ValueError):
        return False


def key_lines(settings: Settings) -> list[str]:
    """The client's key is COT_PROXY_KEY (the upstream's is OPENAI_API_KEY, in the proxy's own shell): set from
    the key file when clients send its key."""
    if settings.enable_auth and settings.api_key_file:
        return [f"  export COT_PROXY_KEY=$(cat {settings.api_key_file})"]
    if settings.enable_auth and not settings.api_key_secret:  # a key made for this run, or the store's: the
        # lines below send $COT_PROXY_KEY, which nothing has set (API_KEY_SECRET's is the user's own)
        return ["  export COT_PROXY_KEY=...   # a key the proxy takes: ./run_app.sh keys create NAME makes one"]
    return []


def auth_header(settings: Settings) -> str:
    return ' -H "Authorization: Bearer $COT_PROXY_KEY"' if settings.enable_auth else ""
