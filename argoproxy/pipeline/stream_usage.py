"""Token usage of answers whose upstream sends none, and of streams the client did not ask usage for.

Usage matters to the proxy itself (tpm budgets, metrics, journals) and to the front doors' clients (Messages
and Responses always carry it). OpenAI-style upstreams send it on a stream only when asked
(`stream_options.include_usage`); some never do (llama.cpp's server ignores the option). So:

- the front doors always ask; the chat door asks when a tpm budget or a team key applies to the call, or its
  answer costs money (its model is priced above 0, or has no price), and then strips the usage from what its
  client gets, unless the client asked too (UsageTap);
- when no usage comes, it is estimated with the count_tokens estimator: the prompt from the request, the
  output from the deltas as they passed (OutputCount: the first SAMPLE characters counted, scaled to the
  whole length), and the call is marked `usage_estimated` in the journal.
"""

from __future__ import annotations

import io
import re
from typing import Any, Callable, Iterable, Iterator, TypeGuard

from argoproxy.pipeline.answer_shape import MAX_COUNT
from argoproxy.upstream import sse
from argoproxy.meter import count_text, count_texts, estimated_prompt

# The first this many characters of an answer are kept (and counted only if no usage comes); the rest is only
# measured, and the count scaled to it: a stream costs no counting at all when its upstream sends usage, and at
# most one estimator pass over SAMPLE characters when it does not, whatever its length.
SAMPLE = 16384


class OutputCount:
    """Output tokens of a stream, estimated from its text, reasoning and tool-call argument deltas."""

    def __init__(self, sample: int = SAMPLE) -> None:
        self._sample: io.StringIO | None = None  # made at the first text
        self._size = sample  # characters counted; past them, measured and scaled
        self._kept = 0
        self._chars = 0

    def add(self, text: str) -> None:
        self._chars += len(text)
        if self._kept < self._size:
            if self._sample is None:
                self._sample = io.StringIO()
            piece = text[:self._size - self._kept]
            self._sample.write(piece)
            self._kept += len(piece)

    def add_delta(self, delta: dict[str, Any]) -> None:
        """A chat chunk's delta (or a whole message, or a completions choice): every text it carries. An upstream
        may send anything there: what is not an object carries no text."""
        if not isinstance(delta, dict):
            return
        for key in ("content", "reasoning_content", "reasoning", "text"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                self.add(value)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self.add_call(call)

    def add_call(self, call: dict[str, Any]) -> None:
        """A tool call or a fragment of one: its name and arguments."""
        function = call.get("function")
        if isinstance(function, dict):
            for key in ("name", "arguments"):
                if isinstance(function.get(key), str) and function[key]:
                    self.add(function[key])

    @property
    def seen(self) -> bool:
        """Any text was added."""
        return self._chars > 0

    @property
    def characters(self) -> int:
        """Characters added so far (a bound on any one string of the answer's)."""
        return self._chars

    def total(self) -> int:
        if self._sample is None or not self._kept:
            return 0
        sample = count_text(self._sample.getvalue())
        return sample if self._chars == self._kept else round(sample * self._chars / self._kept)


def countable(value: Any) -> TypeGuard[int]:
    """A token count an observer can add: a positive int no larger than an answer's count can be (a relayed
    upstream's 10^400 made a counter's float conversion, or a shared int64 cell, fail on every request)."""
    return type(value) is int and 0 < value <= MAX_COUNT


def usage_counts(usage: dict[str, Any]) -> tuple[Any, Any]:
    """(prompt, completion) of a usage object in OpenAI's names or Anthropic's (a forwarded answer's usage is
    read in the latter: native_usage, below); either may be missing or not a count."""
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    return prompt, usage.get("completion_tokens", usage.get("output_tokens"))


def estimated_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """An OpenAI usage object from estimated counts."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def prompt_tokens(chat: dict[str, Any]) -> int:
    """The count_tokens estimate of a chat request's prompt (messages, system, tool definitions) with its chat
    template's overhead (meter/template_overhead.py)."""
    return estimated_prompt(chat)


# OpenAI's `"usage": null` on each chunk of a stream asked for usage, as written: taken out as it is, so a client
# that did not ask gets the bytes it would have got (a chunk is encoded again only when this is not found once).
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null|"usage"\s*:\s*null\s*,')
_COMPACT_NULL = b',"usage":null'
KEPT_BYTES = 32768  # a metered stream's first events kept unparsed, for its estimate should no usage come


class UsageTap:
    """A tap on the chat door's stream whose usage the proxy asked for (a budget or a key counts it, or it costs
    money; the meter, argoproxy/meter/, reads what it finds): the usage is kept (and taken out of the stream when
    the client did not ask for it); without any, the stream is counted. An event that holds no usage object is not
    parsed as it passes: the first KEPT_BYTES of them are kept, and read only should no usage come (their texts
    counted, scaled to the bytes of every event)."""

    def __init__(self, strip: bool) -> None:
        self.parse = sse.sse_object
        self.strip = strip
        self.usage: dict[str, Any] | None = None
        self.output = OutputCount()  # the texts of the events parsed as they passed
        self.kept: list[bytes] = []  # the first events not parsed, for an estimate
        self.kept_bytes = 0
        self.unread_bytes = 0  # of every event not parsed

    def item(self, item: bytes | dict[str, Any]) -> bytes | dict[str, Any] | None:
        """A stream item as the client gets it (None: left out, it only carried usage)."""
        if type(item) is bytes:
            said = item.count(b'"usage"')
            if said == 0 or said == 1 and _COMPACT_NULL in item:  # no usage object in it (OpenAI's null)
                if said and self.strip:
                    item = item.replace(_COMPACT_NULL, b"", 1)
                self.unread_bytes += len(item)
                if self.kept_bytes < KEPT_BYTES:
                    self.kept.append(item)
                    self.kept_bytes += len(item)
                return item
        return self._read(item)

    def _read(self, item: bytes | dict[str, Any]) -> bytes | dict[str, Any] | None:
        """An item that may hold a usage object: parsed, its texts counted and its usage kept."""
        obj = self.parse(item) if isinstance(item, bytes) else item
        if obj is None:
            return item
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict):
                self.output.add_delta(choice.get("delta") or choice)
        if "usage" not in obj:
            return item
        if isinstance(obj["usage"], dict):
            self.usage = obj["usage"]
        if not self.strip:
            return item
        return _without_usage(item, obj)

    def settled(self, body: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        """(the stream's usage, whether it is an estimate)."""
        if self.usage is not None:
            return self.usage, False
        prompt = prompt_tokens(body) if isinstance(body, dict) else 0
        return estimated_usage(prompt, self.output.total() + self.unread_output()), True

    def unread_output(self) -> int:
        """The output tokens of the events not parsed: those kept, counted, scaled to the bytes of them all."""
        output = OutputCount()
        for item in self.kept:
            obj = self.parse(item)
            choices = obj.get("choices") if obj is not None else None
            for choice in choices if isinstance(choices, list) else ():
                if isinstance(choice, dict):
                    output.add_delta(choice.get("delta") or choice)
        counted = output.total()
        if not counted or self.unread_bytes <= self.kept_bytes:
            return counted
        return round(counted * self.unread_bytes / self.kept_bytes)


def _without_usage(item: bytes | dict[str, Any], obj: dict[str, Any]) -> bytes | dict[str, Any] | None:
    """The item without its usage, for a client that did not ask for it (None: it held nothing else)."""
    usage = obj.pop("usage")
    if not obj.get("choices"):
        return None
    if type(item) is not bytes:
        return obj
    if usage is None:
        stripped, found = _NULL_USAGE.subn(b"", item)
        if found == 1:
            return stripped
    return sse.encode(obj)


# A relayed native answer's usage, read from its bytes as they pass (the proxy does not parse those answers): the
# counts of its usage objects, in OpenAI's names or Anthropic's and the Responses API's. Output from the last
# usage object (streams end with the cumulative one; a whole answer's comes after its content, so a tool's input
# that holds a "usage" member does not count); input from the last that has it, else the first (Anthropic's
# message_start). Anthropic's input_tokens leave out cached tokens: those are added. The parts priced apart (cached
# reads, cache writes, reasoning) are kept too (argoproxy/spend/usage_shapes.py reads them).
_COUNT = re.compile(rb'"(input_tokens|prompt_tokens|cache_creation_input_tokens|cache_read_input_tokens|'
                    rb'output_tokens|completion_tokens|cached_tokens|cache_write_tokens|reasoning_tokens|'
                    rb'ephemeral_1h_input_tokens)"\s*:\s*(\d{1,12})')
USAGE_WINDOW = 4096  # bytes after a `"usage"` that are searched for its counts
_INPUTS = (b"input_tokens", b"prompt_tokens", b"cache_creation_input_tokens", b"cache_read_input_tokens")
# Ollama's and llama.cpp's own counts, where they put them: Ollama's last object (prompt_eval_count, eval_count),
# llama.cpp's `timings` (prompt_n, predicted_n) and its /completion's tokens_evaluated, tokens_predicted. Read
# around the last place one is marked (a C-speed search of each read), when no usage object says them.
_NATIVE_MARKS = (b'eval_count"', b'"timings"', b'"tokens_predicted"')
_NATIVE = re.compile(rb'"(prompt_eval_count|eval_count|prompt_n|predicted_n|tokens_evaluated|tokens_predicted)"'
                     rb'\s*:\s*(\d{1,12})')
_NATIVE_INPUTS = (b"prompt_eval_count", b"prompt_n", b"tokens_evaluated")
_NATIVE_OUTPUTS = (b"eval_count", b"predicted_n", b"tokens_predicted")
# The texts of a relayed answer, for an estimate when it carries no usage: Responses' `delta`s, Messages' `text`,
# `thinking` and `partial_json`, chat's `content` and tool `arguments`, Ollama's generated `response`, as written
# (escapes count as characters).
_TEXT = re.compile(rb'"(delta|text|thinking|partial_json|content|arguments|response)"\s*:\s*"((?:[^"\\]|\\.)*)"')
MAX_SPANS = 32  # "usage" objects read per read of the answer, at its start and at its end


def _usage_spans(buf: bytes, from_start: bool, carried: int = 0) -> list[tuple[int, int]]:
    """Where the usage objects of `buf` are (start, end), in order: each ends at the next "usage" or
    USAGE_WINDOW bytes on, so a byte is searched once. Only the last MAX_SPANS matter (the last counts win),
    the first ones while no count was found yet, and those starting in the `carried` bytes of the read before
    (an object cut there, read whole now): a body of "usage" repeated cost 2.3 s of CPU per MB."""
    every = buf.count(b'"usage"') <= 2 * MAX_SPANS
    starts: list[int] = []
    at = buf.find(b'"usage"')
    while at >= 0 and (every or len(starts) < MAX_SPANS and (from_start or at < carried)):
        starts.append(at)
        at = buf.find(b'"usage"', at + 7)
    if not every:
        tail: list[int] = []
        at = buf.rfind(b'"usage"')
        while at >= 0 and len(tail) < MAX_SPANS and (not starts or at > starts[-1]):
            tail.append(at)
            at = buf.rfind(b'"usage"', 0, at)
        starts += reversed(tail)
    ends = starts[1:] + [len(buf)]
    return [(at, min(end, at + USAGE_WINDOW)) for at, end in zip(starts, ends)]


class AnswerTexts:
    """The texts a relayed answer carried, for an estimate (OutputCount: a sample counted, the rest measured).
    A Responses stream says each text several times (its deltas, then whole in the .done events and the final
    response): where string `delta`s come, they alone are counted. A text cut between two reads is missed."""

    def __init__(self) -> None:
        self.deltas = OutputCount()
        self.others = OutputCount()
        self.delta_seen = False

    def add(self, data: bytes) -> None:
        for key, text in _TEXT.findall(data):
            delta = key == b"delta"
            self.delta_seen |= delta
            (self.deltas if delta else self.others).add(text.decode("utf-8", "replace"))

    def total(self) -> int:
        return (self.deltas if self.delta_seen else self.others).total()


def _native_counts(buf: bytes) -> dict[bytes, int] | None:
    """The counts Ollama or llama.cpp put around the last place `buf` marks one (None: no mark)."""
    at = max(buf.rfind(mark) for mark in _NATIVE_MARKS)
    if at < 0:
        return None
    return {name: int(value) for name, value in _NATIVE.findall(buf, max(0, at - USAGE_WINDOW), at + USAGE_WINDOW)}


def native_usage(chunks: Iterable[bytes], counted: Callable[[dict[str, int], bool], None],
                 body: dict[str, Any] | None = None) -> Iterator[bytes]:
    """`chunks` as they are; once they end (also when the client leaves first), `counted(usage, estimated)` with
    the usage (input_tokens, output_tokens) the usage objects they carry say (the answer side records it), or
    Ollama's and llama.cpp's own counts. When none carried a count (a client gone before the end, an upstream
    that sends none), the usage is estimated: the request `body`'s prompt and the texts the answer carried."""
    first: dict[bytes, int] = {}
    last: dict[bytes, int] = {}
    native: dict[bytes, int] = {}
    first_at = -1  # where the first usage object with counts starts in the stream
    carry, passed = b"", 0  # the end of the bytes before (an object or a number split between reads), their count
    said = AnswerTexts() if body is not None else None  # only an estimate reads the texts
    try:
        for data in chunks:
            if said is not None:
                said.add(data)
            buf = carry + data if carry else data
            for at, end in _usage_spans(buf, first_at < 0, len(carry)):  # one met again in `carry` is read again
                counts = {name: int(value) for name, value in _COUNT.findall(buf, at, end)}
                if counts:
                    where = passed - len(carry) + at
                    if first_at < 0 or where == first_at:
                        first, first_at = counts, where
                    last = counts
            native = _native_counts(buf) or native
            carry = buf[-USAGE_WINDOW:]
            passed += len(data)
            yield data
    finally:
        _report_usage(counted, first, last, native, said, body)


def _report_usage(counted: Callable[[dict[str, int], bool], None], first: dict[bytes, int], last: dict[bytes, int],
                  native: dict[bytes, int], said: AnswerTexts | None, body: dict[str, Any] | None) -> None:
    """`counted` with what a relayed answer used: its usage objects' counts, else Ollama's or llama.cpp's own,
    else an estimate (when the texts were read); nothing when there is none of them."""
    if last:
        inputs = last if any(name in last for name in _INPUTS) else first
        prompt = inputs.get(b"prompt_tokens", 0) or sum(inputs.get(name, 0) for name in _INPUTS[:1] + _INPUTS[2:])
        output = last.get(b"output_tokens", last.get(b"completion_tokens", 0))
        counted(_with_parts({"input_tokens": prompt, "output_tokens": output}, inputs, last), False)
    elif native:
        counted({"input_tokens": next((native[n] for n in _NATIVE_INPUTS if n in native), 0),
                 "output_tokens": next((native[n] for n in _NATIVE_OUTPUTS if n in native), 0)}, False)
    elif said is not None and body is not None:
        counted({"input_tokens": prompt_tokens(body), "output_tokens": said.total()}, True)


def _with_parts(usage: dict[str, Any], inputs: dict[bytes, int], last: dict[bytes, int]) -> dict[str, Any]:
    """A relayed answer's usage in the Responses API's shape (input and output hold their parts), with the parts
    its usage objects named: cached reads, cache writes (one-hour ones apart) and reasoning."""
    cached = inputs.get(b"cache_read_input_tokens") or inputs.get(b"cached_tokens", 0)
    written = inputs.get(b"cache_creation_input_tokens") or inputs.get(b"cache_write_tokens", 0)
    hour = inputs.get(b"ephemeral_1h_input_tokens", 0)
    if cached or written:
        usage["input_tokens_details"] = {"cached_tokens": cached, "cache_write_tokens": written,
                                         **({"cache_write_1h_tokens": hour} if hour else {})}
    if last.get(b"reasoning_tokens"):
        usage["output_tokens_details"] = {"reasoning_tokens": last[b"reasoning_tokens"]}
    return usage
