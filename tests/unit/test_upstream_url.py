"""argoproxy.upstream.url and its neighbours: a base URL's query stays the upstream's query (after the path,
before the client's), its credentials are secrets, and a client key never rides along in the query."""

from __future__ import annotations

import dataclasses

import pytest

from argoproxy.edge.auth import without_key_params
from argoproxy.redaction import configured_secrets, mask_url, url_credentials
from argoproxy.config.routing_settings import parse_models
from argoproxy.config.setting_fields import as_base_url
from argoproxy.upstream.url import join_url


@pytest.mark.parametrize("base,path,query,url", [
    ("http://h/v1/", "v1/chat/completions", "", "http://h/v1/chat/completions"),
    ("http://h/v1/?api_key=K", "v1/chat/completions", "", "http://h/v1/chat/completions?api_key=K"),
    ("http://h/v1/?api_key=K", "v1/files", "purpose=batch", "http://h/v1/files?api_key=K&purpose=batch"),
    # the base's parameters win: a client cannot replace the operator's key or version
    ("http://h/v1/?api_key=K&api-version=1", "v1/x", "API_KEY=evil&Api-Version=9&y=2",
     "http://h/v1/x?api_key=K&api-version=1&y=2"),
    ("http://h/base/?k=1", "chat/", "", "http://h/base/chat/?k=1"),
    ("http://h/api/messages?k=1", "/count_tokens", "", "http://h/api/messages/count_tokens?k=1"),
])
def test_join_url_puts_the_path_before_the_base_query(base, path, query, url):
    assert join_url(base, path, query) == url


def test_base_urls_keep_their_query_after_the_path():
    assert as_base_url("http://h/v1?api_key=K") == "http://h/v1/?api_key=K"
    assert as_base_url("http://h/v1/chat/completions?api-version=1") == "http://h/v1/?api-version=1"
    entry = parse_models([{"name": "m", "backend": "openai", "base_url": "http://h/v1?api_key=K"}])[0]
    assert entry.base_url == "http://h/v1/?api_key=K"
    assert "api_key=***" in repr(entry) and "api_key=K" not in repr(entry)  # --show prints it masked


def test_query_credentials_are_secrets_and_masked():
    assert set(url_credentials("http://h/v1/?api_key=K%2B123456&api-version=2024-06-01&sig=abcdef")) == \
        {"K%2B123456", "K+123456", "abcdef"}
    assert url_credentials("http://h/v1/?api-version=2024-06-01&deployment=x") == []
    assert mask_url("GET http://h/v1/?key=abc&X-Amz-Signature=s&model=m&author=me") == \
        "GET http://h/v1/?key=***&X-Amz-Signature=***&model=m&author=me"

    @dataclasses.dataclass
    class S:  # a stand-in with one URL field: configured_secrets reads dataclass fields
        target_base_url: str = "http://h/v1/?subscription-key=SUBKEY123"

    assert "SUBKEY123" in configured_secrets(S())


def test_a_client_key_query_parameter_is_dropped_in_every_spelling():
    assert without_key_params("purpose=batch&key=K&KEY%5B%5D=K;Key=K&keys=3", frozenset({"key"})) == "purpose=batch&keys=3"
    assert without_key_params("a=1;b=2", frozenset({"key"})) == "a=1;b=2"  # nothing to drop: left as sent
