"""http.client's response-head parser, replaced (by argoproxy.fastpath.install).

http.client parses every response head with the email package's feed parser, the costliest step of an
upstream call; parse_headers does the common case directly and hands anything unusual (folded lines, junk)
to the email parser, so the result is always what http.client's own parser gives. Imports neither urllib3 nor
ssl: it is installed in the Gunicorn master, before gevent patches the workers.
"""

from __future__ import annotations

import email.parser
import http.client
import re

# A plain "Name: value" line; anything else (folded continuation lines, junk) goes to the email parser.
_HEADER_LINE = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*?)\r?\n?")


def parse_headers(fp, _class=http.client.HTTPMessage):
    """http.client.parse_headers with the same result (an HTTPMessage holding the same name/value pairs)."""
    lines = http.client._read_headers(fp)
    msg = _class()
    for line in lines[:-1]:  # the last line is the blank one (or EOF) that ended the head
        text = line.decode("iso-8859-1")
        m = _HEADER_LINE.fullmatch(text)
        if m is None or text.startswith("From "):
            return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
        msg.set_raw(m.group(1), m.group(2))
    msg.set_payload("")
    return msg
