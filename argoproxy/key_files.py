"""A secret key kept in a file of its own, made at first use (mode 0600, never through a link) and read by every
worker and restart alike: the Responses door's seal key (state/seal_key.py) and the key people's MCP server tokens
are encrypted with (mcp/credential_vault.py)."""

from __future__ import annotations

import os
from pathlib import Path


def file_key(path: Path, size: int) -> bytes:
    """The key in `path`, `size` random bytes made first if there is none (workers racing: one file wins, all read
    it); a shorter file is refused (ValueError)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = path.with_name(f".{path.name}.{os.getpid()}")
        made.unlink(missing_ok=True)  # a crashed worker's, or a link another user left there: never followed
        fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, os.urandom(size))
        finally:
            os.close(fd)
        try:
            os.link(made, path)  # never replaces a key another worker made meanwhile
        except FileExistsError:
            pass
        finally:
            made.unlink()
    key = path.read_bytes()
    if len(key) < size:
        raise ValueError(f"{path} is not a key")
    return key
