"""ARGO model tables, resolution, families and the /v1/models listing."""

from __future__ import annotations

import pytest

from argoproxy.providers.argo.models import (
    BUILTIN,
    ModelTable,
    accepts_system_messages,
    list_models,
    model_family,
    resolve_model,
)
from argoproxy.errors import ProxyError


@pytest.mark.parametrize(
    "name",
    ["argo:gpt-4o", "gpt4o", "argo/gpt-4o", "ARGO/GPT-4O", "Argo:GPT-4o", "gpt-4o", "GPT4O", "  argo:gpt-4o  "],
)
def test_every_spelling_of_gpt4o_resolves(name):
    assert resolve_model(name) == "gpt4o"


@pytest.mark.parametrize(
    ("name", "internal"),
    [
        ("argo:gpt-o1-preview", "gpto1preview"),
        ("argo:o1-preview", "gpto1preview"),
        ("o3-mini", "gpto3mini"),
        ("argo:gpt-4-turbo-preview", "gpt4turbo"),  # seed README spelling
        ("argo:gpt-4-turbo", "gpt4turbo"),  # v2.7.9 spelling
        ("argo:claude-4-opus", "claudeopus4"),
        ("claude-opus-4", "claudeopus4"),
        ("argo:claude-3.5-sonnet", "claudesonnet35v2"),
        ("claude-sonnet-4-5-20250929", "claudesonnet45"),  # punctuation-free + dated
        ("claude-sonnet-4-6", "claudesonnet46"),
        ("gemini-2.5-pro", "gemini25pro"),
        ("argo:gpt-4.1-nano", "gpt41nano"),
        ("gpt5nano", "gpt5nano"),
    ],
)
def test_chat_aliases_and_ids(name, internal):
    assert resolve_model(name) == internal


@pytest.mark.parametrize(
    ("name", "internal"),
    [
        ("argo:text-embedding-3-small", "v3small"),
        ("text-embedding-3-small", "v3small"),
        ("argo/text-embedding-ada-002", "ada002"),
        ("V3LARGE", "v3large"),
    ],
)
def test_embedding_aliases(name, internal):
    assert resolve_model(name, "embed") == internal


def test_internal_ids_pass_through_for_every_builtin_model():
    for kind in ("chat", "embed"):
        for model_id, aliases in BUILTIN.models(kind).items():
            assert resolve_model(model_id, kind) == model_id
            for alias in aliases:
                assert resolve_model(alias, kind) == model_id


def test_unknown_model_is_404_with_suggestions():
    with pytest.raises(ProxyError) as caught:
        resolve_model("claude-sonet-4")
    err = caught.value
    assert err.status == 404
    assert err.code == "model_not_found"
    assert err.param == "model"
    assert "did you mean" in err.message.lower()
    assert "'argo:claude-sonnet-4'" in err.message
    assert err.body()["error"]["type"] == "not_found_error"


def test_unknown_model_without_close_match_still_points_to_the_list():
    with pytest.raises(ProxyError) as caught:
        resolve_model("zzzzzzzzzzzz")
    assert "did you mean" not in caught.value.message.lower()
    assert "/v1/models" in caught.value.message


def test_unknown_model_uses_the_fallback_when_given():
    assert resolve_model("no-such-model", fallback="argo:gpt-4o") == "gpt4o"
    assert resolve_model(None, fallback="gpt5nano") == "gpt5nano"
    assert resolve_model("nope", "embed", fallback="argo:text-embedding-3-small") == "v3small"


def test_known_model_ignores_the_fallback():
    assert resolve_model("argo:o3", fallback="argo:gpt-4o") == "gpto3"


def test_missing_model_without_fallback_is_400():
    with pytest.raises(ProxyError) as caught:
        resolve_model("")
    assert caught.value.status == 400
    assert caught.value.param == "model"


def test_embedding_model_on_chat_says_so():
    with pytest.raises(ProxyError) as caught:
        resolve_model("argo:text-embedding-3-small", "chat")
    assert caught.value.status == 404
    assert "embedding model" in caught.value.message
    with pytest.raises(ProxyError) as caught:
        resolve_model("argo:gpt-4o", "embed")
    assert "chat model" in caught.value.message


def test_suggestions_name_each_model_once():
    hints = BUILTIN.suggestions("gpt-o3-min")
    assert hints[0] == "argo:gpt-o3-mini"
    ids = [resolve_model(h) for h in hints]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        ("gpt4o", "openai"),
        ("gpto1preview", "openai"),
        ("gpt5nano", "openai"),
        ("v3small", "openai"),
        ("ada002", "openai"),
        ("claudeopus4", "anthropic"),
        ("claudesonnet35v2", "anthropic"),
        ("gemini25pro", "google"),
        ("gemini31flashlite", "google"),
        ("llama3", "unknown"),
    ],
)
def test_model_family(model_id, family):
    assert model_family(model_id) == family


def test_only_o1_preview_and_o1_mini_refuse_system_messages():
    assert not accepts_system_messages("gpto1preview")
    assert not accepts_system_messages("gpto1mini")
    for model_id in ("gpto1", "gpto3mini", "gpt4o", "claudesonnet4", "gemini25pro"):
        assert accepts_system_messages(model_id)


def test_model_list_has_every_alias_with_its_internal_id():
    listing = list_models(created=123)
    assert listing["object"] == "list"
    by_id = {entry["id"]: entry for entry in listing["data"]}
    expected = {alias: mid for kind in ("chat", "embed") for mid, al in BUILTIN.models(kind).items() for alias in al}
    assert {alias: e["internal_name"] for alias, e in by_id.items()} == expected
    assert len(listing["data"]) == len(expected)  # no duplicates
    for entry in listing["data"]:
        assert entry["object"] == "model" and entry["created"] == 123
    assert by_id["argo:gpt-4o"]["owned_by"] == "openai"
    assert by_id["argo:claude-opus-4"]["owned_by"] == "anthropic"
    assert by_id["argo:claude-4-opus"]["internal_name"] == "claudeopus4"  # both claude spellings listed
    assert by_id["argo:gemini-2.5-pro"]["owned_by"] == "google"
    assert by_id["argo:text-embedding-3-large"]["internal_name"] == "v3large"


def test_model_list_created_is_stable_between_calls():
    assert list_models() == list_models()


def test_ambiguous_squashed_names_are_not_guessed():
    table = ModelTable({"ab1": ("argo:a-b1",), "a1b": ("argo:ab-1",)}, {})
    # 'argo:ab-1' (model a1b) and the id 'ab1' both squash to 'ab1': exact spellings still resolve,
    # a punctuation-free guess does not
    assert table.lookup("argo:a-b1") == "ab1"
    assert table.lookup("argo:ab-1") == "a1b"
    assert table.lookup("a.b.1") is None


