"""A real HTTP image server on loopback for the image-inlining tests.

Serves Pillow-made PNG/JPEG/WebP/GIF images, an HTML page, HTML disguised as image/png, redirect chains,
a redirect to any URL, an endless body, a body that lies about its size, a body that drips slowly, and
big noisy PNGs. It records each request (path, Host header) and the most requests it had in flight at once.
"""

from __future__ import annotations

import io
import os
import random
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw

from tests.fakes.quiet_server import QuietServer

IMAGE_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
    "gif": ("GIF", "image/gif"),
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_image(ext: str, width: int = 64, height: int = 48, color: str = "red", *,
               noise: bool = False, transparent: bool = False) -> bytes:
    """A picture (a coloured field with a white box) in the format named by `ext`.

    `noise` makes it random pixels (hard to compress, so re-encoding matters); `transparent` makes the
    top-left eighth fully transparent black (PNG/WebP), to see alpha flattened onto white.
    """
    fmt, _mime = IMAGE_FORMATS[ext]
    mode = "RGBA" if ext in ("png", "webp") else "RGB"
    if noise:
        # Seeded, so the same URL always serves the same bytes (tests derive budgets from a first fetch).
        pixels = random.Random(width * 100_003 + height).randbytes(width * height * 3)
        image = Image.frombytes("RGB", (width, height), pixels).convert(mode)
    else:
        image = Image.new(mode, (width, height), color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 4, height // 4, width // 2, height // 2), fill="white")
    if transparent and mode == "RGBA":
        draw.rectangle((0, 0, width // 8, height // 8), fill=(0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


_BOMBS: dict[tuple[int, int], bytes] = {}


def make_png_bomb(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG of this size, built row by row without holding its pixels: a 12000x12000 one
    is about 420 KB on the wire and 432 MB once decoded (a decompression bomb)."""
    if (width, height) not in _BOMBS:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        packer = zlib.compressobj(1)
        row = b"\0" * (1 + width * 3)  # filter byte + RGB pixels
        idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
        _BOMBS[width, height] = (PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                                 + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return _BOMBS[width, height]


def make_noisy_png(width: int, height: int) -> bytes:
    """An incompressible PNG (random RGB pixels): about 3 bytes a pixel, so 1600x1000 is ~4.8 MB."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


class FakeImageServer:
    """QuietServer on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.peaked = threading.Condition(self.lock)  # notified whenever max_active grows
        self.requests: list[dict[str, str]] = []
        self._noisy: dict[tuple[int, int], bytes] = {}
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return self.base_url + path

    def reset(self) -> None:
        with self.lock:
            self.active = 0
            self.max_active = 0
            self.requests.clear()

    def noisy_png(self, width: int, height: int) -> bytes:
        with self.lock:
            if (width, height) not in self._noisy:
                self._noisy[(width, height)] = make_noisy_png(width, height)
            return self._noisy[(width, height)]

    def __enter__(self) -> FakeImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    owner: FakeImageServer
    _counted = False

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        owner = self.owner
        with owner.lock:
            owner.active += 1
            owner.max_active = max(owner.max_active, owner.active)
            owner.peaked.notify_all()
            owner.requests.append({"path": self.path, "host": self.headers.get("Host", "")})
        self._counted = True
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (size cap, timeout)
        finally:
            self._uncount()

    def _uncount(self) -> None:
        """This request no longer counts as active: called before its answer is written, because the client may
        start its next request the moment it has the answer, before this thread runs again."""
        if self._counted:
            self._counted = False
            with self.owner.lock:
                self.owner.active -= 1

    def _route(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        together = int(query.get("together", "0"))  # hold until this many requests were active at once (5 s at most)
        if together:
            with self.owner.peaked:
                self.owner.peaked.wait_for(lambda: self.owner.max_active >= together, timeout=5)
        delay = float(query.get("delay", "0"))
        if delay:
            time.sleep(delay)
        path = parts.path
        if path.startswith("/img/"):
            name, _, ext = path[len("/img/"):].rpartition(".")
            width, height = int(query.get("w", 64)), int(query.get("h", 48))
            content_type = query.get("ct", IMAGE_FORMATS[ext][1])
            body = make_image(ext, width, height, color=name or "red",
                              noise="noise" in query, transparent="transparent" in query)
            self._send(200, body, content_type)
        elif path.startswith("/noisy/"):
            width, height = (int(n) for n in path[len("/noisy/"):].removesuffix(".png").split("x"))
            self._send(200, self.owner.noisy_png(width, height), "image/png")
        elif path.startswith("/bomb/"):
            width, height = (int(n) for n in path[len("/bomb/"):].removesuffix(".png").split("x"))
            self._send(200, make_png_bomb(width, height), "image/png")
        elif path == "/page.html":
            self._send(200, b"<!doctype html><html><body>not an image</body></html>", "text/html; charset=utf-8")
        elif path == "/fake.png":
            self._send(200, b"<!doctype html><html><body>I am HTML</body></html>", "image/png")
        elif path.startswith("/redirect/"):
            hops = int(path[len("/redirect/"):])
            final = query.get("final", "/img/red.png")
            target = f"/redirect/{hops - 1}?final={final}" if hops > 1 else final
            self._redirect(target)
        elif path == "/to":
            self._redirect(query["url"])
        elif path == "/endless.png":
            self._endless()
        elif path == "/liar.png":
            self._send_headers(200, "image/png", length=50 * 1024 * 1024)
            self.wfile.write(PNG_MAGIC + b"\0" * 1024)
        elif path == "/slow.png":
            self._drip(float(query.get("every", "0.05")))
        elif path.startswith("/status/"):
            self._send(int(path[len("/status/"):]), b"nope", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def _send_headers(self, status: int, content_type: str, length: int | None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self._uncount()
        self._send_headers(status, content_type, len(body))
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _endless(self) -> None:
        """An image/png that never ends (no Content-Length): the client must stop at its cap."""
        self._send_headers(200, "image/png", None)
        self.wfile.write(PNG_MAGIC)
        block = b"\0" * 65536
        for _ in range(100_000):  # ~6 GB: "endless" for any sane cap, yet bounded if a test misbehaves
            self.wfile.write(block)

    def _drip(self, every: float) -> None:
        """A valid-looking image/png arriving 16 bytes at a time: each read is quick, the whole is not."""
        self._send_headers(200, "image/png", None)
        self.wfile.write(PNG_MAGIC)
        self.wfile.flush()
        for _ in range(2000):
            time.sleep(every)
            self.wfile.write(b"\0" * 16)
            self.wfile.flush()
