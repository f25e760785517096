"""A zipped document's size as the standard library's `zipfile` decompresses it: DOCX, XLSX, PPTX, OpenDocument
and EPUB files are zip archives of XML, whose text a provider extracts, and deflate packs repeated text a thousand
to one (a 59,552-byte DOCX held 2.2 million tokens of text). Every entry is decompressed and its bytes counted,
never its header's word (a local or central header's size may lie), up to MOST_BYTES in all: past them the count
is MOST_BYTES and nothing more is decompressed (a zip bomb is never decompressed whole). Within MOST_SECONDS of
CPU (deadline.py: a central directory may list a million entries). None: not a zip archive `zipfile` reads, an
entry it cannot decompress (encrypted, a method it lacks), or not read in time; the meter then counts MOST_BYTES.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from argoproxy.meter.deadline import OutOfTime, cpu_bounded

MOST_BYTES = 16 * 1024 * 1024  # decompressed bytes counted at most: more tokens than any model's context holds
MOST_SECONDS = 0.2  # CPU time an archive is read for
CHUNK = 1024 * 1024  # bytes decompressed per read


def is_zip(data: bytes) -> bool:
    """Whether `data` is a zip archive (its end-of-directory record found, as a reader finds it)."""
    return zipfile.is_zipfile(io.BytesIO(data))


def unzipped_bytes(data: bytes) -> int | None:
    """Bytes the entries of the zip archive in `data` decompress to, up to MOST_BYTES; None: unreadable within the
    bounds."""
    total = 0
    try:
        with cpu_bounded(MOST_SECONDS), zipfile.ZipFile(io.BytesIO(data)) as archive:
            for entry in archive.infolist():
                entry.file_size = MOST_BYTES + 1  # read to the end of its data, not to its header's size (its CRC
                with archive.open(entry) as member:  # is then checked against all of it, as any reader checks)
                    while total < MOST_BYTES and (chunk := member.read(min(CHUNK, MOST_BYTES - total))):
                        total += len(chunk)
                if total >= MOST_BYTES:
                    return MOST_BYTES
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, ValueError, OSError,
            OutOfTime):
        return None
    return total
