"""What the meter reads of an inline part's bytes: the part decoded (base64, up to MEDIA_BYTES), then measured by
the decoder its format has, never by what a header says (docs/reservations.md): an image's extent as Pillow
decodes it (pictures.py), a PDF's pages as pypdf finds them in its page tree (pdfs.py), a sound's duration from
its samples or frames (sounds.py), a zipped document (DOCX, XLSX, PPTX) by its entries' decompressed bytes
(zips.py). Each decoder is imported on the first part of its kind: a request without
media never loads Pillow or pypdf here. None from a measure: the part cannot be decoded within its bounds, and
media.py counts it at the most a provider could bill for it.
"""

from __future__ import annotations

import base64
import binascii

MEDIA_BYTES = 64 * 1024 * 1024  # a part's bytes decoded at most; past them it is not measured (counted at most)


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 payload) of a `data:` URL with base64 data; None for anything else."""
    if not url.startswith("data:"):
        return None
    head, comma, payload = url.partition(",")
    if not comma or not head.endswith(";base64"):
        return None
    return head[5:-7].split(";")[0].lower(), payload


def decoded_size(payload: str) -> int:
    """Bytes a base64 payload decodes to (from its length: nothing decoded)."""
    tail = payload[-2:]
    return len(payload) * 3 // 4 - (len(tail) - len(tail.rstrip("=")))


def decoded(payload: str, most: int = MEDIA_BYTES) -> bytes:
    """A base64 payload decoded whole (b"": not base64, or longer than `most` bytes)."""
    if decoded_size(payload) > most + 3:
        return b""
    try:
        return base64.b64decode(payload)  # characters outside the alphabet (white space) are skipped
    except (binascii.Error, ValueError):
        return b""


def image_size(data: bytes) -> tuple[int, int] | None:
    """The largest extent an image's frames cover, as Pillow decodes it; None: not an image the makers take, or
    past the meter's bounds (pictures.py)."""
    if not data:
        return None
    from argoproxy.meter import pictures
    return pictures.extent(data)


def pdf_pages(data: bytes) -> int | None:
    """A PDF's pages, its page tree walked by pypdf; None: not a PDF it reads within its bounds (pdfs.py)."""
    if b"%PDF" not in data[:1024]:  # where a reader looks for the header
        return None
    from argoproxy.meter import pdfs
    return pdfs.pages(data)


def audio_seconds(data: bytes, form: str) -> float | None:
    """A sound's duration from its samples (WAV) or its frames (MP3, `form` naming it), unframed bytes at the
    lowest bitrate; None: a format the meter does not decode (sounds.py)."""
    from argoproxy.meter import sounds
    return sounds.seconds(data, form)


def unzipped_bytes(data: bytes, in_time: bool = True) -> int | None:
    """A zip archive's (a DOCX, XLSX, PPTX) entries' decompressed bytes, up to the bound; the bound when they
    cannot be read within it, or not `in_time`. None: not a zip archive (zips.py)."""
    from argoproxy.meter import zips
    if not zips.is_zip(data):
        return None
    unzipped = zips.unzipped_bytes(data) if in_time else None
    return zips.MOST_BYTES if unzipped is None else unzipped
