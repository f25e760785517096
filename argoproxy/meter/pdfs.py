"""A PDF's pages as a reader finds them: pypdf walks its page tree (names in any spelling, `#`-escaped or not),
never trusting a `/Count`, and not counting page objects no tree holds. Bounded in CPU and memory: pypdf's own
limits, tightened here (a page tree deeper than MOST_DEPTH or of more than MOST_ENTRIES entries is not walked, no
stream is decompressed past MOST_STREAM bytes), a file of more than MOST_OBJECTS objects is not read, and the
reading stops after MOST_SECONDS of CPU whatever pypdf does (deadline.py: a page tree naming objects missing from
the cross-reference has pypdf search the whole file for each). An encrypted PDF is read with the empty password,
as a viewer opens it. None: not a PDF pypdf reads within these bounds (the meter then counts the most pages a maker
takes, which is also the most it counts of any PDF)."""

from __future__ import annotations

import logging

import io

from pypdf import PdfReader, apply_configuration, get_configuration

from argoproxy.meter.deadline import OutOfTime, cpu_bounded

MOST_DEPTH = 32  # a page tree's depth (pypdf's default: 100)
MOST_ENTRIES = 5_000  # a page tree's entries (pypdf's default: 100,000); more pages than the meter counts anyway
MOST_PAGE_ENTRIES = 200_000  # dictionary entries copied onto pages while walking (pypdf's default: 2,000,000)
MOST_STREAM = 256 * 1024  # bytes any stream decompresses to (a cross-reference or object stream; pypdf's: 75 MB)
MOST_OBJECTS = 500_000  # `obj` keywords in the file: past them it is not read (pypdf rebuilds a broken file by each)
MOST_SECONDS = 0.2  # CPU time a PDF is read for

logging.getLogger("pypdf").setLevel(logging.ERROR)  # a client's broken PDF is not the operator's warning


def pages(data: bytes) -> int | None:
    """Pages in the page tree of the PDF in `data`; None: unreadable within the bounds, or no pages."""
    if data.count(b"obj") > 2 * MOST_OBJECTS:  # each object says obj and endobj (a count at C speed)
        return None
    bounded = get_configuration().with_overwrites(
        page_tree_maximum_depth=MOST_DEPTH, page_tree_maximum_entries=MOST_ENTRIES,
        page_tree_maximum_page_entries=MOST_PAGE_ENTRIES, zlib_maximum_output_length=MOST_STREAM,
        lzw_maximum_output_length=MOST_STREAM, run_length_maximum_output_length=MOST_STREAM,
        brotli_maximum_output_length=MOST_STREAM, array_based_stream_maximum_output_length=MOST_STREAM)
    try:
        with apply_configuration(bounded), cpu_bounded(MOST_SECONDS):
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                return None
            return reader.get_num_pages() or None
    except (Exception, OutOfTime):  # noqa: BLE001 - pypdf's errors for a broken or hostile file, or its time spent
        return None
