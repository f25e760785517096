"""ARGO's own model list (providers/argo/live_models.py): both of its shapes read with argo-proxy's alias rules,
read only when a name is not in the table (or for a listing) and at most once per REFRESH, a failure said once."""

from __future__ import annotations

import logging

import pytest

from argoproxy.errors import ProxyError
from argoproxy.providers.argo import live_models, models
from argoproxy.providers.argo.live_models import LiveModels, parse_model_list

NEW_SHAPE = {"object": "list", "data": [
    {"id": "Claude Opus 5", "internal_id": "claudeopus5", "object": "model", "owned_by": "anthropic"},
    {"id": "Claude Sonnet 3.5 v2", "internal_id": "claudesonnet35v2"},
    {"id": "o5-mini", "internal_id": "gpto5mini"},
    {"id": "GPT-5.6 Sol", "internal_id": "gpt56sol"},
    {"id": "Text Embedding 3 Small", "internal_id": "v3small"},  # an embedding model: the built-in table's
    {"id": "Bad", "internal_id": "Not An Id"}, "junk", {"internal_id": 5}]}
OLD_SHAPE = {"data": [{"id": "gpt54nano", "model_name": "GPT-5.4 Nano"}, {"id": "gpt4o", "model_name": "GPT-4o"}]}


def test_both_shapes_with_argo_proxys_aliases():
    assert parse_model_list(NEW_SHAPE) == {
        "claudeopus5": ("argo:claude-opus-5", "argo:claude-5-opus"),
        "claudesonnet35v2": ("argo:claude-sonnet-3.5-v2", "argo:claude-3.5-sonnet-v2"),
        "gpto5mini": ("argo:gpt-o5-mini", "argo:o5-mini"),
        "gpt56sol": ("argo:gpt-5.6-sol",)}
    assert parse_model_list(OLD_SHAPE) == {"gpt54nano": ("argo:gpt-5.4-nano",), "gpt4o": ("argo:gpt-4o",)}
    for junk in (None, [], {"data": "x"}, {"data": [None, 3]}):
        assert parse_model_list(junk) == {}


class Answer:
    """The slice of an UpstreamResponse the list reader uses."""
    tap, bounded = None, False

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self.body = status, body

    def chunks(self, decode: bool = True):
        yield self.body[:10]
        yield self.body[10:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def sender(*answers):
    sent = []

    def send(req):
        sent.append(req.url)
        answer = answers[min(len(sent), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return send, sent


def test_read_only_for_a_name_the_table_lacks_and_at_most_once_per_refresh(monkeypatch):
    import json
    send, sent = sender(Answer(200, json.dumps(NEW_SHAPE).encode()))
    live = LiveModels("http://argo/api/v1/models/", send)
    assert live.table("gpt-4o").lookup("gpt-4o") == "gpt4o" and sent == []  # known: no read
    table = live.table("claude-opus-5")
    assert sent == ["http://argo/api/v1/models/"] and table.lookup("claude-opus-5") == "claudeopus5"
    assert models.resolve_model("argo:claude-5-opus", table=table) == "claudeopus5"
    assert models.resolve_model("gpt-4o", table=table) == "gpt4o"  # the built-in models stay
    with pytest.raises(ProxyError) as info:
        models.resolve_model("claude-opus-9", table=live.table("claude-opus-9"))
    assert info.value.status == 404 and len(sent) == 1  # read again only once REFRESH has passed
    ids = {e["internal_name"] for e in table.openai_list()["data"]}
    assert {"claudeopus5", "gpt4o", "v3small"} <= ids
    monkeypatch.setattr(live_models.time, "monotonic", lambda: 10 ** 9)
    live.table("claude-opus-9")
    assert len(sent) == 2


@pytest.mark.parametrize("failure", [Answer(404, b"{}"), Answer(200, b"<html>"),
                                     ProxyError(502, "The upstream server argo:443 refused the connection.")])
def test_a_list_that_cannot_be_read_leaves_the_table_said_once(failure, caplog, monkeypatch):
    send, sent = sender(failure)
    live = LiveModels("http://user:secret@argo/api/v1/models/", send)
    with caplog.at_level(logging.WARNING, logger="cot_proxy"):
        assert live.table("claude-opus-5") is models.BUILTIN
        monkeypatch.setattr(live_models.time, "monotonic", lambda: 10 ** 9)
        assert live.table("claude-opus-5") is models.BUILTIN and len(sent) == 2  # tried again after RETRY
    said = [r.getMessage() for r in caplog.records if "model list" in r.getMessage()]
    assert len(said) == 1 and "secret" not in said[0]


def test_a_list_cannot_move_a_name_the_table_knows_to_another_model():
    table = models.BUILTIN.with_chat_models({"gpt4olatest": ("argo:gpt-4o", "argo:gpt-4o-newest"),
                                             "evil": ("argo:claude-opus-4.6", "gpt4o", "argo:text-embedding-3-small")})
    assert table.lookup("argo:gpt-4o") == "gpt4o" and table.lookup("gpt-4o") == "gpt4o"
    assert table.lookup("argo:gpt-4o-newest") == "gpt4olatest"
    assert table.lookup("claude-opus-4.6") == "claudeopus46" and table.lookup("gpt4o") == "gpt4o"
    assert table.lookup("evil") == "evil" and table.lookup("text-embedding-3-small", "embed") == "v3small"


def test_an_id_the_table_reads_as_another_models_name_is_left_out():
    table = models.BUILTIN.with_chat_models({"o3": ("argo:o3-special",), "gpt35turbo": ("argo:gpt-35-turbo",)})
    assert table.lookup("o3") == "gpto3" and table.lookup("gpt-3.5-turbo") == "gpt35"
    assert table.lookup("argo:o3-special") is None


@pytest.mark.parametrize("failure", [ConnectionResetError(104, "reset"), TimeoutError("timed out")])
def test_a_read_that_breaks_is_a_list_not_read(failure):
    class Broken(Answer):
        def chunks(self, decode: bool = True):
            yield b'{"data": ['
            raise failure
    send, sent = sender(Broken(200, b""))
    live = LiveModels("http://argo/api/v1/models/", send)
    assert live.table("claude-opus-5") is models.BUILTIN and live.table("claude-opus-9") is models.BUILTIN
    assert len(sent) == 1  # tried again only after RETRY


def test_a_list_longer_than_the_bound_is_not_read(monkeypatch):
    monkeypatch.setattr(live_models, "MAX_LIST_BYTES", 100)
    import json
    send, sent = sender(Answer(200, json.dumps(NEW_SHAPE).encode()))
    assert LiveModels("http://argo/api/v1/models/", send).table("claude-opus-5") is models.BUILTIN
