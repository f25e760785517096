"""A turn's blocks as chat content: search results, tool references, content documents
(argoproxy/fronts/messages/content.py)."""

from __future__ import annotations

import pytest

from argoproxy.fronts.messages.request import request_to_chat
from tests.unit.fronts.messages.test_shapes import refused_at


def test_a_search_result_is_sent_as_its_title_source_and_text():
    """A search result the client found (retrieval) has a chat form: text. It was refused as a block of no chat
    form, in a turn and in a tool result."""
    result = {"type": "search_result", "source": "https://example.com/a", "title": "A page",
              "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
              "citations": {"enabled": True}, "cache_control": {"type": "ephemeral"}}
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [result, {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [result]}]}]})
    text = "A page\nhttps://example.com/a\n\nfirst\nsecond"
    assert chat["messages"][0]["content"] == [{"type": "text", "text": text}, {"type": "text", "text": "q"}]
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": text}


@pytest.mark.parametrize("change,param", [
    ({"source": None}, "source"), ({"title": 5}, "title"), ({"content": "x"}, "content"),
    ({"content": [{"type": "image"}]}, "content.0"), ({"citations": {"enabled": "yes"}}, "citations.enabled"),
    ({"citations": None}, "citations"),
    ({"cache_control": {"type": "forever"}}, "cache_control.type")])
def test_a_search_results_fields_are_checked(change, param):
    result = {"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]}
    result = {k: v for k, v in {**result, **change}.items() if v is not None or k == "citations"}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [result]}]}
    assert refused_at(body) == f"messages.0.content.0.{param}"


def test_a_tool_reference_in_a_tool_result_is_the_tools_name():
    """A client-side tool search answers with tool_reference blocks; a chat upstream has every tool already."""
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "find_tool", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "tool_reference", "tool_name": "get_weather"},
            {"type": "tool_reference", "tool_name": "get_time", "cache_control": None}]}]}]})
    assert chat["messages"][1] == {"role": "tool", "tool_call_id": "t1", "content": "get_weather\nget_time"}
    for bad in ("", "a b", 5, None):
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "tool_reference", "tool_name": bad}]}]}]}
        assert refused_at(body) == "messages.0.content.0.content.0.tool_name"


def test_a_content_documents_images_are_sent_as_images():
    """A `content` document source holds text and image blocks: the images were refused, a chat upstream with
    vision takes them."""
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Slides", "source": {"type": "content", "content": [
            {"type": "text", "text": "page one"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}}]}},
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/c.png"}}]}}]}]})
    assert chat["messages"][0]["content"] == [
        {"type": "text", "text": "Slides\n\npage one"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/c.png"}}]
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}}]}}]}]}
    assert refused_at(body) == "messages.0.content.0.source.content.0.source.media_type"
