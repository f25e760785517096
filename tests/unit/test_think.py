"""The think-tag splitter: any chunking, tags split anywhere, implicit starts, n > 1, nothing held without tags."""


import pytest

from argoproxy.pipeline.think import StreamThink, ThinkConfig, ThinkSplitter, split_text, transform_completion

STRIP = ThinkConfig("strip")
REASON = ThinkConfig("reasoning")
TEXT = "<think>I am thinking</think>\n\nHello world"


def feed_in_pieces(text, cfg, size):
    s = ThinkSplitter(cfg)
    answer, reasoning = [], []
    for i in range(0, len(text), size):
        a, r = s.feed(text[i:i + size])
        answer.append(a)
        reasoning.append(r)
    a, r = s.finish()
    return "".join(answer) + a, "".join(reasoning) + r


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_every_chunking_gives_the_same_split(size):
    assert feed_in_pieces(TEXT, STRIP, size) == ("Hello world", "")
    assert feed_in_pieces(TEXT, REASON, size) == ("Hello world", "I am thinking")


def test_no_tags_nothing_held_back():
    s = ThinkSplitter(STRIP)
    assert s.feed("Hello") == ("Hello", "")
    assert s.feed(" a < b") == (" a < b", "")
    assert s.idle


def test_only_a_possible_tag_prefix_is_held():
    s = ThinkSplitter(STRIP)
    assert s.feed("Hi <th") == ("Hi ", "")
    assert s.feed("ere") == ("<there", "")


def test_unclosed_block_at_end_is_reasoning():
    assert split_text("A<think>cut off", STRIP) == ("A", "")
    assert split_text("A<think>cut off", REASON) == ("A", "cut off")


def test_implicit_start_only_end_tag():
    cfg = ThinkConfig("reasoning", starts_inside=True)
    assert split_text("reasoning here</think>\n\nAnswer", cfg) == ("Answer", "reasoning here")
    assert split_text("reasoning here</think>Answer", ThinkConfig("strip", starts_inside=True)) == ("Answer", "")


def test_implicit_start_with_explicit_tag_anyway():
    cfg = ThinkConfig("reasoning", starts_inside=True)
    for size in (1, 3, 50):
        assert feed_in_pieces("<think>r</think>A", cfg, size) == ("A", "r")


def test_implicit_start_never_closed_keeps_the_answer_in_strip_mode():
    cfg = ThinkConfig("strip", starts_inside=True)
    assert split_text("Just an answer, no reasoning.", cfg) == ("Just an answer, no reasoning.", "")


def test_custom_tags():
    cfg = ThinkConfig("strip", start="<seed:think>", end="</seed:think>")
    assert split_text("<seed:think>x</seed:think>y", cfg) == ("y", "")


def test_non_streamed_completion_n2():
    obj = {"object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "<think>a</think>One"}},
        {"index": 1, "message": {"role": "assistant", "content": "Two"}}]}
    assert transform_completion(obj, REASON)
    assert obj["choices"][0]["message"] == {"role": "assistant", "content": "One", "reasoning_content": "a"}
    assert obj["choices"][1]["message"]["content"] == "Two"


def _chunk(index, content=None, finish=None, role=None):
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def test_stream_split_tag_across_events_two_choices_interleaved():
    pieces = ["<th", "ink>hid", "den</th", "ink>", "Vis", "ible"]
    chunks = [_chunk(i, role="assistant", content="") for i in (0, 1)]
    for p in pieces:
        chunks += [_chunk(0, p), _chunk(1, p.upper() if "ink" not in p and "th" not in p else p)]
    chunks += [_chunk(0, finish="stop"), _chunk(1, finish="stop")]
    st = StreamThink(REASON)
    out = [st.chunk(c) for c in chunks]
    assert st.flush() is None
    content = {0: "", 1: ""}
    reasoning = {0: "", 1: ""}
    for c in filter(None, out):
        for ch in c["choices"]:
            content[ch["index"]] += ch["delta"].get("content") or ""
            reasoning[ch["index"]] += ch["delta"].get("reasoning_content") or ""
    assert content == {0: "Visible", 1: "VISIBLE"}
    assert reasoning == {0: "hidden", 1: "hidden"}


def test_stream_held_tail_released_with_finish_reason():
    st = StreamThink(STRIP)
    assert st.chunk(_chunk(0, "a <"))["choices"][0]["delta"]["content"] == "a "
    last = st.chunk(_chunk(0, finish="stop"))
    assert last["choices"][0]["delta"]["content"] == "<"


def test_an_answer_of_many_short_blocks_takes_linear_time():
    # A client can ask a model for this; slicing the rest of the text at every tag made 1 MB take 2 s.
    import time
    cfg = ThinkConfig("reasoning", "<think>", "</think>", False)
    started = time.perf_counter()
    answer, reasoning = split_text("<think>a</think>\n b" * 60_000, cfg)
    assert time.perf_counter() - started < 0.5
    assert (answer, reasoning) == ("b" * 60_000, "a" * 60_000)  # blank lines after a block are removed


def test_an_unclosed_implicit_block_is_held_only_up_to_a_bound():
    """Strip mode, a model that starts inside reasoning: its text is held in case no </think> comes (then it
    was the answer), but not past IMPLICIT_HOLD characters: an endless block costs a bounded amount."""
    from argoproxy.pipeline.think import IMPLICIT_HOLD, ThinkConfig, ThinkSplitter
    short = ThinkSplitter(ThinkConfig("strip", starts_inside=True))
    assert short.feed("no tag at all") == ("", "") and short.finish() == ("no tag at all", "")
    endless = ThinkSplitter(ThinkConfig("strip", starts_inside=True))
    piece = "x" * 65536
    for _ in range(IMPLICIT_HOLD // len(piece) + 8):
        assert endless.feed(piece) == ("", "")
        assert sum(map(len, endless.implicit_text)) <= IMPLICIT_HOLD
    assert endless.feed("</think>answer") == ("answer", "")
    assert endless.finish() == ("", "")
    reasoning = ThinkSplitter(ThinkConfig("reasoning", starts_inside=True))
    assert reasoning.feed(piece) == ("", piece) and reasoning.implicit_text == []  # sent already: not held


def test_a_stream_ended_early_with_choices_of_mixed_index_types_is_flushed_not_crashed():
    # An upstream's choices numbered 0 and null (or "0"): ordering them raised TypeError and cut the stream.
    st = StreamThink(REASON)
    st.chunk({"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "a <th"}}, {"index": None, "delta": {"content": "b <th"}},
        {"index": "0", "delta": {"content": "c <th"}}]})
    flushed = st.flush()
    assert [c["delta"]["content"] for c in flushed["choices"]] == ["<th", "<th", "<th"]


def test_reasoning_spelled_reasoning_is_given_as_reasoning_content_too():
    """vLLM 0.10+ and OpenRouter send `reasoning`; chat clients read `reasoning_content`: both are given, in every
    mode that transforms (keep leaves answers as they came), whole and streamed, raw events included."""
    from argoproxy.pipeline.filters import think_items
    from argoproxy.upstream import sse
    for cfg in (STRIP, REASON):
        obj = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "reasoning": "plan"}}]}
        assert transform_completion(obj, cfg)
        assert obj["choices"][0]["message"] == {"role": "assistant", "content": "Hi", "reasoning": "plan",
                                                "reasoning_content": "plan"}
        raw = sse.encode({"choices": [{"index": 0, "delta": {"reasoning": "pl"}, "finish_reason": None}]})
        out = list(think_items([raw], cfg))
        assert [o["choices"][0]["delta"] for o in out] == [{"reasoning": "pl", "reasoning_content": "pl"}]
    both = {"choices": [{"index": 0, "message": {"content": "Hi", "reasoning": "a", "reasoning_content": "b"}}]}
    assert not transform_completion(both, STRIP) and both["choices"][0]["message"]["reasoning_content"] == "b"


def test_strip_gives_reasoning_to_a_client_that_asked():
    from argoproxy.pipeline.think import for_client
    assert for_client(STRIP, True) == REASON and for_client(STRIP, False) is STRIP
    assert for_client(REASON, True) is REASON and for_client(None, True) is None
