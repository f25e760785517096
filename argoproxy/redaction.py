"""Redaction: the one place that decides what must never leave the proxy, and removes it.

* The configured secrets (``Secrets``): every Settings field marked ``secret=True`` (upstream keys, client
  keys) plus the credentials written into any configured URL (``http://user:password@host/``), derived from
  the Settings metadata so a new secret setting is covered by declaring it. They are replaced in answers to
  clients (bodies, headers, streams: ``StreamScrubber`` is safe across chunk boundaries), in log lines
  (``LogFilter``) and in journals (``Redactor``).
* ``sanitize_message``: an upstream's error text, kept readable but without credentials, keys, stack traces,
  file paths or internal host names. It runs only on the error path, so it may use regular expressions freely.
* ``mask_url``: a URL fit for a log line or ``--show`` (credentials replaced).
* ``redact_headers``: headers fit for a log line (credential headers replaced).
* ``listing``: values a client chose, cut to a bounded length for a log line.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import logging
import os
import re
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import SplitResult, unquote, urlsplit

# The key the Gunicorn master generates when auth is on and no key is configured, handed to its workers.
GENERATED_KEY_ENV = "COT_PROXY_GENERATED_API_KEY"
KEY_PREFIX = "sk-proxy-"  # every key the proxy makes (its own, the per-user file's, team keys): found by it here

MAX_MESSAGE = 1000  # characters of upstream text a client gets
MAX_SCANNED = 4 * MAX_MESSAGE  # characters of it the patterns look at (the rest could never be shown)

# Host names that only make sense inside a network: single labels are handled separately.
_INTERNAL_SUFFIXES = (".local", ".localdomain", ".internal", ".intranet", ".lan", ".home", ".corp", ".private",
                      ".svc", ".cluster.local", ".svc.cluster.local", ".localhost", ".home.arpa", ".consul")

# The patterns start only where a run of their characters starts (a lookbehind, not \b): started at every
# position inside a long run, each would rescan the run, and crafted text of 60 KB took minutes.
_URL = re.compile(r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")
_SECRETS = [
    # scheme-less credentials: user:password@host
    (re.compile(r"(?<![\w.%+-])[\w.%+-]+:[^\s@/:]+@(?=[\w.-])"), "[credentials]@"),
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
# An address glued to a word (req_internal_10.1.1.1) is one too: \b found no edge between "_" and "1".
_IPV4 = re.compile(r"(?<!\d)(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?!\d)")
# A label may hold "_" (not a valid host name, but ids such as req_db7.corp.internal embed one): with the
# lookbehind above, a host after an underscore was never searched.
_HOSTNAME = re.compile(r"(?<![\w.-])(?:[\w-]{1,63}\.)+[a-zA-Z]{2,63}(?::\d{1,5})?\b")


def sanitize_message(text: str, secrets: Iterable[str] = (), hosts: Iterable[str] = ()) -> str:
    """The text without credentials, keys, stack traces, file paths or internal host names.

    `secrets` are exact strings to remove (the proxy's own keys); `hosts` are host names known to be internal
    (the configured upstream's, when it is on a private network).
    """
    if not text:
        return text
    text = str(text)
    for secret in secrets:  # over the whole text, so that the cut below cannot leave part of one
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = text[:MAX_SCANNED]
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


def header_value(value: str) -> str:
    """An upstream's header value as a client may see it: internal URLs, private IPv4 addresses and internal
    host names replaced as sanitize_message replaces them in an error's text (a public URL is kept whole: a
    Location's query may be what the client needs). The usual value, holding neither a dot nor a scheme,
    costs two searches."""
    if "." not in value and "://" not in value:
        return value
    value = _URL.sub(_internal_url_only, value)
    value = _IPV4.sub(_ip_replacement, value)
    return _HOSTNAME.sub(_hostname_replacement, value)


def _internal_url_only(match: re.Match[str]) -> str:
    url = match.group(0)
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return "[url]"
    return "[internal url]" if not host or internal_host(host) else url


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


def _url_replacement(match: re.Match[str]) -> str:
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


def _safe_port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def _ip_replacement(match: re.Match[str]) -> str:
    address = match.group(0).rsplit(":", 1)[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return match.group(0)  # a version number like 1.2.3.400
    return "[internal host]" if (ip.is_private or ip.is_loopback or ip.is_link_local) else match.group(0)


def _hostname_replacement(match: re.Match[str]) -> str:
    host = match.group(0).rsplit(":", 1)[0]
    return "[internal host]" if host.lower().endswith(_INTERNAL_SUFFIXES) else match.group(0)


# ====================================================================== the configured secrets

REDACTED = "[redacted]"
# A configured secret shorter than this is not searched for inside text: replacing every "abc" in every answer
# would destroy answers while protecting nothing real. Such values are still masked where their place is
# known (credential headers, the userinfo of a URL).
MIN_SECRET_LENGTH = 6
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "set-cookie",
                            "x-goog-api-key"})
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"'<>]*@")


def url_credentials(url: str) -> list[str]:
    """The secrets a URL carries: its password, its ``user:password`` and that pair in Basic-auth base64, and
    the value of every credential-named query parameter (``?api_key=``, ``?key=``, ``?token=``, ``?sig=``...)."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    found = query_credentials(parts.query) if parts.query else []
    if not password and not user:
        return found
    pair = f"{unquote(user or '')}:{unquote(password or '')}"
    found += [unquote(password)] if password else []
    if password and password != unquote(password):
        found.append(password)
    found += [pair, base64.b64encode(pair.encode()).decode()]
    if not password and user:
        found.append(unquote(user))  # a token written as the user name (https://TOKEN@host/)
    return found


# A query parameter named with one of these words carries a credential (api_key, key, subscription-key,
# access_token, apiKey, X-Amz-Signature, password...); `api-version`, `deployment`, `model` do not.
_CREDENTIAL_WORDS = frozenset({"key", "apikey", "token", "secret", "password", "passwd", "pwd", "sig", "signature",
                               "auth", "authorization", "credential", "credentials", "session", "sessionid"})
_QUERY_CREDENTIAL = re.compile(r"(?i)([?&;]([^=&;#\s\"'<>]*)=)([^&;#\s\"'<>]+)")


def query_credentials(query: str) -> list[str]:
    """The values of a query's credential-named parameters, as written and decoded."""
    found: list[str] = []
    for field in re.split(r"[&;]", query):
        name, _, value = field.partition("=")
        if value and credential_param(unquote(name)):
            found += {value, unquote(value.replace("+", " "))}
    return found


def configured_secrets(settings: Any) -> list[str]:
    """Every secret in a Settings object: fields declared ``secret=True`` and credentials in URL values."""
    found: list[str] = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for item in values:
            if not isinstance(item, str) or not item:
                continue
            if f.metadata.get("secret"):
                found.append(item)
            elif "://" in item and ("@" in item or "?" in item):
                found += url_credentials(item)
    found += routing_secrets(settings)
    if getattr(settings, "enable_auth", False):  # the key the master generated when API_KEY_SECRET is empty
        if os.environ.get(GENERATED_KEY_ENV):
            found.append(os.environ[GENERATED_KEY_ENV])
    return found


def routing_secrets(settings: Any) -> list[str]:
    """The secrets the routing settings point at: keys held by the named environment variables, and
    credentials written into a deployment's base_url (user:password@, or a key in its query)."""
    found = []
    for entry in getattr(settings, "models", ()):
        if entry.api_key_env and os.environ.get(entry.api_key_env):
            found.append(os.environ[entry.api_key_env])
        found += url_credentials(entry.base_url)
    found += [os.environ[k.key_env] for k in getattr(settings, "key_limits", ()) if os.environ.get(k.key_env)]
    return found


def mask_url(url: str) -> str:
    """The URL (or text holding URLs) with any ``user:password@`` and credential query values (``?api_key=``)
    replaced, for a log line or a settings listing."""
    if "@" in url:
        url = _URL_USERINFO.sub(r"\1***@", url)
    if "=" in url and "?" in url:
        url = _QUERY_CREDENTIAL.sub(_masked_param, url)
    return url


def _masked_param(match: re.Match[str]) -> str:
    return match.group(1) + "***" if credential_param(unquote(match.group(2))) else match.group(0)


def credential_param(name: str) -> bool:
    """Is a query parameter of this name a credential? (a word of it, or its end, names one)"""
    name = name.lower()
    if name.endswith(("key", "token")):
        return True
    return any(word in _CREDENTIAL_WORDS for word in re.split(r"[^a-z0-9]+", name))


class Secrets:
    """The exact strings that must never reach a client or a log, longest first (so a secret containing
    another is removed whole)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        unique = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
        self.texts: tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))
        self.blobs: tuple[bytes, ...] = tuple(t.encode() for t in self.texts)
        # A secret as it appears inside a JSON string: "/" may be escaped, non-ASCII as \\uXXXX.
        escaped = {json.dumps(t)[1:-1].encode() for t in self.texts} | \
                  {json.dumps(t, ensure_ascii=False)[1:-1].replace("/", "\\/").encode() for t in self.texts}
        self.blobs = tuple(sorted(set(self.blobs) | escaped, key=len, reverse=True))
        self.longest = len(self.blobs[0]) if self.blobs else 0
        # Bytes that can end an unfinished secret: a chunk ending in any other byte (an SSE event's blank
        # line, a JSON body's "}") holds nothing back, without searching.
        self.inner_bytes = frozenset(byte for blob in self.blobs for byte in blob[:-1])

    @classmethod
    def from_settings(cls, settings: Any) -> "Secrets":
        return cls(configured_secrets(settings))

    def __bool__(self) -> bool:
        return bool(self.texts)

    def text(self, text: str) -> str:
        for secret in self.texts:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def data(self, data: bytes) -> bytes:
        for secret in self.blobs:
            if secret in data:
                data = data.replace(secret, b"[redacted]")
        return data

    def headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Response headers for a client: a value holding a secret is cleaned, a credential header dropped."""
        out = []
        for name, value in headers:
            if name.lower() in SECRET_HEADERS and name.lower() != "set-cookie":
                continue  # an upstream has no business sending a credential header to the client
            out.append((name, self.text(value) if self.texts else value))
        return out

    def scrubber(self) -> "StreamScrubber | None":
        return StreamScrubber(self) if self.blobs else None


class StreamScrubber:
    """Replaces secrets in a byte stream whose chunks may split a secret anywhere.

    Only a tail that could still be the start of a secret is held back (at most the longest secret's length
    minus one byte, and usually nothing: an SSE event ends in a blank line, which starts no key), so a stream
    is not delayed; the held bytes go out with the next chunk or at the end."""

    __slots__ = ("secrets", "tail")

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.tail = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.secrets.data(self.tail + chunk if self.tail else chunk)
        keep = self._unfinished(data)
        if keep:
            self.tail = data[-keep:]
            return data[:-keep]
        self.tail = b""
        return data

    def finish(self) -> bytes:
        tail, self.tail = self.tail, b""
        return tail

    def scrub(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        try:
            for chunk in chunks:
                out = self.feed(chunk)
                if out:
                    yield out
            tail = self.finish()
            if tail:
                yield tail
        finally:  # a client that leaves closes this generator: close the one it reads (and its upstream) now
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _unfinished(self, data: bytes) -> int:
        """How many bytes at the end of data could begin a secret (0 when none can)."""
        size = len(data)
        if not size or data[-1] not in self.secrets.inner_bytes:
            return 0
        start = max(0, size - self.secrets.longest + 1)
        keep = 0
        for secret in self.secrets.blobs:
            first = secret[:1]
            i = data.find(first, max(start, size - len(secret) + 1))
            while i >= 0:
                if secret.startswith(data[i:]):
                    keep = max(keep, size - i)
                    break
                i = data.find(first, i + 1)
        return keep


# ====================================================================== logs and journals

# Anything that looks like a bearer token or API key is masked, whoever logged it and whether or not it is
# a configured secret.
# `[?&;]key=`: a Gemini client's key in a query string (Gunicorn's access log prints the request line). `sk-` not
# inside a word: Gunicorn's "an asterisk-form target" read "an aster[redacted]".
_LOG_PATTERN = re.compile(r"(?i)(bearer\s+|basic\s+|api[-_]?key[\"']?\s*[:=]\s*[\"']?|(?<![a-z0-9])sk-|[?&;]key=)"
                          r"[A-Za-z0-9._~+/=%\-]{4,}")


# A header line with no colon, which Gunicorn's Python parser quotes whole ("Invalid HTTP Header: 'x-api-key abc'"):
# a credential header's value in it is any text, not only a key-looking one, so all of it after the name goes.
_QUOTED_HEADER_LINE = re.compile(r"(?i)(Invalid HTTP Header: '[\w-]*(?:auth|key|token|secret|cookie|session|passw|"
                                 r"credential|signature)[\w-]*)(?:\s|\\t).*")


def redact_log_text(text: str, secrets: Secrets | None = None) -> str:
    """A log line without configured secrets, bearer tokens, key-looking strings or URL credentials."""
    if secrets:
        text = secrets.text(text)
    text = _QUOTED_HEADER_LINE.sub(r"\1 [redacted]'", mask_url(text))
    return _LOG_PATTERN.sub(lambda m: m.group(1) + REDACTED, text)


# A log line has a bounded size whatever a client sent (40,000 dropped tool types made one line of 3.7 MB): a longer
# message is cut. Its secrets are removed from a cut LOG_CUT_MARGIN longer first, so the final cut cannot leave
# the start of one, and the regular expressions never scan more than that.
MAX_LOG_CHARS = 8192
LOG_CUT_MARGIN = 1024


class LogFilter(logging.Filter):
    """Rewrites a log record's message (arguments included) so no secret reaches any handler, and cuts it at
    MAX_LOG_CHARS."""

    def __init__(self, secrets: Secrets | None = None) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_log_text(message[:MAX_LOG_CHARS + LOG_CUT_MARGIN], self.secrets)
        if not cleaned.isprintable():  # one C-level scan; true for nearly every line
            cleaned = escape_unprintable(cleaned)
        if len(cleaned) > MAX_LOG_CHARS:
            cleaned = f"{cleaned[:MAX_LOG_CHARS]} ... [cut: the message had {len(message):,} characters]"
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_log_text(logging.Formatter().formatException(record.exc_info), self.secrets)
        return True


def escape_unprintable(text: str) -> str:
    """Line breaks (\n, \r, U+2028...), other control characters (terminal escapes) and lone surrogates (a
    client's JSON "\ud800", which UTF-8 cannot write) as backslash escapes: a value a client chose, such as a
    model name, can then neither start a log line of its own nor reach a terminal as a command."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers safe to log: credential values replaced."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: (REDACTED if name.lower() in SECRET_HEADERS else value) for name, value in items}


# Journal field names whose values are credentials, compared case-insensitively with "-" == "_".
SECRET_KEYS = {"authorization", "proxy_authorization", "api_key", "x_api_key", "apikey", "x_goog_api_key", "cookie",
               "set_cookie"}
JOURNAL_REDACTED = "[REDACTED]"
_PROXY_KEY = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{16,}")
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_DATA_URL = re.compile(r"^(data:[^;,]{0,100};base64,)(.*)$", re.DOTALL)
DATA_URL_KEEP = 32  # base64 characters kept from a data URL (enough to recognise it)


def without_proxy_keys(text: str) -> str:
    """Text a client wrote where no key belongs (a path, a model name), its proxy-made keys redacted: shown on
    the status page or in metrics, which are not the client's to read back."""
    return _PROXY_KEY.sub(JOURNAL_REDACTED, text) if KEY_PREFIX in text else text


class Redactor:
    """Removes credentials and huge inline payloads from anything JSON-like (journal records)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Register one more value that must never appear in a log (e.g. a per-request client key)."""
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            self.secrets.add(secret)

    def value(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: (JOURNAL_REDACTED if _is_secret_key(k) and v is not None else self.value(v))
                    for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        if isinstance(obj, str):
            return self.text(obj)
        return obj

    def text(self, text: str) -> str:
        match = _DATA_URL.match(text)
        if match and len(match.group(2)) > DATA_URL_KEEP:
            payload = match.group(2)
            kept = self.cut_partial(self.text(payload[:DATA_URL_KEEP]))  # a key may start there
            return f"{self.text(match.group(1))}{kept}...[{len(payload)} base64 chars truncated]"
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, JOURNAL_REDACTED)
        if KEY_PREFIX in text:  # a key the proxy made, pasted into a prompt: a team key is never configured
            text = _PROXY_KEY.sub(JOURNAL_REDACTED, text)
        return mask_url(_BEARER.sub(lambda m: f"{m.group(1)} {JOURNAL_REDACTED}", text))


    def cut_partial(self, text: str) -> str:
        """Text that was cut at its end (a body's prefix) without a tail that could be the start of a secret:
        the redaction above only sees whole ones."""
        for secret in self.secrets:
            for k in range(min(len(secret) - 1, len(text)), 0, -1):
                if text.endswith(secret[:k]):
                    text = text[:-k]
                    break
        return _without_cut_key(text)


def _without_cut_key(text: str) -> str:
    """Text without a key the proxy made (or its prefix) cut short at its end."""
    tail = text[-(len(KEY_PREFIX) + 64):]
    at = tail.rfind(KEY_PREFIX)
    if at >= 0 and _KEY_CHARS.fullmatch(tail, at + len(KEY_PREFIX)):
        return text[:len(text) - len(tail) + at]
    for k in range(len(KEY_PREFIX) - 1, 2, -1):
        if text.endswith(KEY_PREFIX[:k]):
            return text[:-k]
    return text


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


def listing(values: Iterable[str], limit: int = 10, width: int = 64) -> str:
    """Values a client chose, for a log line of bounded length: the first `limit`, each cut at `width`
    characters, and how many more there were."""
    values = list(values)
    shown = ", ".join(v if len(v) <= width else v[:width] + "..." for v in values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit:,} more"
