"""The one token estimator (argoproxy/pipeline/tokens.py): exact for short inputs, sampled past EXACT_CHARS, close to the
exact count on real text, and of bounded CPU cost whatever the text (issue 20, item 2)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from argoproxy.meter import tokens

ROOT = Path(__file__).resolve().parents[2]


def exact(text: str) -> int:
    return len(tokens.encoding().encode_ordinary(text))


def cpu(fn, *args):
    start = time.process_time()
    value = fn(*args)
    return value, time.process_time() - start


def test_short_texts_are_counted_exactly():
    text = "Hello there, how are you today? " * 100
    assert tokens.count_text(text) == exact(text)
    assert tokens.count_texts(["Hello", "there"]) == exact("Hello") + exact("there")
    assert tokens.count_text("") == 0 and tokens.count_texts([]) == 0


def test_long_real_text_is_estimated_within_three_percent():
    # One corpus's error depends on where the windows happen to fall (the project's own code moved between
    # -1.4% and +3.7% as single files came and went), so the bound is on the mean over orderings of it.
    for paths in (sorted((ROOT / "docs").glob("*.md")), sorted((ROOT / "argoproxy").rglob("*.py"))):
        errors = []
        for shift in range(0, len(paths), max(1, len(paths) // 6)):
            text = "\n".join(p.read_text() for p in paths[shift:] + paths[:shift])
            assert len(text) > tokens.EXACT_CHARS  # sampled
            errors.append(abs(tokens.count_text(text) - exact(text)) / exact(text))
        assert sum(errors) / len(errors) < 0.03 and max(errors) < 0.06, errors


def test_hostile_text_costs_bounded_cpu():
    # tiktoken's slowest inputs: a run of one letter, of one punctuation mark, of spaces (0.6 µs a character)
    for text in ("a" * (8 << 20), "!" * (8 << 20), " " * (8 << 20)):
        count, spent = cpu(tokens.count_text, text)
        assert spent < 0.5, spent  # about 30 ms; the whole text took 5 s
        assert abs(count - exact(text[:1 << 20]) * 8) < 0.02 * count


def test_many_texts_cost_one_count():
    texts = ["a"] * 1_000_000  # per-text calls alone took seconds
    count, spent = cpu(tokens.count_texts, texts)
    assert spent < 0.5, spent
    assert abs(count - 1_000_000) < 20_000  # " a" is one token, as "a" is


def test_a_request_counts_messages_system_prompt_and_tools():
    body = {"messages": [{"role": "user", "content": "Say hello"},
                         {"role": "user", "content": [{"type": "text", "text": "to everyone"},
                                                      {"type": "image_url", "image_url": {"url": "x"}}]}],
            "system": "Be brief.", "tools": [{"type": "function", "function": {"name": "f"}}]}
    tools_json = '[{"type": "function", "function": {"name": "f"}}]'
    assert tokens.count_request_tokens(body) == sum(map(exact, ["Say hello", "to everyone", "Be brief.", tools_json]))
    assert tokens.count_request_tokens({"prompt": [1, 2, 3]}) == 3


def test_tool_calls_and_their_results_are_counted():
    """An agent's history is largely tool calls (the files it wrote) and their results: counted as nothing,
    Claude Code and Codex saw a context far emptier than it was and compacted too late."""
    text = "word " * 4000
    chat_call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "Write", "arguments": json.dumps({"text": text})}}]}
    native = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Write", "input": {"text": text}},
                                               {"type": "thinking", "thinking": text}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "text", "text": text}]}]}
    assert tokens.count_request_tokens({"messages": [chat_call]}) >= 4000
    assert tokens.count_request_tokens({"messages": [native]}) >= 8000
    assert tokens.count_request_tokens({"messages": [result]}) >= 4000
