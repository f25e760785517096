"""Readers of the models a request names: what a route family (or a front door) supplies to the one guard
(argoproxy/pipeline/guard.py), which decides on the names.

A reader is `reader(call, named)`: it calls `named(model)` once for each model the request names (a value that
is not a string included: the guard refuses it; `named(model, served)` where the name resolves to another that
passes for it, an alias) and returns; it raises `Unreadable` when it cannot tell which
models the request names. The guard calls a reader only while names matter (ALLOWED_MODELS or a team key's
globs in force, or a team key whose usage rows name the model), so readers cost nothing on the plain path.

A reader never trusts Content-Type: a body that parses as JSON is read as JSON (llama.cpp's server and Ollama
read JSON whatever the type says), a form body is read as a form only when it does not parse as JSON. A top-level
JSON array (a batch some servers take) names the models of each of its objects. Keys are compared as Go's
encoding/json compares them (any case): a lone `"Model"` is Ollama's `model`; two spellings of one key at the
top level are refused by the body parser (argoproxy/edge/request_body.py).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Mapping, TypeVar

from argoproxy.edge.request_body import parse_object
from argoproxy.edge.request_models import field_name, form_fields, is_form, path_model
from argoproxy.errors import ProxyError

Named = Callable[..., None]  # named(model) or named(model, served)
# reader(call, named): `call` is the pipeline's Call (argoproxy/pipeline/call.py); the edge reads its plan's path,
# headers and raw body, and does not import the pipeline.
Reader = Callable[[Any, Named], None]
Entry = TypeVar("Entry")  # what a table keyed by path glob holds (reader_for)
Call = Any


class Unreadable(Exception):
    """The request's models cannot be read (a body that is neither JSON nor a form): the guard decides."""


def body_objects(call: Call) -> list[Iterable[tuple[Any, Any]]]:
    """The (key, value) pairs of each object a forwarded body holds, JSON first whatever its Content-Type (a
    top-level array: each of its objects), else a form's fields (`model` given twice is a 400); [] when empty."""
    body, headers = call.plan.raw_body, call.plan.headers
    if not body:
        return []
    if compressed(headers):
        raise ProxyError(415, "With ALLOWED_MODELS or a team key's models set, request bodies must not be "
                         "compressed (the proxy checks the model they name).", code="unsupported_content_encoding")
    content_type = headers.get("Content-Type", "")
    if "json" in content_type.lower():
        parsed = parse_object(body, must_be_object=False)  # a JSON type that is not JSON: the 400 says why
    elif looks_like_json(body):
        try:
            parsed = parse_object(body, must_be_object=False)
        except ProxyError:
            if not is_form(content_type):
                raise
            return [form_fields(body, content_type)]  # not JSON after all: read as the form it says it is
    elif is_form(content_type):
        return [form_fields(body, content_type)]
    else:
        raise Unreadable(f"a body of type {content_type.split(';', 1)[0].strip() or 'unknown'!r} that is "
                         "neither JSON nor a form")
    return [obj.items() for obj in (parsed if isinstance(parsed, list) else [parsed]) if isinstance(obj, dict)]


def members(*keys: str) -> Reader:
    """A reader of top-level body members naming models (`model`; Ollama's `name`, `source`, `destination`...),
    in any case."""
    wanted = frozenset(field_name(key) for key in keys)

    def read(call: Call, named: Named) -> None:
        for obj in body_objects(call):
            for key, value in obj:
                if isinstance(key, str) and field_name(key) in wanted:
                    named(value)
    return read


def body_model(call: Call, named: Named) -> None:
    """A forwarded body's `model` at the top level, and every string `model` member nested in it: OpenAI's
    forwarded APIs name more models inside (a fine-tuning grader's, an image-generation tool's, a realtime
    session's, an eval run's data source), and a permitted top-level `model` must not carry them past the guard.
    Nested members that are no string (a JSON schema's `properties.model`) name no model."""
    top = field_name("model")
    for obj in body_objects(call):
        stack: list[Any] = []
        for key, value in obj:
            if isinstance(key, str) and field_name(key) == top:
                named(value)
            elif isinstance(value, (dict, list)):
                stack.append(value)
        while stack:  # bounded: the body parser caps a body's containers
            item = stack.pop()
            for key, value in (item.items() if isinstance(item, dict) else enumerate(item)):
                if isinstance(value, str):
                    if isinstance(key, str) and field_name(key) == top:
                        named(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)


def path_models(call: Call, named: Named) -> None:
    """A model named in the path: /v1/engines/{model}/..., /openai/deployments/{model}/..."""
    model = path_model(call.plan.path)
    if model is not None:
        named(model)


def both(*readers: Reader) -> Reader:
    """Readers in order: every name each one reads."""
    def read(call: Call, named: Named) -> None:
        for reader in readers:
            reader(call, named)
    return read


def compressed(headers: Mapping[str, str]) -> bool:
    """Does the request body come under a Content-Encoding (gzip, deflate...) the proxy would have to undo?"""
    return headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")


def looks_like_json(body: bytes) -> bool:
    """Does a body read as JSON to a lenient server (BOM, white space, UTF-16/32 included)?"""
    head = body[:64]
    try:
        text = head.decode(json.detect_encoding(head), "ignore")
    except LookupError:
        return False
    return text.lstrip(" \t\r\n\ufeff")[:1] in ("{", "[")


def reader_for(table: Iterable[tuple[str, Entry]], path: str) -> Entry | None:
    """The first reader of a (path glob, reader) table whose glob matches the path (with its leading '/'); any
    table keyed so (the doors' Spelled, by path) is read the same way."""
    from fnmatch import fnmatchcase
    target = "/" + path
    for glob, reader in table:
        if fnmatchcase(target, glob):
            return reader
    return None


def check_models(obj: dict[str, Any], where: str, named: Named, passed: set[str] | None = None) -> None:
    """A batch request's `model` in every spelling a lenient server reads (any case): each one allowed, and one at
    least (`where`: the request's place, for the error's param). `passed` holds names already allowed (at most
    64), so a file naming one model 100,000 times checks it once."""
    names = [key for key in obj if isinstance(key, str) and key.casefold() == "model"]
    try:
        for key in names or ["model"]:
            model = obj.get(key)
            if passed is not None and isinstance(model, str) and model in passed:
                continue
            named(model)
            if passed is not None and isinstance(model, str) and len(passed) < 64:
                passed.add(model)
    except ProxyError as err:
        err.param = f"{where}.model"
        raise
