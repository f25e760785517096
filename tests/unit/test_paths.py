"""Canonical paths (argoproxy/edge/paths.py) and classification (argoproxy/edge/classify.py), in-process."""

from __future__ import annotations

import pytest

from argoproxy.edge.classify import forward_allowed, standard_table
from argoproxy.fronts import FRONTS
from argoproxy.edge.paths import PathError, canonical, raw_target


@pytest.mark.parametrize("raw, path, query", [
    ("/v1/chat/completions", "v1/chat/completions", ""),
    ("/v1//chat///completions/", "v1/chat/completions", ""),
    ("//", "", ""),
    ("", "", ""),
    ("/v1/models?after=a%2Fb&x", "v1/models", "after=a%2Fb&x"),
    ("/v1/files/file%2DAbC", "v1/files/file-AbC", ""),  # decoded once, re-encoded one way
    ("/v1/models/caf%C3%A9", "v1/models/caf%C3%A9", ""),
    ("/v1/models/a%25b", "v1/models/a%25b", ""),
    ("/v1/models/org:x@y", "v1/models/org:x@y", ""),
    ("/v1/a..b/.c/d.", "v1/a..b/.c/d.", ""),  # dots inside a name are not dot segments
    ("http://host:1/v1//models?q", "v1/models", "q"),
])
def test_canonical_forms(raw, path, query):
    target = canonical(raw)
    assert (target.path, target.query) == (path, query)


@pytest.mark.parametrize("raw, reason", [
    ("/v1/chat/completions%23", "'#'"), ("/v1/chat/completions%3F", "'?'"), ("/v1%2fchat", "'/'"),
    ("/v1/./x", "dot segment"), ("/v1/..", "dot segment"), ("/v1/%2E%2e/x", "dot segment"), ("/v1/.%2E", "dot"),
    ("/v1/x;y=1", "';'"), ("/v1/x%3b", "';'"), ("/v1/x%00", "NUL"), ("/v1/x%1F", "control"), ("/v1/x%C2%85", "control"),
    ("/v1/x\\y", "backslash"), ("/v1/x%5cy", "backslash"), ("/v1/x%", "malformed"), ("/v1/x%g1", "malformed"),
    ("/v1/%C3", "UTF-8"), ("/v1/x#y", "'#'"), ("*", "asterisk"), ("v1/x", "leading"), ("/v1/x%20", "white space"),
])
def test_refused_targets(raw, reason):
    with pytest.raises(PathError) as info:
        canonical(raw)
    assert info.value.status == 400 and info.value.code == "invalid_path" and reason in info.value.message


def test_raw_target_prefers_what_the_client_sent():
    assert raw_target({"RAW_URI": "/v1/a%2Fb?x=1", "PATH_INFO": "/v1/a/b"}) == "/v1/a%2Fb?x=1"
    assert raw_target({"REQUEST_URI": "/v1/%3F"}) == "/v1/%3F"
    assert raw_target({"PATH_INFO": "/v1/caf\xc3\xa9 x", "QUERY_STRING": "a=1"}) == "/v1/caf%C3%A9%20x?a=1"


def classify(raw, forwards=True, forward_paths=("*",)):
    return standard_table(forwards, forward_paths, FRONTS.values()).classify(canonical(raw))


@pytest.mark.parametrize("raw, kind, family, path", [
    ("/v1/chat/completions", "chat", "api", "v1/chat/completions"),
    ("/V1/CHAT/Completions/", "chat", "api", "v1/chat/completions"),
    ("/chat/completions", "chat", "api", "chat/completions"),
    ("/Completions", "completions", "api", "completions"),
    ("/v1/embeddings", "embeddings", "api", "v1/embeddings"),
    ("/v1/models/", "models", "models", "v1/models"),
    ("/MODELS", "models", "models", "models"),
    ("/V1/Models/Meta-Llama/Llama-3", "model", "models", "v1/models/Meta-Llama/Llama-3"),
    ("/health", "health", "own", "health"),
    ("/Metrics", "metrics", "own", "metrics"),
    ("/v1/batches", "passthrough", "forward", "v1/batches"),
    ("/V1/Files/ABC", "passthrough", "forward", "V1/Files/ABC"),
])
def test_one_route_per_request(raw, kind, family, path):
    route = classify(raw)
    assert (route.kind, route.family, route.path) == (kind, family, path)


def test_model_ids_keep_their_case_and_slashes():
    assert classify("/v1/models/Org%2DX/Model-A").model == "Org-X/Model-A"


def test_without_forwarding_unknown_paths_are_unknown():
    assert classify("/v1/batches", forwards=False).family == "unknown"
    assert classify("/v1/chat/completions", forwards=False).family == "api"


def test_forward_paths_globs():
    assert forward_allowed(("*",), "anything/at/all")
    assert forward_allowed(("/v1/files*",), "v1/files/abc") and forward_allowed(("v1/files*",), "v1/files")
    assert not forward_allowed(("/v1/files*",), "v1/batches")
    assert not forward_allowed(("/v1/files",), "V1/files")  # case-sensitive, like the upstream
    assert not forward_allowed((), "v1/files")
    assert classify("/v1/batches", forward_paths=("/v1/files*",)).family == "unknown"


def test_a_new_api_kind_plugs_in():
    table = standard_table(True, ("*",))
    table.add("v1/widgets", "widgets", "front", {"POST"}, front="widgets", bare=True)
    route = table.classify(canonical("/V1//Widgets"))
    assert (route.kind, route.family, route.path, route.front) == ("widgets", "front", "v1/widgets", "widgets")
    assert table.classify(canonical("/widgets")).kind == "widgets"


@pytest.mark.parametrize("raw, kind, front", [("/v1/responses", "responses", "responses"),
                                              ("/V1/Messages/", "messages", "messages"),
                                              ("/messages/count_tokens", "count_tokens", "messages")])
def test_front_doors_are_classified(raw, kind, front):
    route = classify(raw)
    assert (route.kind, route.family, route.front) == (kind, "front", front)
