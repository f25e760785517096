"""REDIS_URL read as redis-py reads it (its `from_url`), without importing redis-py.

The setting is read in Gunicorn's master too, and redis-py imports `ssl`: imported there, every gevent worker
warned at start-up that ssl was patched after its import (MonkeyPatchWarning), and a `rediss://` connection made
in a worker could hold the unpatched module's objects. tests/unit/test_redis_url.py holds this reading to
redis-py's own on the URLs a user writes.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

# Query options redis-py converts (connection.URL_QUERY_ARGUMENT_PARSERS), with the numbers it refuses; its
# boolean and list options take any text, and options it does not know go to the connection as text.
_NUMBERS = {"db": int, "socket_timeout": float, "socket_connect_timeout": float, "socket_read_size": int,
            "max_connections": int, "health_check_interval": int, "ssl_min_version": int, "timeout": float,
            "protocol": int}
# ssl.VerifyFlags' names, which its TLS options take as a list (ssl is not imported here: see above).
_VERIFY_FLAGS = frozenset({"VERIFY_DEFAULT", "VERIFY_CRL_CHECK_LEAF", "VERIFY_CRL_CHECK_CHAIN", "VERIFY_X509_STRICT",
                           "VERIFY_ALLOW_PROXY_CERTS", "VERIFY_X509_TRUSTED_FIRST", "VERIFY_X509_PARTIAL_CHAIN"})
_FLAG_LISTS = ("ssl_include_verify_flags", "ssl_exclude_verify_flags")
SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str) -> None:
    """Raise ValueError (its words name no credential) where redis-py would refuse the URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not url.startswith(parts.scheme + "://") or not (parts.netloc or parts.path):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    for name, values in parse_qs(parts.query).items():
        if name in _FLAG_LISTS and values and values[0]:
            unknown = [f.strip() for f in values[0].replace("[", "").replace("]", "").split(",")
                       if f.strip() not in _VERIFY_FLAGS]
            if unknown:
                raise ValueError(f"its option {name} names no TLS verify flag: {unknown[0]!r}")
        number = _NUMBERS.get(name)
        if number is not None and values and values[0]:
            try:
                number(values[0])
            except ValueError:
                raise ValueError(f"its option {name} must be a number, got {values[0]!r}") from None
    if parts.scheme != "unix":
        try:
            parts.port  # noqa: B018 - urllib's own check: digits within 0-65535
        except ValueError as exc:
            raise ValueError(f"its port is not a port number ({exc})") from None
