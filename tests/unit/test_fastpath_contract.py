"""The fast path's contract (argoproxy.fastpath): every private symbol of another library it uses still
exists in the installed versions, those are the versions it was verified against, and each patch is active
with FAST_PATH=on and absent with FAST_PATH=off (checked in a fresh process per mode)."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import re
import subprocess
import sys

import pytest

from argoproxy import fastpath
from tests.proxy_process import ROOT


def _resolve(module: str, dotted: str) -> bool:
    """True when module.dotted exists: as an attribute, or (for per-instance attributes) assigned as
    `self.<name>` in the class or one of its bases."""
    obj = importlib.import_module(module)
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        if i != len(parts) - 1 or not inspect.isclass(obj):
            return False
        return any(_assigned_in(cls, part) for cls in obj.__mro__
                   if cls is not object and cls.__module__ != "builtins")
    return True


def _assigned_in(cls: type, name: str) -> bool:
    """Does the class's source assign self.<name>? A mangled name (`_HTTPConnection__state`) is written
    `self.__state` in its own class."""
    mangled = f"_{cls.__name__}__"
    spelled = "__" + name[len(mangled):] if name.startswith(mangled) else name
    return bool(re.search(rf"\bself\.{re.escape(spelled)}\s*(:[^=]+)?=[^=]", inspect.getsource(cls)))


# A server's environ key is no symbol: tests/unit/test_private_names.py finds it in the source that sets it.
@pytest.mark.parametrize("module,name", [(m, n) for m, n in fastpath.PRIVATE_SYMBOLS if not n.startswith("environ[")],
                         ids=lambda v: v)
def test_every_private_symbol_still_exists(module, name):
    assert _resolve(module, name), f"{module}.{name} is gone: the fast path needs re-verifying"


@pytest.mark.parametrize("package,version", fastpath.VERIFIED_WITH.items())
def test_the_installed_libraries_are_the_verified_ones(package, version):
    installed = importlib.metadata.version(package)
    assert installed == version, (f"{package} {installed} is installed; the fast path was verified against "
                                  f"{version}: re-check argoproxy/fastpath/ and update VERIFIED_WITH")


def test_requirements_pin_the_verified_versions():
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for package, version in fastpath.VERIFIED_WITH.items():
        if package in pins:
            assert pins[package] == version, package


PROBE = """
import json, sys, http.client
from gunicorn.http import wsgi
stock = {"parse_headers": http.client.parse_headers, "Response": wsgi.Response}
from argoproxy.serve import gunicorn_app, gunicorn_hooks
from argoproxy.serve.flask_app import create_app
from argoproxy.config.settings import load_settings
settings = load_settings({}, environ={"FAST_PATH": sys.argv[1], "WORKERS": "2", "TARGET_BASE_URL": "http://127.0.0.1:9/v1/"})
hooks = gunicorn_hooks.gunicorn_hooks(settings)
options = gunicorn_app.gunicorn_options(settings)
app = create_app(settings)
upstream = app.extensions["cot_proxy"].upstream
print(json.dumps({
    "fast_path": settings.fast_path,
    "parse_headers patched": http.client.parse_headers is not stock["parse_headers"],
    "gunicorn Response patched": wsgi.Response is not stock["Response"],
    "worker_class": options["worker_class"],
    "gc hook": "post_worker_init" in hooks,
    "direct pools": type(upstream.transport).__name__ == "FastTransport",
    "fastpath modules": sorted(m for m in sys.modules if m.startswith("argoproxy.fastpath")),
}))
"""


def probe(mode: str, tmp_path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_patch_is_active_with_fast_path_on(tmp_path):
    state = probe("on", tmp_path)
    assert state["fast_path"] == "on"
    assert state["parse_headers patched"] and state["gunicorn Response patched"]
    assert state["worker_class"] == fastpath.BALANCED_GEVENT_WORKER
    assert state["gc hook"] and state["direct pools"]


def test_no_patch_is_active_with_fast_path_off(tmp_path):
    state = probe("off", tmp_path)
    assert state["fast_path"] == "off"
    assert not state["parse_headers patched"] and not state["gunicorn Response patched"]
    assert state["worker_class"] == "gevent"
    assert not state["gc hook"] and not state["direct pools"]
    # nothing imported but what both modes need of Gunicorn (the client's socket, the chunk-size limit)
    assert state["fastpath modules"] == ["argoproxy.fastpath", "argoproxy.fastpath.server_reach"]


def test_the_setting_takes_on_or_off_from_every_source(tmp_path):
    from argoproxy.config.settings import SettingsError, load_settings

    assert load_settings({}, environ={}).fast_path == "on"
    assert load_settings({}, environ={"FAST_PATH": "off"}).fast_path == "off"
    assert load_settings({"fast_path": "off"}, environ={"FAST_PATH": "on"}).fast_path == "off"
    config = tmp_path / "config.yaml"
    config.write_text("fast_path: off\n")  # YAML reads a bare off as false
    assert load_settings({}, environ={"CONFIG_PATH": str(config)}).fast_path == "off"
    with pytest.raises(SettingsError, match="^FAST_PATH: expected on or off"):
        load_settings({}, environ={"FAST_PATH": "maybe"})


@pytest.mark.parametrize("interim", [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                                     b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n", b""])
def test_an_answer_is_read_past_interim_ones(interim):
    """connections.FinalResponse overrides http.client's private _read_status: begin() must still skip the
    headers of what it reports as a 100 and read the next status line (a 103 was taken for the answer)."""
    import socket

    from argoproxy.fastpath.connections import FinalResponse
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(interim + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok")
        resp = FinalResponse(ours, method="POST")
        resp.begin()
        assert (resp.status, resp.getheader("X-Final"), resp.read()) == (200, "yes", b"ok")
        theirs.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
        switched = FinalResponse(ours, method="GET")
        switched.begin()
        assert switched.status == 101  # a switch of protocols is an answer of its own


@pytest.mark.parametrize("interim", [b"HTTP/1.1 102 Processing\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"])
def test_too_many_interim_answers_are_an_upstream_gone_wrong(interim):
    """At most MAX_INTERIM interim answers, 100 Continue among them (http.client reads any number of those)."""
    import socket

    from argoproxy.fastpath.connections import FinalResponse
    from argoproxy.upstream.wire import MAX_INTERIM, TooManyInterim
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(interim * MAX_INTERIM + final)
        resp = FinalResponse(ours, method="POST")
        resp.begin()
        assert resp.status == 200
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(interim * (MAX_INTERIM + 1) + final)
        with pytest.raises(TooManyInterim):
            FinalResponse(ours, method="POST").begin()
