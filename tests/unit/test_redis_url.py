"""REDIS_URL is read without importing redis-py (config/redis_url.py): refused exactly where redis-py refuses,
on the URLs users write and their near misses; and reading the setting leaves redis-py, and ssl, unimported."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from argoproxy.config.redis_url import check_redis_url

URLS = [
    "redis://127.0.0.1:6379/0", "redis://localhost", "redis://:secret@redis:6379/2", "redis://user:p%40ss@h:1/0",
    "rediss://cache.example.com:6380/0?ssl_cert_reqs=none", "unix:///run/redis.sock?db=3", "unix:///tmp/r.sock",
    "redis://h:6379/0?socket_timeout=2.5&socket_connect_timeout=1&max_connections=50&health_check_interval=30",
    "redis://h/0?retry_on_timeout=yes&socket_keepalive=false", "redis://h/notadb", "redis://h:0/0",
    "redis://h:65535", "redis://[::1]:6379/0",
    # refused
    "redis://h:6379x/0", "redis://h:70000/0", "redis://h:-1/0", "redis://h/0?db=x", "redis://h/0?socket_timeout=soon",
    "redis://h/0?max_connections=1.5", "redis://h/0?protocol=three", "redis://h/0?timeout=", "http://h:6379/0",
    "redis//h:6379", "redis:/h", "REDIS://h:6379/0",
    "rediss://h/0?ssl_include_verify_flags=VERIFY_X509_STRICT,VERIFY_X509_PARTIAL_CHAIN",
    "rediss://h/0?ssl_exclude_verify_flags=[VERIFY_CRL_CHECK_CHAIN]", "rediss://h/0?ssl_include_verify_flags=BOGUS",
    "rediss://h/0?ssl_exclude_verify_flags=VERIFY_X509_STRICT,NOPE",
]
# redis-py takes these and would connect to its defaults (localhost:6379, or no socket at all): the proxy refuses
# a URL that names neither a host nor a socket path.
STRICTER = ["rediss://", "unix://", "redis://"]


def redis_py_refuses(url: str) -> bool:
    try:
        redis.ConnectionPool.from_url(url)
    except (ValueError, TypeError):
        return True
    return False


def ours_refuses(url: str) -> bool:
    try:
        check_redis_url(url)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("url", URLS)
def test_refused_where_redis_py_refuses(url):
    assert ours_refuses(url) == redis_py_refuses(url), url


@pytest.mark.parametrize("url", STRICTER)
def test_a_url_naming_no_server_is_refused(url):
    assert ours_refuses(url) and not redis_py_refuses(url)


def test_a_refusal_names_no_credential():
    with pytest.raises(ValueError) as caught:
        check_redis_url("redis://user:hunter2secret@h:bad/0")
    assert "hunter2" not in str(caught.value)


def test_reading_the_setting_imports_neither_redis_nor_ssl():
    """Gunicorn's master reads it before the gevent workers patch ssl."""
    code = ("import sys; from argoproxy.config.settings import load_settings; "
            "s = load_settings(environ={'REDIS_URL': 'rediss://h:6380/0', 'ENABLE_AUTH': 'true', "
            "'API_KEY_SECRET': 'k' * 20}); "
            "print(s.redis_url, 'redis' in sys.modules, 'ssl' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["rediss://h:6380/0", "False", "False"], done.stderr[-2000:]
