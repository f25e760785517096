"""The headers that name what served an answer (X-Served-Model, X-Served-By), written by the sequence for one
deployment and by routing for a routed attempt's error."""

from __future__ import annotations

import re
from urllib.parse import quote

SERVED_MODEL = "X-Served-Model"  # the model that served (routed: the entry's; else the name asked for)
SERVED_BY = "X-Served-By"  # host:port of the deployment that served
_PRINTABLE = re.compile(r"[\x20-\x7e]{1,200}")


def header_safe(name: str) -> str:
    """A model name as a header value: a name is client input (no control characters)."""
    return name if _PRINTABLE.fullmatch(name) else quote(name, safe="", errors="backslashreplace")[:200]
