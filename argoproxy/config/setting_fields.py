"""How one setting is declared (its YAML key, environment variables, flags, help) and the value parsers.

Neutral ground for the core Settings (argoproxy/config/settings.py) and each provider's settings fragment
(argoproxy/providers/<name>/settings.py): both declare fields with `setting(...)`.
"""

from __future__ import annotations

import os
import re
import select
import stat
import tempfile
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit


def setting(default: Any, parse: Callable[[Any], Any], help: str, env: Sequence[str] = (),
             flags: Sequence[str] = (), yaml_aliases: Sequence[str] = (), negative_flags: Sequence[str] = (),
             secret: bool = False, by_backend: Mapping[str, Any] | None = None,
             derived: Callable[[Any], Any] | None = None) -> Any:
    """One setting's field. `by_backend`: defaults that depend on the backend; `derived`: the default computed
    from the other settings (so --show and the start-up line print the value in force, not an empty one)."""
    meta = dict(parse=parse, help=help, env=tuple(env), flags=tuple(flags), yaml_aliases=tuple(yaml_aliases),
                negative_flags=tuple(negative_flags), secret=secret, by_backend=by_backend or {}, derived=derived)
    return field(default=default, metadata=meta)


PIPE_WAIT = 5.0  # seconds a named pipe a setting names may take to be written to


def file_text(path: Path, limit: int, kind: str) -> str:
    """The UTF-8 text of a file a setting names, read whole but at most `limit` bytes (a path such as /dev/zero
    has no end). OSError as reading raises it; ValueError for one too long or not UTF-8, worded to follow it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a named pipe with no writer would hold open() forever
    with open(fd, "rb") as f:
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and not select.select([fd], [], [], PIPE_WAIT)[0]:
            raise ValueError("is a named pipe that nothing was written to")
        os.set_blocking(fd, True)  # a pipe's writer may write in pieces: read to its end
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"is larger than {limit >> 20} MiB: not a {kind}")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None


# ---- value parsers: each takes a raw value (YAML type or string) and returns the typed value or raises ValueError.

def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("0", "false", "f", "no", "n", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value).strip()


def as_tag(value: Any) -> str:
    """A think tag: an empty one would match everywhere (every answer came back empty)."""
    tag = as_str(value)
    if not tag:
        raise ValueError("must not be empty")
    return tag


def number(kind: type, low: float | None = None, high: float | None = None) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = kind(str(value).strip()) if kind is int else kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):  # NaN passes every bound; inf means none
            raise ValueError(f"expected a finite number, got {value!r}")
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bounds}, got {value!r}")
        return number
    return parse


def choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = as_str(value).lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return text
    return parse


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def as_duration(value: Any) -> float:
    """Seconds, or a number with a unit (30d, 12h, 90m, 45s)."""
    text = str(value).strip().lower()
    unit = DURATION_UNITS.get(text[-1:], 0) if text else 0
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        raise ValueError(f"expected seconds or a duration such as 30d, 12h, 90m, got {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


def as_on_off(value: Any) -> str:
    """"on" or "off" (true/false, yes/no, 1/0 too: YAML reads a bare on/off as a boolean)."""
    try:
        return "on" if as_bool(value) else "off"
    except ValueError:
        raise ValueError(f"expected on or off, got {value!r}") from None


def as_csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        items = [as_str(v) for v in value]
    else:
        items = as_str(value).split(",")
    return tuple(item.strip() for item in items if item.strip())


# An endpoint URL given where a base is expected (openai-forward's --url) is reduced to its base.
_ENDPOINT_SUFFIXES = ("chat/completions", "completions", "embeddings", "responses")


def as_base_url(value: Any) -> str:
    """A base URL whose path ends in '/', with a full endpoint URL reduced to its base; its query is kept."""
    url = as_str(value)
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {shown_url(url)!r}")
    path = parts.path.rstrip("/")
    for suffix in _ENDPOINT_SUFFIXES:
        if path.endswith("/" + suffix):
            path = path[: -len(suffix) - 1]
            break
    query = f"?{parts.query}" if parts.query else ""  # the upstream's own (argoproxy/upstream/url.py)
    return f"{parts.scheme}://{parts.netloc}{path}/{query}"


def as_url(value: Any) -> str:
    url = as_str(value)
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ValueError(f"must be an http(s) URL, got {shown_url(url)!r}")
    return url


def shown_url(text: str) -> str:
    """A URL as a bad-setting line shows it: without its credentials, even where it is not quite a URL."""
    from argoproxy.redaction import mask_url
    return re.sub(r"[^\s/@]+@", "***@", mask_url(text))


def as_optional_dir(value: Any) -> str:
    """A directory the proxy writes into (made when missing), or "" for none. Only what it is, here: whether this
    user can write there is asked when serving starts (`dir_problem`), not by `keys` or `--show`, which an admin
    may run as another user."""
    text = as_str(value)
    if not text:
        return ""
    try:
        if Path(text).exists() and not Path(text).is_dir():
            raise ValueError(f"{text!r} is not a directory")
    except OSError as exc:  # a parent that cannot be searched
        raise ValueError(f"{text!r} cannot be reached: {exc.strerror or exc}") from None
    return text


def dir_problem(text: str, files: Sequence[str] = ()) -> str | None:
    """Why the server could not write its `files` into the directory `text` (made when missing), or None: a
    file made and removed there, or in the nearest existing parent (permission bits do not tell for root, nor
    for /proc). An existing directory that takes no new file still serves if all of `files` are there and can
    be appended to."""
    path = Path(text)
    try:
        if path.is_symlink() and not path.exists():
            return f"{text!r} is a link to nothing"
        existing = next(p for p in (path, *path.parents) if p.exists())  # the root always exists
    except OSError as exc:
        return f"{text!r} cannot be reached: {exc.strerror or exc}"
    try:
        with tempfile.TemporaryFile(dir=existing):
            return None
    except OSError as exc:
        failure = f"{text!r} cannot be {'written' if existing == path else 'created'}: {exc.strerror or exc}"
    try:
        if existing == path and files and all(os.access(path / f, os.W_OK) for f in files):
            return None
    except OSError:
        pass
    return failure


positive = number(float, 0.001)
