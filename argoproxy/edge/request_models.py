"""Which model a request names, wherever it names it: `?model=`, a JSON body's top-level "model", a multipart
or form-encoded "model" field. The allow-list (ALLOWED_MODELS) is checked against every one of them, on
every route, so that no route serves a model the operator did not allow.

A name given twice (two `model` query parameters, two form fields) is a 400: the proxy and the upstream
could read different ones. Duplicate JSON keys are refused by the body parser (argoproxy/edge/request_body.py).

A parameter counts as `model` in every spelling some server reads as `model`: percent-encoded (`mode%6C`), in any
case (ASP.NET and others match names case-insensitively), with a PHP-style `[]` suffix, and with `;` as well as
`&` between parameters (older servers split on both). Multipart bodies are read whatever their case or
`multipart/*` subtype, and a body type that names its boundary twice is refused.
"""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import unquote, unquote_plus

from argoproxy.errors import ProxyError
from argoproxy.edge.validation import check_allowed_model, model_allowed
from argoproxy.upstream.url import field_name as field_name  # batch_models reads it from here too

URLENCODED = "application/x-www-form-urlencoded"
_SEPARATORS = re.compile(r"[&;]")
_BOUNDARY = re.compile(r"(?i);\s*boundary\s*=")


def query_model(query: str) -> str | None:
    """The `model` query parameter in any spelling (None when absent; a 400 when given twice)."""
    if "%" not in query and "model" not in query.lower():
        return None  # the common case: nothing that could spell the name
    try:
        values = [value for name, value in _pairs(query) if name == "model"]
    except UnicodeDecodeError:
        raise ProxyError(400, "The query string is not valid UTF-8.", code="invalid_query") from None
    return _single(values, "query parameter")


# Paths that name their model in a segment: OpenAI's engine routes (/v1/engines/{model}/completions) and Azure
# OpenAI's deployments (/openai/deployments/{model}/chat/completions). Forwarded, they reached any model.
_PATH_MODEL_PREFIXES = (("v1", "engines"), ("engines",), ("openai", "deployments"), ("deployments",))


def path_model(path: str) -> str | None:
    """The model a forwarded path names in its segments (None for every other path)."""
    parts = path.strip("/").split("/")
    lowered = tuple(part.lower() for part in parts[:2])
    for prefix in _PATH_MODEL_PREFIXES:
        if lowered[:len(prefix)] == prefix and len(parts) > len(prefix) and parts[len(prefix)]:
            return unquote(parts[len(prefix)])
    return None


def query_values(query: str, name: str) -> list[str]:
    """Every value of one query parameter, its name in any spelling some server reads as it (see above)."""
    try:
        return [value for key, value in _pairs(query) if key == name]
    except UnicodeDecodeError:
        raise ProxyError(400, "The query string is not valid UTF-8.", code="invalid_query") from None


def _pairs(text: str) -> list[tuple[str, str]]:
    """Name/value pairs of a query or url-encoded form, names reduced to the spelling servers compare."""
    pairs = []
    for field in _SEPARATORS.split(text):
        if field:
            name, _, value = field.partition("=")
            pairs.append((field_name(unquote_plus(name, errors="strict")), unquote_plus(value, errors="strict")))
    return pairs


def form_fields(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The (name, value) fields of a multipart (any subtype) or application/x-www-form-urlencoded body, names in
    the spelling servers compare (field_name); `model` given twice, or as a file, is a 400."""
    if _mime(content_type) == URLENCODED:
        try:
            pairs = _pairs(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise ProxyError(400, "The form body is not valid UTF-8, so its model cannot be checked.",
                             code="invalid_form") from None
    else:
        form, files = multipart_form(body, content_type)
        if any(field_name(name) == "model" for name in files.keys()):
            raise ProxyError(400, "The form field `model` must be a value, not a file.", param="model",
                             code="invalid_value")
        pairs = [(field_name(name), value) for name, value in form.items(multi=True)]
    _single([value for name, value in pairs if name == "model"], "form field")
    return pairs


def multipart_form(body: bytes, content_type: str) -> tuple[Any, Any]:
    """(fields, files) of a multipart body of any subtype, as Werkzeug reads it (files past 500 KB spooled to
    disk); a 400 when it cannot be parsed or names its boundary twice (two parsers could split it differently)."""
    from werkzeug.formparser import parse_form_data
    from werkzeug.http import parse_options_header
    if len(_BOUNDARY.findall(content_type)) > 1:
        raise ProxyError(400, "The Content-Type names its multipart boundary more than once.",
                         code="invalid_form")
    boundary = parse_options_header(content_type)[1].get("boundary", "")
    # Werkzeug reads only "multipart/form-data" spelled in lower case; servers read any case and subtype.
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": f'multipart/form-data; boundary="{boundary}"',
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    try:
        _, form, files = parse_form_data(environ, silent=False, max_form_parts=10_000)
    except Exception:  # noqa: BLE001 - werkzeug raises several kinds for malformed bodies
        raise ProxyError(400, "The form body cannot be parsed, so the models it names cannot be checked.",
                         code="invalid_form") from None
    return form, files


def _single(values: list[str], where: str) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise ProxyError(400, f"The {where} `model` is given {len(values)} times; give it once.", param="model",
                         code="duplicate_parameter")
    return values[0]


def is_form(content_type: str) -> bool:
    mime = _mime(content_type)
    return mime == URLENCODED or mime.startswith("multipart/")


def _mime(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def check_named(patterns: tuple[str, ...], model: Any, key_models: tuple[str, ...] = ()) -> None:
    """The allow-list check for a name taken from anywhere in a request (a non-string is never allowed), and
    the globs of the team key it came with (`key_models`)."""
    if not isinstance(model, str):
        raise ProxyError(400, "`model` must be a string.", param="model", code="invalid_value")
    check_allowed_model(patterns, model)
    if key_models and not model_allowed(key_models, model):
        raise key_model_refused(model)


def key_model_refused(model: Any) -> ProxyError:
    """A team key's globs (`keys create --models`) do not take this model, or the request names none (the
    upstream's default would be one the key was never given)."""
    if not isinstance(model, str) or not model:
        return ProxyError(403, "This API key may only use the models it was made for; this request names none.",
                          param="model", code="model_not_allowed")
    return ProxyError(403, f"This API key may not use the model {model[:200]!r}.", param="model",
                      code="model_not_allowed")
