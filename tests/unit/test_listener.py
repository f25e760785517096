"""config/listener.bind_warnings: Gunicorn's own binds read as Gunicorn reads them."""

from __future__ import annotations

import pytest

from argoproxy.config.listener import bind_warnings
from argoproxy.config.settings import load_settings

SETTINGS = load_settings(environ={})  # HOST 127.0.0.1, auth off


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.1:8000", "tcp://127.0.0.1:9", "[::1]:8000", "localhost",
                                  "unix:/tmp/x.sock", "fd://3"])
def test_loopback_and_sockets_are_quiet(bind):
    assert bind_warnings(SETTINGS, [bind], {}) == ()


@pytest.mark.parametrize("bind, port", [("0.0.0.0:9000", "9000"), (":9001", "9001"), ("tcp://0.0.0.0:9002", "9002"),
                                        ("[::]:9003", "9003"), ("192.0.2.7", "8000"), ("myhost:9004", "9004")])
def test_every_interface_or_a_named_host_warns_naming_its_port(bind, port):
    (warning,) = bind_warnings(SETTINGS, [bind], {})
    assert f"port {port} " in warning and "ENABLE_AUTH is off" in warning


def test_quiet_with_auth_on_and_in_a_container():
    authed = load_settings(environ={"ENABLE_AUTH": "true", "API_KEY_SECRET": "k" * 20})
    assert bind_warnings(authed, ["0.0.0.0:9000"], {}) == ()
    assert bind_warnings(SETTINGS, ["0.0.0.0:9000"], {"COT_PROXY_CONTAINER": "1"}) == ()
