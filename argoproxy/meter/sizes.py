"""What the meter reads of an inline part's bytes, cheaply and bounded: an image's width and height from its header
(PNG, JPEG, GIF, WebP), a WAV's duration from its header, a PDF's pages (its `/Type /Page` objects, and the
`/Count` of its page trees). Only the first bytes of a base64 payload are decoded for an image or a sound (HEAD
bytes); a PDF is decoded whole, up to PDF_BYTES, and searched at C speed. Nothing is decoded as a picture: Pillow
is not needed for a header.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

HEAD_CHARS = 96 * 1024  # base64 characters decoded for a header (72 KiB: a JPEG's EXIF block comes before its size)
PDF_BYTES = 64 * 1024 * 1024  # a PDF's bytes searched for its pages at most; past them, its pages are not known
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]{0,512}?/Count\s+(\d+)|/Count\s+(\d+)[^>]{0,512}?/Type\s*/Pages\b")
MOST_COUNTED = 10**6  # a page tree's /Count past this is read as this (its digits whole: 12345678 is not 1234567)
# JPEG start-of-frame markers that carry the size (not DHT C4, JPG C8, DAC CC)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 payload) of a `data:` URL with base64 data; None for anything else."""
    if not url.startswith("data:"):
        return None
    head, comma, payload = url.partition(",")
    if not comma or not head.endswith(";base64"):
        return None
    return head[5:-7].split(";")[0].lower(), payload


def decoded_head(payload: str, chars: int = HEAD_CHARS) -> bytes:
    """The first bytes of base64 `payload` (white space and a cut at the end tolerated); b"" when it is not
    base64."""
    piece = "".join(payload[:chars].split())
    piece = piece[: len(piece) - len(piece) % 4]
    try:
        return base64.b64decode(piece)
    except (binascii.Error, ValueError):
        return b""


def decoded_size(payload: str) -> int:
    """Bytes a base64 payload decodes to (from its length: nothing decoded)."""
    tail = payload[-2:]
    return len(payload) * 3 // 4 - (len(tail) - len(tail.rstrip("=")))


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's first bytes, or None (a format or a header the meter does not read)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return _positive(*struct.unpack(">II", data[16:24]))
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return _positive(*struct.unpack("<HH", data[6:10]))
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except struct.error:
        return None
    return None


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return _positive(width, height)
        at += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: the frame's 14-bit sizes after its start code
        width, height = struct.unpack("<HH", data[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":  # lossless: 14-bit sizes less one, packed after the signature byte
        bits = int.from_bytes(data[21:25], "little")
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":  # extended: 24-bit sizes less one
        return _positive(int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    return None


def wav_seconds(data: bytes, total_bytes: int) -> float | None:
    """A WAV's duration from its header (its byte rate; the data chunk's size, or the file's bytes when the
    header does not say it: a streamed WAV's 0 or 0xFFFFFFFF); None when it is not a WAV the meter reads."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    at, rate, size = 12, 0, 0
    while at + 8 <= len(data):
        chunk, length = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        if chunk == b"fmt " and at + 16 <= len(data):
            rate = struct.unpack("<I", data[at + 16:at + 20])[0] if at + 20 <= len(data) else 0
        elif chunk == b"data":
            size = length if 0 < length < 0xFFFFFFFF else total_bytes
            break
        at += 8 + length + (length & 1)
    if rate <= 0:
        return None
    return max(size, 0) / rate if size else total_bytes / rate


def pdf_pages(data: bytes) -> int | None:
    """A PDF's pages: the most of its `/Type /Page` objects and its page trees' `/Count`s; None when it is not a
    PDF, or says neither (its objects compressed in object streams, or more than PDF_BYTES)."""
    if not data.startswith(b"%PDF") or len(data) > PDF_BYTES:
        return None
    pages = len(_PAGE.findall(data))
    counts = [min(int((a or b)[:8]), MOST_COUNTED) for a, b in _COUNT.findall(data)]
    found = max([pages, *counts])
    return found or None


def decoded(payload: str, most: int = PDF_BYTES) -> bytes:
    """A base64 payload decoded whole (b"": not base64, or longer than `most` bytes)."""
    if decoded_size(payload) > most + 3:
        return b""
    try:
        return base64.b64decode(payload)  # characters outside the alphabet (white space) are skipped
    except (binascii.Error, ValueError):
        return b""
