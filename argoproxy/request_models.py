"""Which model a request names, wherever it names it: `?model=`, a JSON body's top-level "model", a multipart
or form-encoded "model" field. The allow-list (ALLOWED_MODELS) is checked against every one of them, on
every route, so that no route serves a model the operator did not allow.

A name given twice (two `model` query parameters, two form fields) is a 400: the proxy and the upstream
could read different ones. Duplicate JSON keys are refused by the body parser (argoproxy/pipeline.py).
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import parse_qsl

from argoproxy.errors import ProxyError
from argoproxy.validation import check_allowed_model

JSON_START = (b"{", b"[")


def query_model(query: str) -> str | None:
    """The `model` query parameter (None when absent; a 400 when given twice)."""
    if "model" not in query:
        return None
    try:
        values = [v for k, v in parse_qsl(query, keep_blank_values=True, errors="strict") if k == "model"]
    except (UnicodeDecodeError, ValueError):
        raise ProxyError(400, "The query string is not valid UTF-8.", code="invalid_query") from None
    return _single(values, "query parameter")


def form_model(body: bytes, content_type: str) -> str | None:
    """The `model` field of a multipart/form-data or application/x-www-form-urlencoded body."""
    from werkzeug.formparser import parse_form_data
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    try:
        _, form, files = parse_form_data(environ, silent=False, max_form_parts=10_000)
    except Exception:  # noqa: BLE001 - werkzeug raises several kinds for malformed bodies
        raise ProxyError(400, "The form body cannot be parsed, so its model cannot be checked.",
                         code="invalid_form") from None
    values = form.getlist("model")
    if "model" in files:
        raise ProxyError(400, "The form field `model` must be a value, not a file.", param="model",
                         code="invalid_value")
    return _single(values, "form field")


def body_model(body: Any) -> tuple[bool, Any]:
    """(names a model, the name) for a parsed JSON body."""
    if isinstance(body, dict) and "model" in body:
        return True, body["model"]
    return False, None


def _single(values: list[str], where: str) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise ProxyError(400, f"The {where} `model` is given {len(values)} times; give it once.", param="model",
                         code="duplicate_parameter")
    return values[0]


def is_form(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in ("multipart/form-data", "application/x-www-form-urlencoded")


def check_named(patterns: tuple[str, ...], model: Any) -> None:
    """The allow-list check for a name taken from anywhere in a request (a non-string is never allowed)."""
    if not isinstance(model, str):
        raise ProxyError(400, "`model` must be a string.", param="model", code="invalid_value")
    check_allowed_model(patterns, model)
