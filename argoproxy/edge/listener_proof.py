"""The listener proof: how `cot-proxy run` tells the proxy its user started from whatever else listens on the port.

Before it sends a key or a prompt, the launcher writes a random nonce into a file only its user can read (mode
0600, in a directory of theirs no one else may enter) and asks the listener `GET /cot-proxy/proof` with that
file's path and a fresh challenge. A proxy running as the same user reads the file and answers an HMAC of the
challenge under the nonce, bound to the TCP connection it came on (the client's address and port as the
socket says them). Another user's program on the port cannot read the nonce; relaying the question to the real
proxy gets an answer bound to the relay's own connection, which the launcher rejects.

The route is open (the launcher has sent no key yet) and reads only a file of this exact name, owned by this
process's user, private, in a private directory of that user, and at most MAX_NONCE bytes: nothing else on the
machine can be made to answer, and the answer (an HMAC) shows nothing of the file.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import stat
from pathlib import Path
from typing import Mapping

PROOF_PATH = "cot-proxy/proof"  # the route, under the proxy's root
FILE_NAME = "cot-proxy-proof"  # the only file name the route reads
FILE_HEADER = "X-Cot-Proxy-Proof-File"
CHALLENGE_HEADER = "X-Cot-Proxy-Challenge"
MAX_NONCE = 256
MAX_CHALLENGE = 128


def digest(nonce: bytes, challenge: str, peer: tuple[str, str]) -> str:
    """The answer: HMAC-SHA256 under the nonce, of the challenge and the client's end of the connection."""
    address, port = peer
    message = f"{challenge}\n{_plain(address)}\n{port}".encode()
    return hmac.new(nonce, message, hashlib.sha256).hexdigest()


def _plain(address: str) -> str:
    """One spelling per address: an IPv4 client of a dual-stack listener is seen as ::ffff:127.0.0.1."""
    try:
        parsed = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped or parsed)


def answer(headers: Mapping[str, str], peer: tuple[str, str]) -> str | None:
    """The proof for this request, or None when it asks for a file this proxy will not read (or has no TCP peer)."""
    wanted = {name.lower(): value for name, value in headers.items()}
    path, challenge = wanted.get(FILE_HEADER.lower(), ""), wanted.get(CHALLENGE_HEADER.lower(), "")
    if not peer[0] or not peer[1] or not challenge or len(challenge) > MAX_CHALLENGE:
        return None
    nonce = read_nonce(path)
    return digest(nonce, challenge, peer) if nonce else None


def read_nonce(path: str) -> bytes | None:
    """The file's bytes when it is a launcher's nonce file of this user (see the module's docstring)."""
    if len(path) > 4096 or "\0" in path or not os.path.isabs(path) or Path(path).name != FILE_NAME:
        return None
    uid = os.getuid()
    try:
        parent = os.lstat(os.path.dirname(path))
        if not stat.S_ISDIR(parent.st_mode) or parent.st_uid != uid or parent.st_mode & 0o077:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077 or info.st_size > MAX_NONCE:
            return None
        return os.read(fd, MAX_NONCE) or None
    except OSError:
        return None
    finally:
        os.close(fd)
