"""Scrubbing upstream error messages before a client sees them.

An upstream's error text is useful to the client (``"This model's maximum context length is 8192 tokens"``)
but it can carry things the client must never see: URLs with credentials or signed query strings, API
keys (whole or masked, ``sk-proj-****abcd``), bearer tokens, stack traces with file paths, and the names
and addresses of internal hosts. ``sanitize_message`` keeps the words and replaces those parts.

It runs only on the error path (an upstream 4xx/5xx), so it may use regular expressions freely.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable
from urllib.parse import urlsplit

MAX_MESSAGE = 1000  # characters of upstream text a client gets

# Host names that only make sense inside a network: single labels are handled separately.
_INTERNAL_SUFFIXES = (".local", ".localdomain", ".internal", ".intranet", ".lan", ".home", ".corp", ".private",
                      ".svc", ".cluster.local", ".svc.cluster.local", ".localhost", ".home.arpa", ".consul")

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")
_SECRETS = [
    # scheme-less credentials: user:password@host
    (re.compile(r"\b[\w.%+-]+:[^\s@/:]+@(?=[\w.-]+)"), "[credentials]@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [redacted]"),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_*.-]{3,}"), "[redacted key]"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "[redacted key]"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), "[redacted key]"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), "[redacted key]"),
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"), "[redacted key]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[redacted token]"),
    (re.compile(r"(?i)\b((?:x-)?api[-_]?key|access[-_]?token|auth[-_]?token|token|secret|password|passwd|pwd|"
                r"signature|sig|authorization)([\"']?\s*[:=]\s*[\"']?)(?!\[)[^\s\"',;&)}\]]{3,}"), r"\1\2[redacted]"),
]
# Stack traces: Python, Java/JS, Go.
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):.*", re.S)
_FRAME_LINES = re.compile(
    r"^[ \t]*(File \"[^\"]+\", line \d+.*|at [\w$.<>/:-]+\(.*\)|at .+:\d+:\d+\)?|goroutine \d+ \[.*|"
    r"[\w./-]+\.(?:go|py|java|js|ts|rs|rb):\d+.*)$",
    re.M)
_PATHS = re.compile(r"(?<![\w/])/(?:home|usr|opt|srv|var|app|root|etc|tmp|Users|workspace|mnt)/[^\s\"':,)]+")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b")
_HOSTNAME = re.compile(r"\b(?:[a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}(?::\d{1,5})?\b")


def sanitize_message(text: str, secrets: Iterable[str] = (), hosts: Iterable[str] = ()) -> str:
    """The text without credentials, keys, stack traces, file paths or internal host names.

    `secrets` are exact strings to remove (the proxy's own keys); `hosts` are host names known to be internal
    (the configured upstream's, when it is on a private network).
    """
    if not text:
        return text
    text = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _strip_traceback(text)
    text = _URL.sub(_url_replacement, text)
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    text = _PATHS.sub("[path]", text)
    text = _IPV4.sub(_ip_replacement, text)
    text = _HOSTNAME.sub(_hostname_replacement, text)
    for host in hosts:
        if host:
            text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?::\d{{1,5}})?(?![\w-])", "[internal host]", text)
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE].rstrip() + "..."
    return text


def internal_host(host: str) -> bool:
    """Is this host name or address one that only exists inside a network?"""
    host = host.strip("[]").rstrip(".").lower()
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith(_INTERNAL_SUFFIXES) or host == "localhost"
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified


def _strip_traceback(text: str) -> str:
    match = _TRACEBACK.search(text)
    if match:
        lines = [line.strip() for line in match.group(0).splitlines() if line.strip()]
        # The last line of a Python traceback is the exception itself ("ValueError: ...").
        last = lines[-1] if len(lines) > 1 and not lines[-1].startswith("File ") else ""
        text = text[: match.start()].rstrip() + (" " + last if last else "")
    if "\n" in text:
        text = _FRAME_LINES.sub("", text)
        text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text


def _url_replacement(match: re.Match) -> str:
    url = match.group(0)
    trail = ""
    while url and url[-1] in ".,;:!?)]}":
        trail = url[-1] + trail
        url = url[:-1]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "[url]" + trail
    if not host or internal_host(host):
        return "[internal url]" + trail
    # Public URL: keep where it points (docs links help users), drop credentials and the query.
    netloc = host + (f":{parts.port}" if _safe_port(parts) else "")
    return f"{parts.scheme}://{netloc}{parts.path}" + trail


def _safe_port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def _ip_replacement(match: re.Match) -> str:
    address = match.group(0).rsplit(":", 1)[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return match.group(0)  # a version number like 1.2.3.400
    return "[internal host]" if (ip.is_private or ip.is_loopback or ip.is_link_local) else match.group(0)


def _hostname_replacement(match: re.Match) -> str:
    host = match.group(0).rsplit(":", 1)[0]
    return "[internal host]" if host.lower().endswith(_INTERNAL_SUFFIXES) else match.group(0)
