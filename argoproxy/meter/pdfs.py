"""A PDF's pages as a reader finds them: pypdf walks its page tree (names in any spelling, `#`-escaped or not),
never trusting a `/Count`, and not counting page objects no tree holds. Bounded by pypdf's own limits, tightened
here: a page tree deeper than MOST_DEPTH or with more than MOST_ENTRIES entries is not walked. An encrypted PDF
is read with the empty password, as a viewer opens it. None: not a PDF pypdf reads within these bounds."""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader, apply_configuration

MOST_DEPTH = 32  # a page tree's depth (pypdf's default: 100)
MOST_ENTRIES = 20_000  # a page tree's entries (pypdf's default: 100,000)
MOST_PAGE_ENTRIES = 400_000  # dictionary entries copied onto pages while walking (pypdf's default: 2,000,000)

logging.getLogger("pypdf").setLevel(logging.ERROR)  # a client's broken PDF is not the operator's warning


def pages(data: bytes) -> int | None:
    """Pages in the page tree of the PDF in `data`; None: unreadable within the bounds, or no pages."""
    try:
        with apply_configuration(page_tree_maximum_depth=MOST_DEPTH, page_tree_maximum_entries=MOST_ENTRIES,
                                 page_tree_maximum_page_entries=MOST_PAGE_ENTRIES):
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                return None
            return reader.get_num_pages() or None
    except Exception:  # noqa: BLE001 - pypdf's errors for a broken or hostile file: its pages are not known
        return None
