"""Where the proxy listens and who can reach it: loopback by default, a Unix socket only its owner can use
(SOCKET), the per-user key file (API_KEY_FILE), and the warning for an open port with no key.

On a shared machine (a login node, a lab workstation) every other user can reach a TCP port on the machine's
addresses, and the proxy sends every prompt under its owner's upstream credentials. So non-container starts
bind 127.0.0.1; a Unix socket is private to its owner whatever else runs on the host.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, Mapping, Protocol

from argoproxy.config.setting_fields import as_str, file_text
# Declared with the secrets they name (redaction finds the proxy's keys by their prefix and the generated one
# in its variable); every module that makes or hands over a key imports them from here.
from argoproxy.redaction import GENERATED_KEY_ENV as GENERATED_KEY_ENV, KEY_PREFIX as KEY_PREFIX


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)

# A socket's directory that does not exist yet is created with this mode; an existing one must allow no more.
PRIVATE_DIR_MODE = 0o700
# Gunicorn creates the socket under this umask (its `umask` option): srw------- .
SOCKET_UMASK = 0o177
USER_KEY_FILE = "~/.config/argoproxy/api_key"


class ListenerSettings(Protocol):
    """The settings read here, typed (Settings has them all; config/settings.py, which imports this module,
    cannot be imported back): a misspelt one is an error where Settings is passed in."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def socket(self) -> str: ...
    @property
    def enable_auth(self) -> bool: ...
    @property
    def api_key_file(self) -> str: ...
    @property
    def api_key_secret(self) -> tuple[str, ...]: ...
    @property
    def openai_api_key(self) -> str: ...


# A host name as RFC 1123 writes one: dot-separated labels of letters, digits and inner hyphens (a final dot
# allowed), the last one not all digits (the resolver reads `0` as 0.0.0.0 and `1.2.3` as 1.2.0.3).
_HOST_NAME = re.compile(r"((?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*(?![0-9]+\.?$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.?")


def as_host(value: Any) -> str:
    """HOST: an IP address (an IPv6 one bare or in one pair of brackets, as a URL writes it) or a host name. An
    empty value or stray brackets would reach Gunicorn's bind, which reads `[]` and `` as every interface."""
    host = as_str(value)
    inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        if inner == host and len(host) <= 253 and _HOST_NAME.fullmatch(host):
            return host
        raise ValueError(f"expected an IP address or a host name (0.0.0.0: every interface), got {host!r}") from None
    if inner != host and address.version != 6:
        raise ValueError(f"brackets go only around an IPv6 address, got {host!r}")
    if address.version == 6 and (address.scope_id or address.is_link_local):
        # Gunicorn's bind cannot carry the interface a link-local address needs (`%eth0`): it fails on it later,
        # in lines that do not name HOST
        raise ValueError(f"a link-local IPv6 address cannot be listened on here, got {host!r}; use the machine's "
                         "global or unique-local address, or :: (every interface)")
    return host


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a host name: it may resolve to any interface
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 listens on IPv4's loopback
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def in_container(environ: Mapping[str, str]) -> bool:
    """The project's image (it sets COT_PROXY_CONTAINER) and Kubernetes pods: the port mapping or the Service
    is the boundary there. Not /.dockerenv: sandboxes and CI runners have one where a person's shell runs."""
    return bool(environ.get("COT_PROXY_CONTAINER")) or "KUBERNETES_SERVICE_HOST" in environ


def exposure_warnings(settings: ListenerSettings, environ: Mapping[str, str]) -> tuple[str, ...]:
    if in_container(environ):  # the image's own files and the orchestrator's secrets: no other users
        return ()
    warnings = []
    if not (settings.socket or settings.enable_auth or is_loopback(settings.host)):
        warnings.append(_open_port(f"HOST is {settings.host}", str(settings.port)))
    readable = key_file_readable_by_others(settings)
    if readable:
        warnings.append(readable)
    return tuple(warnings)


def _open_port(where: str, port: str) -> str:
    return (f"{where} and ENABLE_AUTH is off: anyone who can reach port {port} on this machine (other users of a "
            "shared host, often the whole network) sends requests under your upstream credentials; keep "
            "HOST=127.0.0.1, use SOCKET, or set ENABLE_AUTH with a key")


def bind_warnings(settings: ListenerSettings, binds: list[str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """The open-port warning for addresses Gunicorn's own options bind (`-b`, GUNICORN_CMD_ARGS, or its default
    0.0.0.0:$PORT when it has neither), which HOST's warning (exposure_warnings) does not see."""
    if settings.enable_auth or in_container(environ):
        return ()
    warnings = []
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        host, port = _host_port(bind)
        if is_loopback(host) or (host.strip("[]") == settings.host.strip("[]") and not settings.socket):
            continue  # HOST's own warning, if any, has said it
        warnings.append(_open_port(f"Gunicorn's bind is {bind}", port))
    return tuple(warnings)


def _host_port(bind: str) -> tuple[str, str]:
    """A Gunicorn bind as Gunicorn reads it: `[v6]:port`, `host:port`, `host` (port 8000), `:port` (every
    interface), with or without `tcp://`."""
    bind = bind.removeprefix("tcp://")
    if bind.startswith("["):
        host, _, rest = bind[1:].partition("]")
        return host, rest.lstrip(":") or "8000"
    if bind.count(":") == 1:
        host, _, port = bind.partition(":")
        return host or "0.0.0.0", port or "8000"
    return bind, "8000"  # a name or address without a port (a bare IPv6 address included)


def key_file_readable_by_others(settings: ListenerSettings) -> str | None:
    """API_KEY_FILE holds the keys that open the proxy: on a shared host other users must not read it."""
    if not settings.api_key_file or not settings.enable_auth:
        return None
    try:
        mode = stat.S_IMODE(Path(settings.api_key_file).expanduser().stat().st_mode)
    except OSError:
        return None  # key_file_problem names it
    if not mode & 0o044:
        return None
    return (f"API_KEY_FILE {settings.api_key_file} can be read by other users (mode {mode:o}): they can use the "
            f"proxy with its keys; chmod 600 {settings.api_key_file}")


def socket_problem(path: str) -> str | None:
    """SOCKET must sit in a directory only its owner can enter (created so when missing), below directories no
    other user can swap (ancestor_problem)."""
    if not path:
        return None
    if Path(path).expanduser().is_dir():  # read as "its directory is too open" when the parent was
        return f"SOCKET: {path} is a directory: give the socket's own path in it, e.g. {Path(path) / 'proxy.sock'}"
    directory = Path(path).expanduser().absolute().parent
    swappable = ancestor_problem(directory)
    if swappable:
        return swappable
    try:
        info = directory.stat()
    except FileNotFoundError:
        return None  # made private at start-up (private_socket_dir)
    except OSError as exc:
        return f"SOCKET: cannot use {directory}: {exc.strerror}"
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        return (f"SOCKET: {directory} can be entered by other users (mode {stat.S_IMODE(info.st_mode):o}): put the "
                "socket in a directory only you can enter, e.g. ~/.cot_proxy/proxy.sock (created mode 700 for you)")
    return None


def ancestor_problem(directory: Path) -> str | None:
    """Every directory from the socket's up to the root, as written and as resolved: a private directory inside
    one that every user may write (not sticky) can be renamed away and replaced by another user's, and a
    symbolic link as the socket's own directory lets whoever can change it decide where the socket is. A
    sticky directory such as /tmp (mode 1777) lets no one move what another user made in it; a link higher up
    (/var/run -> /run) is followed, and the directories it leads to are checked too."""
    if directory.is_symlink():
        return (f"SOCKET: {directory} is a symbolic link: whoever can change it decides where the socket is; "
                f"give the directory it points to ({os.path.realpath(directory)})")
    real = Path(os.path.realpath(directory))
    for place in dict.fromkeys((directory, *directory.parents, real, *real.parents)):
        try:
            info = place.lstat()
        except OSError:
            continue  # not there yet (made at start-up), or not ours to read: the socket's directory's own check
        if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
            return (f"SOCKET: {place} can be written by every user and is not sticky (mode "
                    f"{stat.S_IMODE(info.st_mode):o}): another user could move the socket's directory away and put "
                    f"their own in its place; chmod o-w (or +t) {place}, or put the socket elsewhere, e.g. "
                    "~/.cot_proxy/proxy.sock")
    return None


def private_socket_path(path: str) -> str:
    """The socket's absolute path, its directory created mode 0700 when missing."""
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    return str(target)


def key_file_problem(settings: ListenerSettings) -> str | None:
    if not settings.api_key_file or not settings.enable_auth:
        return None
    try:
        keys = read_key_file(settings.api_key_file)
    except OSError as exc:
        return f"API_KEY_FILE: cannot read {settings.api_key_file}: {exc.strerror}"
    except ValueError as exc:
        return f"API_KEY_FILE: {settings.api_key_file} {exc}"
    return None if keys else f"API_KEY_FILE: {settings.api_key_file} holds no key"


def own_key_problem(settings: ListenerSettings) -> str | None:
    """The upstream's key must not be one the proxy takes from its clients: a client's key exported as
    OPENAI_API_KEY (what SDKs read) in the shell that starts the proxy made the proxy send it to the provider,
    with no word said. The client's key is COT_PROXY_KEY everywhere the project prints one. (After
    key_file_problem: the file reads.)"""
    if not settings.openai_api_key or not settings.enable_auth:
        return None
    file_keys = read_key_file(settings.api_key_file) if settings.api_key_file else ()
    if settings.openai_api_key in (*settings.api_key_secret, *file_keys):
        return ("OPENAI_API_KEY: it holds one of the keys this proxy takes from its clients, and would go to the "
                "upstream as its key: clients keep theirs in COT_PROXY_KEY, in their own shell; set the upstream's "
                "own key here (or unset OPENAI_API_KEY)")
    return None


MAX_KEY_FILE_BYTES = 1024 * 1024  # a key file is read whole; API_KEY_FILE=/dev/zero must not be


def read_key_file(path: str) -> tuple[str, ...]:
    """Keys one a line; blank lines and # comments skipped. ValueError: too long, or not UTF-8."""
    text = file_text(Path(path).expanduser(), MAX_KEY_FILE_BYTES, "key file")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def create_user_key(path: str = USER_KEY_FILE) -> tuple[Path, bool]:
    """The per-user key file (mode 0600 in a 0700 directory): created with a new key when missing.
    Returns (path, created)."""
    target = Path(path).expanduser()
    if target.exists():
        return target, False
    target.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(generate_key() + "\n")
    return target, True
