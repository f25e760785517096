"""Inline HTTP(S) images in chat messages as base64 data URLs, safely, and shrink them to a payload budget.

Owns: finding `image_url` parts in `messages[*].content`, downloading them (SSRF-checked, size- and
time-bounded, at most N at a time), validating them (Content-Type and magic bytes), rewriting them as
`data:<mime>;base64,...`, optional Pillow re-encoding so the whole JSON request fits `max_payload_size`,
and `truncate_data_urls` for logs.

SSRF model. The host is resolved here with `socket.getaddrinfo`; if any address it resolves to is not a
public unicast address (loopback, private, link-local incl. 169.254.169.254, CGNAT, unspecified, multicast,
reserved, or such an address wrapped in IPv4-mapped / 6to4 / Teredo / NAT64 IPv6) the URL is refused unless
`allow_private`. The request then goes to the *checked IP* (the URL is rewritten to it and the `Host` header
carries the name), so a second DNS answer cannot swap in another address (DNS rebinding). For https the
`PinnedHostAdapter` passes the name to urllib3 as `server_hostname` (SNI) and `assert_hostname` (certificate
check), so TLS still verifies against the name. Redirects are followed by hand, each hop checked again.
Residual risks, documented: `getaddrinfo` itself is not bounded by `image_timeout` (under gevent it is
cooperative).

Proxies. When the environment puts the image's host behind a proxy (HTTP(S)_PROXY / ALL_PROXY, NO_PROXY
honoured, decided on the URL's name as requests decides), the download still goes to the *checked IP*: the
proxy is asked for `http://<ip>/path` (Host: the name) or a CONNECT tunnel to `<ip>:443` (TLS verified
against the name), so the proxy never resolves the name itself and cannot be steered to another address.
The name is resolved here, so a machine that reaches the internet only through a proxy needs DNS for
image hosts; a proxy that allows only names (not IP addresses) refuses such downloads, and the image is
then left as a URL.
"""

from __future__ import annotations

import base64
import contextlib
import concurrent.futures
import io
import ipaddress
import json
import logging
import mimetypes
import socket
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from PIL import Image, ImageOps
from requests.adapters import HTTPAdapter

from argoproxy.upstream.proxy_env import proxy_for
from argoproxy.redaction import mask_url

log = logging.getLogger(__name__)

MB = 1024 * 1024
SUPPORTED_MIME = ("image/png", "image/jpeg", "image/webp", "image/gif")
# Names servers use for the supported types; the data URL always carries the canonical one.
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_READ_SIZE = 64 * 1024
_SNIFF_BYTES = 12
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DATA_URL_LOG_CHARS = 100


@dataclass(frozen=True)
class ImageOptions:
    """How images are fetched and how hard they are squeezed; built by the caller from Settings."""

    enable_payload_control: bool = False
    max_payload_size: float = 20  # MB (1024*1024 bytes) for the whole serialised JSON request
    image_timeout: float = 30.0  # seconds per image, redirects and body included
    concurrent_downloads: int = 10
    allow_private: bool = False
    max_image_bytes: int = 20 * MB
    max_redirects: int = 3
    max_image_pixels: int = 50_000_000  # width x height; above it an image is a decompression bomb


class ImageFetchError(Exception):
    """One image could not be inlined; the message says why (it is logged, never sent to the client)."""


@dataclass(frozen=True)
class FetchedImage:
    """A downloaded, validated image: its sniffed MIME type (canonical) and bytes."""

    mime: str
    data: bytes

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


# --------------------------------------------------------------------------- public entry points


def inline_images(body: dict[str, Any], opts: ImageOptions, session: requests.Session) -> dict[str, Any]:
    """`body` with every http(s) image_url part replaced by a data URL (failures keep the URL).

    The input is not modified. Duplicated URLs are downloaded once. With payload control on, inlined
    images are re-encoded smaller until `json.dumps(body)` fits `opts.max_payload_size` MB.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    urls = _collect_image_urls(messages)
    if not urls:
        return body
    fetched = _download_all(urls, opts, session)
    if not fetched:
        return body
    replacements = {url: image.data_url() for url, image in fetched.items()}
    inlined = _replace_image_urls(body, replacements)
    if opts.enable_payload_control:
        uses = Counter(image_url["url"] for image_url in _image_url_parts(messages))
        replacements = _fit_payload(inlined, replacements, uses, fetched, opts)
        inlined = _replace_image_urls(body, replacements)
    return inlined


def truncate_data_urls(obj: Any) -> Any:
    """A copy of `obj` fit for logs: every `data:` string longer than ~100 chars is cut short."""
    if isinstance(obj, str):
        if obj.startswith("data:") and len(obj) > _DATA_URL_LOG_CHARS:
            rest = len(obj) - _DATA_URL_LOG_CHARS
            return f"{obj[:_DATA_URL_LOG_CHARS]}...[{rest} more chars]"
        return obj
    if isinstance(obj, dict):
        return {key: truncate_data_urls(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(truncate_data_urls(value) for value in obj)
    return obj


def image_session(pool_maxsize: int = 32) -> requests.Session:
    """A requests.Session suited to image downloads: pinned-host adapters (proxies: see the module docstring)."""
    session = requests.Session()
    session.trust_env = False
    adapter = PinnedHostAdapter(pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class PinnedHostAdapter(HTTPAdapter):
    """An HTTPAdapter for requests sent to an IP with the real name in `Host`: TLS uses the name.

    Without this, an https request to `https://93.184.216.34/` would send no SNI and check the
    certificate against the IP. With it, urllib3 gets `server_hostname` (SNI) and `assert_hostname`
    (certificate match) from the Host header, and the pool key keeps names apart.
    """

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: bool | str,
                                             cert: str | tuple[str, str] | None = None
                                             ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host = request.headers.get("Host")
        if host_params.get("scheme") == "https" and isinstance(host, str) and host:
            name = _host_without_port(host)
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name
        return host_params, pool_kwargs


# --------------------------------------------------------------------------- finding and replacing


def _image_url_parts(messages: list[Any]) -> Iterator[dict[str, Any]]:
    """The `image_url` dicts (holding "url") of every image part in every message's content list."""
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image_url = part.get("image_url")
                if isinstance(image_url, dict) and isinstance(image_url.get("url"), str):
                    yield image_url


def _collect_image_urls(messages: list[Any]) -> list[str]:
    """Unique http(s) image URLs in first-seen order; other non-data schemes are warned about."""
    urls: dict[str, None] = {}
    for image_url in _image_url_parts(messages):
        url = image_url["url"]
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme in ("http", "https"):
            urls[url] = None
        elif scheme != "data":
            log.warning("image not inlined, left as is: %s (unsupported URL scheme)", _short(url))
    return list(urls)


def _replace_image_urls(body: dict[str, Any], replacements: dict[str, str]) -> dict[str, Any]:
    """A copy of body whose image URLs found in `replacements` are swapped; untouched parts are shared."""
    new_messages = []
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            message = {**message, "content": [_replace_in_part(part, replacements) for part in content]}
        new_messages.append(message)
    return {**body, "messages": new_messages}


def _replace_in_part(part: Any, replacements: dict[str, str]) -> Any:
    if not (isinstance(part, dict) and part.get("type") == "image_url"):
        return part
    image_url = part.get("image_url")
    if not isinstance(image_url, dict) or image_url.get("url") not in replacements:
        return part
    return {**part, "image_url": {**image_url, "url": replacements[image_url["url"]]}}


# --------------------------------------------------------------------------- downloading


def _download_all(urls: list[str], opts: ImageOptions, session: requests.Session) -> dict[str, FetchedImage]:
    """Download `urls` with at most opts.concurrent_downloads in flight; failures are logged and skipped."""
    workers = max(1, min(opts.concurrent_downloads, len(urls)))
    fetched: dict[str, FetchedImage] = {}
    # Under gevent, threading is monkey-patched, so these "threads" are greenlets: cheap and cooperative.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image") as pool:
        futures = {pool.submit(fetch_image, url, opts, session): url for url in urls}
        for future in concurrent.futures.as_completed(futures):
            url = futures[future]
            try:
                fetched[url] = future.result()
            except ImageFetchError as exc:
                log.warning("image not inlined, left as URL: %s (%s)", _short(url), exc)
            except Exception as exc:  # a bug here must not fail the whole request
                log.warning("image not inlined, left as URL: %s (unexpected %s: %s)",
                            _short(url), type(exc).__name__, exc)
    return fetched


def fetch_image(url: str, opts: ImageOptions, session: requests.Session) -> FetchedImage:
    """Download one image under all the rules (SSRF, redirects, time, size, type); raise ImageFetchError."""
    deadline = time.monotonic() + opts.image_timeout
    current = url
    for _hop in range(opts.max_redirects + 1):
        response = _send_pinned(current, opts, session, deadline)
        try:
            if response.status_code in _REDIRECT_STATUSES:
                location = response.headers.get("Location")
                if not location:
                    raise ImageFetchError(f"HTTP {response.status_code} without Location")
                current = urljoin(current, location)
                continue
            if response.status_code != 200:
                raise ImageFetchError(f"HTTP {response.status_code}")
            return _read_image(response, current, opts, deadline)
        finally:
            response.close()
    raise ImageFetchError(f"more than {opts.max_redirects} redirects")


@dataclass(frozen=True)
class PinnedTarget:
    url: str  # the URL with the checked IP in place of the name
    host_header: str


def _send_pinned(url: str, opts: ImageOptions, session: requests.Session, deadline: float) -> requests.Response:
    target = pin_url(url, opts.allow_private)
    remaining = _remaining(deadline)
    headers = {
        "Host": target.host_header,
        "User-Agent": "cot_proxy-image-fetch",
        "Accept": "image/png,image/jpeg,image/webp,image/gif",
        # Compressed bodies would let a small download grow past max_image_bytes after decoding.
        "Accept-Encoding": "identity",
    }
    prepared = requests.Request("GET", target.url, headers=headers).prepare()
    # The adapter is called directly (not session.send) so image hosts' cookies never land in the
    # shared session's jar and no hooks apply; a proxy, when the environment names one, gets the pinned IP.
    adapter = _adapter_for(session, target.url)
    proxy = proxy_for(url).url
    try:
        return adapter.send(prepared, stream=True, timeout=(remaining, remaining), verify=session.verify,
                            cert=None, proxies={"http": proxy, "https": proxy} if proxy else {})
    except requests.RequestException as exc:
        raise ImageFetchError(f"{type(exc).__name__}: {_exception_reason(exc)}") from None


_fallback_adapter: PinnedHostAdapter | None = None
_fallback_lock = threading.Lock()


def _adapter_for(session: requests.Session, url: str) -> HTTPAdapter:
    """The session's adapter when it is a PinnedHostAdapter, else one shared per process.

    A plain HTTPAdapter would check an https certificate against the IP, so it is not used.
    """
    adapter = session.get_adapter(url)
    if isinstance(adapter, PinnedHostAdapter):
        return adapter
    global _fallback_adapter
    with _fallback_lock:
        if _fallback_adapter is None:
            _fallback_adapter = PinnedHostAdapter(pool_maxsize=32)
        return _fallback_adapter


def pin_url(url: str, allow_private: bool) -> PinnedTarget:
    """Resolve and check the URL's host; return the URL rewritten to the checked IP plus its Host header."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageFetchError(f"unsupported URL scheme {scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise ImageFetchError("credentials in image URLs are not supported")
    if not parts.hostname:
        raise ImageFetchError("URL has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        host = parts.hostname.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise ImageFetchError(f"bad URL: {exc}") from None
    ip = _resolve_checked(host, port, allow_private)
    ip_text = f"[{ip}]" if ip.version == 6 else str(ip)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_text = f"[{host}]" if ":" in host else host
    default_port = 443 if scheme == "https" else 80
    host_header = host_text if port == default_port else f"{host_text}:{port}"
    return PinnedTarget(url=f"{scheme}://{ip_text}:{port}{path}", host_header=host_header)


def _resolve_checked(host: str, port: int, allow_private: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address to connect to; every address the name has must be public unless allow_private."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ImageFetchError(f"cannot resolve {host}: {exc}") from None
    addresses = []
    for info in infos:
        # Drop an IPv6 scope id ("fe80::1%eth0"); such addresses are link-local and refused anyway.
        addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
    if not addresses:
        raise ImageFetchError(f"cannot resolve {host}")
    if not allow_private:
        # All must pass, not just the first: a name answering with a public and a private address is
        # a rebinding setup waiting for the client to fail over.
        for address in addresses:
            if not is_public_address(address):
                raise ImageFetchError(f"refused non-public address {address} for {host}")
    return addresses[0]


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for globally routable unicast addresses, looking inside IPv6 wrappers of IPv4."""
    for candidate in _embedded_addresses(address):
        if (
            candidate.is_loopback
            or candidate.is_private
            or candidate.is_link_local
            or candidate.is_unspecified
            or candidate.is_multicast
            or candidate.is_reserved
            or not candidate.is_global
        ):
            return False
    return True


def _embedded_addresses(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address plus any IPv4 address an IPv6 form carries (mapped, 6to4, Teredo, NAT64)."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _read_image(response: requests.Response, url: str, opts: ImageOptions, deadline: float) -> FetchedImage:
    """Validate the headers, then stream the body under the size and time caps and check magic bytes."""
    declared_mime = _declared_mime(response, url)
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > opts.max_image_bytes:
        raise ImageFetchError(f"Content-Length {length} exceeds max_image_bytes {opts.max_image_bytes}")
    data = bytearray()
    sniffed: str | None = None
    with _cut_at(response, deadline) as cut:
        while True:
            chunk = _read_chunk(response, deadline, opts.image_timeout)
            if not chunk:
                break
            data += chunk
            if len(data) > opts.max_image_bytes:
                raise ImageFetchError(f"body exceeds max_image_bytes {opts.max_image_bytes}")
            if sniffed is None and len(data) >= _SNIFF_BYTES:
                # Sniff as soon as possible: an HTML page served as image/png stops here, not at the cap.
                sniffed = _sniff_or_fail(bytes(data[:_SNIFF_BYTES]), declared_mime)
    if cut.is_set():
        raise ImageFetchError(f"download exceeded image_timeout {opts.image_timeout:g}s")
    if sniffed is None:
        sniffed = _sniff_or_fail(bytes(data), declared_mime)
    if sniffed != declared_mime:
        log.debug("image %s declared %s but is %s; using %s", _short(url), declared_mime, sniffed, sniffed)
    _check_pixels(data, opts.max_image_pixels)
    return FetchedImage(mime=sniffed, data=bytes(data))


def _check_pixels(data: bytes | bytearray, limit: int) -> None:
    """Refuse an image whose header declares more than `limit` pixels, before anything decodes it: a few
    kilobytes of PNG can unpack to gigabytes. Image.open reads the header only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check is ours, below
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:  # Pillow's own limit (twice its warning size)
        raise ImageFetchError(f"{exc} (a decompression bomb?)") from None
    except Exception:  # a header Pillow cannot read: nothing decodes it later either (payload control skips it)
        return
    if width * height > limit:
        raise ImageFetchError(f"{width}x{height} pixels exceeds max_image_pixels {limit} (a decompression bomb?)")


def _declared_mime(response: requests.Response, url: str) -> str:
    """The supported image type the server declares (or, without Content-Type, the URL's extension)."""
    header = response.headers.get("Content-Type", "")
    mime = header.split(";", 1)[0].strip().lower()
    if not mime:
        mime = (mimetypes.guess_type(urlsplit(url).path)[0] or "").lower()
    mime = _MIME_ALIASES.get(mime, mime)
    if mime not in SUPPORTED_MIME:
        raise ImageFetchError(f"unsupported Content-Type {header or '(none)'!r}")
    return mime


def _sniff_or_fail(head: bytes, declared_mime: str) -> str:
    sniffed = sniff_image_mime(head)
    if sniffed is None:
        raise ImageFetchError(f"content is not a PNG/JPEG/WebP/GIF image (declared {declared_mime})")
    return sniffed


def sniff_image_mime(head: bytes) -> str | None:
    """The image type from the first bytes (PNG, JPEG, WebP, GIF), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


@contextlib.contextmanager
def _cut_at(response: requests.Response, deadline: float) -> Iterator[threading.Event]:
    """The body's connection shut for reading at the deadline (urllib3's HTTPResponse.shutdown, made to end a read
    another thread waits in), so that `image_timeout` bounds the whole download: requests' read timeout applies to
    each read, and a server dripping a byte a second would never trip it. The event says it was cut."""
    cut = threading.Event()

    def shut() -> None:
        cut.set()
        try:
            response.raw.shutdown()
        except (ValueError, RuntimeError, OSError):  # released or closed already: nothing left to end
            pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), shut)
    timer.daemon = True
    timer.start()
    try:
        yield cut
    finally:
        timer.cancel()


def _read_chunk(response: requests.Response, deadline: float, total: float) -> bytes:
    """One read of whatever has arrived (read1), at most until the deadline (`_cut_at` ends a read still waiting)."""
    _remaining(deadline)
    try:
        piece: bytes = response.raw.read1(_READ_SIZE, decode_content=True)
        return piece
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if time.monotonic() >= deadline or isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)):
            raise ImageFetchError(f"download exceeded image_timeout {total:g}s") from None
        raise ImageFetchError(f"read failed: {type(exc).__name__}") from None


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ImageFetchError("download exceeded image_timeout")
    return remaining


# --------------------------------------------------------------------------- payload control


def _fit_payload(body: dict[str, Any], replacements: dict[str, str], uses: Counter[str], fetched: dict[str, FetchedImage],
                 opts: ImageOptions) -> dict[str, str]:
    """Re-encoded replacements so json.dumps(body) fits the budget (or the smallest reached, logged).

    `body` is the request with `replacements` already applied and `uses` counts each source URL's
    occurrences in it (a URL used twice costs twice); the size of every other variant is
    computed from it without serialising again: only the data URLs change, and base64 needs no escaping.
    json.dumps defaults (ensure_ascii=True) over-count non-ASCII text, which errs on the safe side.

    One image is decoded at a time (a decoded image is up to MAX_IMAGE_PIXELS x 4 bytes: four of 7000x7000
    held together peaked at 1.2 GB): each gets an equal share of the room the rest of the request leaves, the
    smallest first, so what a small image does not need goes to the larger ones after it.
    """
    limit = int(opts.max_payload_size * MB)
    size = len(json.dumps(body))
    if size <= limit:
        return replacements
    fixed = size - sum(len(replacements[url]) * uses[url] for url in replacements)
    current = dict(replacements)
    room, left = limit - fixed, sum(uses[url] for url in replacements)
    for url in sorted(replacements, key=lambda u: len(replacements[u]) * uses[u]):
        share = room // left if room > 0 else 0  # per use of this URL
        if len(current[url]) > share:
            smaller = _shrunk(fetched[url], url, share)
            if smaller is not None and len(smaller) < len(current[url]):
                current[url] = smaller
        room -= len(current[url]) * uses[url]
        left -= uses[url]
    total = fixed + sum(len(current[url]) * uses[url] for url in current)
    if total <= limit:
        log.info("payload control: request shrunk from %d to %d bytes (budget %d)", size, total, limit)
    else:
        log.warning("payload control: request still %d bytes after shrinking images (budget %d); "
                    "sending the smallest reached", total, limit)
    return current


def _shrunk(fetched: FetchedImage, url: str, target: int) -> str | None:
    """The image re-encoded down the ladder until its data URL is at most `target` long (else the smallest
    reached); None when it cannot be decoded. The decoded image is freed when this returns."""
    shrinker = _Shrinker.open(fetched, url)
    if shrinker is None:
        return None
    best: str | None = None
    for quality, scale in _LADDER:
        candidate = shrinker.encode(quality, scale)
        if candidate is not None and (best is None or len(candidate) < len(best)):
            best = candidate
        if best is not None and len(best) <= target:
            break
    return best


# Quality first at full size, then smaller dimensions (aspect ratio kept) at a moderate quality.
_LADDER: tuple[tuple[int, float], ...] = (
    (85, 1.0), (70, 1.0), (55, 1.0), (40, 1.0),
    (40, 0.75), (40, 0.55), (35, 0.4), (35, 0.3), (30, 0.2), (30, 0.14), (25, 0.1), (25, 0.07), (20, 0.05),
)
_MIN_SIDE = 16


class _Shrinker:
    """One decoded image that can be re-encoded at a quality and scale: WebP stays WebP, others become JPEG."""

    def __init__(self, image: Any, keep_webp: bool) -> None:
        self.image = image
        self.keep_webp = keep_webp

    @classmethod
    def open(cls, fetched: FetchedImage, url: str) -> _Shrinker | None:
        keep_webp = fetched.mime == "image/webp"
        try:
            image = Image.open(io.BytesIO(fetched.data))
            image.load()
            # Re-encoding drops EXIF, so apply its rotation now or the picture would turn sideways (in place:
            # a copy of a decoded image is another MAX_IMAGE_PIXELS x 4 bytes).
            ImageOps.exif_transpose(image, in_place=True)
            if not keep_webp:
                image = _as_jpeg_ready(image)  # once, not at every step of the ladder
        except Exception as exc:  # Pillow raises many kinds for bad or bomb-sized images
            log.warning("payload control: cannot decode image %s (%s); kept as is", _short(url), exc)
            return None
        return cls(image, keep_webp=keep_webp)

    def encode(self, quality: int, scale: float) -> str | None:
        """A data URL of the image at this quality and scale, or None when that scale is too small."""
        image = self.image
        if scale < 1.0:
            width, height = image.size
            new_size = (round(width * scale), round(height * scale))
            if min(new_size) < _MIN_SIDE:
                return None
            image = image.resize(new_size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        try:
            if self.keep_webp:
                image.save(out, format="WEBP", quality=quality, method=4)
                mime = "image/webp"
            else:
                image.save(out, format="JPEG", quality=quality, optimize=True)
                mime = "image/jpeg"
        except Exception as exc:  # an odd mode Pillow cannot write: keep what we have
            log.debug("payload control: re-encoding failed (%s)", exc)
            return None
        return f"data:{mime};base64,{base64.b64encode(out.getvalue()).decode('ascii')}"


def _as_jpeg_ready(image: Any) -> Any:
    """RGB (or L) for JPEG; transparency is flattened onto white, since JPEG has no alpha."""
    if image.mode in ("RGB", "L"):
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


# --------------------------------------------------------------------------- small helpers


def _short(url: str, limit: int = 200) -> str:
    """A URL fit for a log line: no credentials, never a whole data URL, never kilobytes of query string."""
    url = mask_url(url)
    return url if len(url) <= limit else f"{url[:limit]}...[{len(url) - limit} more chars]"


def _host_without_port(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _exception_reason(exc: Exception) -> str:
    """A short reason from a requests exception (their str() can be a long nested repr)."""
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
