"""What a strict JSON reader refuses and Python's json module takes: bytes that are not UTF-8 (json.loads reads
a lone surrogate's UTF-8 spelling, b"\\xed\\xa0\\x80", as that surrogate), and a lone surrogate escape ("\\ud800": half
of a UTF-16 pair, not a Unicode character). RFC 8259 asks for UTF-8 text; OpenAI, Anthropic and vLLM answer
such a body with a 400, so the fakes standing for them (and for ARGO and DashScope) refuse it too, each with a 400
in its own shape."""

from __future__ import annotations

import json


def json_problem(body: bytes) -> str | None:
    """Why a strict reader refuses this JSON text, in words; None when it does not (or when the text is not JSON
    at all: the fake's own reading says so, as before)."""
    if body.lstrip()[:1] not in (b"{", b"["):  # not a JSON body (a multipart upload, a form)
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not valid UTF-8 (byte {exc.start})"
    try:
        value = json.loads(text)
    except ValueError:
        return None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a string holds the lone surrogate \\u{ord(exc.object[exc.start]):04x}, half of a UTF-16 pair"
    return None
