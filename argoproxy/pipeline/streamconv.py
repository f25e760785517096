"""Stream <-> non-stream conversion of OpenAI objects (pure: dicts in, dicts out).

Owns the two directions openai-forward's ``--mode`` needs:

* aggregation: ``chat.completion.chunk`` / ``text_completion`` chunks -> one response object
  (``aggregate_chat``, ``aggregate_completion``);
* packaging: one response object -> the chunk sequence a real upstream would have streamed
  (``package_chat``, ``package_completion``).

Only dicts are produced; SSE framing (``data: ...``, ``data: [DONE]``) belongs to the pipeline.
The shapes follow the ``openai`` SDK's types so that the SDK cannot tell a converted response
from a native one (see tests/unit/test_streamconv.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from argoproxy.pipeline.answer_shape import check_chunk
from argoproxy.pipeline.call_keys import CallKeys
from argoproxy.errors import ProxyError

# Delta keys that carry reasoning text: DeepSeek/DashScope/vLLM<0.10 say "reasoning_content",
# newer vLLM and OpenRouter say "reasoning". We keep whichever names the upstream used.
REASONING_KEYS = ("reasoning_content", "reasoning")

# Delta keys handled explicitly below; anything else non-null is carried over verbatim.
_HANDLED_DELTA_KEYS = {"role", "content", "tool_calls", "function_call", "refusal", *REASONING_KEYS}


# --------------------------------------------------------------------------- errors


def raise_if_error(chunk: dict[str, Any]) -> None:
    """Raise ProxyError when a streamed object is an error object instead of a chunk."""
    if "error" not in chunk or chunk.get("error") is None:
        return
    err = chunk["error"]
    if not isinstance(err, dict):
        # Some servers stream {"error": "text"}; keep the text as the message.
        raise ProxyError(502, str(err))
    code = err.get("code")
    raise ProxyError(
        _status_from_code(code),
        str(err.get("message") or "upstream stream reported an error"),
        type=err.get("type") if isinstance(err.get("type"), str) else None,
        param=err.get("param") if isinstance(err.get("param"), str) else None,
        code=None if code is None else str(code),
    )


def _status_from_code(code: Any) -> int:
    # vLLM/SGLang put the HTTP status in "code"; OpenAI puts a string there. Only a
    # numeric 4xx/5xx is trusted as a status, everything else is a bad upstream (502).
    try:
        status = int(code)
    except (TypeError, ValueError):
        return 502
    return status if 400 <= status <= 599 else 502


# --------------------------------------------------------------------------- aggregation


class _ResponseHead:
    """Response-level fields taken from the first chunk that carries them."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        self.seen_any = False

    def take(self, chunk: dict[str, Any], names: tuple[str, ...]) -> None:
        self.seen_any = True
        for name in names:
            # Azure's leading content-filter chunk has id "" and model "": skip empties.
            if name not in self.fields and chunk.get(name) not in (None, ""):
                self.fields[name] = chunk[name]
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]  # usage is cumulative or final: the last one wins


def _merge_logprobs(acc: dict[str, Any] | None, new: Any) -> dict[str, Any] | None:
    """Concatenate the list fields of two logprobs objects (chat: content/refusal)."""
    if not isinstance(new, dict):
        return acc
    if acc is None:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in new.items()}
    for key, value in new.items():
        if isinstance(value, list):
            if isinstance(acc.get(key), list):
                acc[key].extend(value)
            else:
                acc[key] = list(value)
        elif key not in acc or acc[key] is None:
            acc[key] = value
    return acc


class _ChatChoice:
    """Accumulates the deltas of one choice index."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.role: str | None = None
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.reasoning: list[str] = []
        self.reasoning_keys: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.call_keys = CallKeys()  # which call each tool-call fragment adds to
        self.function_call: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}
        self.logprobs: dict[str, Any] | None = None
        self.finish_reason: str | None = None

    def add(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if self.role is None and delta.get("role"):
            self.role = delta["role"]
        # Appended in place: `list + [piece]` copied the whole list per chunk (50,000 chunks took 7 s).
        if delta.get("content") is not None:
            if self.content is None:
                self.content = []
            self.content.append(delta["content"])
        if delta.get("refusal") is not None:
            if self.refusal is None:
                self.refusal = []
            self.refusal.append(delta["refusal"])
        self._add_reasoning(delta)
        for position, fragment in enumerate(delta.get("tool_calls") or []):
            self._add_tool_fragment(self.call_keys.key(position, fragment), fragment)
        if delta.get("function_call"):
            self._add_function_call(delta["function_call"])
        for key, value in delta.items():
            if key not in _HANDLED_DELTA_KEYS and value is not None:
                self.extra[key] = value
        self.logprobs = _merge_logprobs(self.logprobs, choice.get("logprobs"))
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]

    def _add_reasoning(self, delta: dict[str, Any]) -> None:
        present = [k for k in REASONING_KEYS if delta.get(k) is not None]
        if not present:
            return
        # Some servers send both names with the same text in one delta: count it once.
        self.reasoning.append(delta[present[0]])
        for key in present:
            if key not in self.reasoning_keys:
                self.reasoning_keys.append(key)

    def _add_tool_fragment(self, index: int, fragment: dict[str, Any]) -> None:
        function = fragment.get("function") or {}
        call = self.tool_calls.get(index)
        if call is None:
            call = self.tool_calls[index] = {
                "id": fragment.get("id"),
                "type": fragment.get("type") or "function",
                "name": function.get("name"),
                "arguments": [],
            }
        else:  # id/type/name come from the first fragment that has them
            call["id"] = call["id"] or fragment.get("id")
            call["name"] = call["name"] or function.get("name")
        if function.get("arguments"):
            call["arguments"].append(function["arguments"])

    def _add_function_call(self, fragment: dict[str, Any]) -> None:
        # Legacy (pre-tools) function calling streams the same way, without an index.
        if self.function_call is None:
            self.function_call = {"name": fragment.get("name"), "arguments": []}
        self.function_call["name"] = self.function_call["name"] or fragment.get("name")
        if fragment.get("arguments"):
            self.function_call["arguments"].append(fragment["arguments"])

    def message(self) -> dict[str, Any]:
        tool_calls = [
            {
                "id": call["id"],
                "type": call["type"],
                "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
            }
            for _, call in sorted(self.tool_calls.items())
        ]
        content = None if self.content is None else "".join(self.content)
        if content == "" and (tool_calls or self.function_call):
            content = None  # OpenAI answers tool-only turns with content null
        message: dict[str, Any] = {"role": self.role or "assistant", "content": content}
        if self.refusal is not None:
            message["refusal"] = "".join(self.refusal)
        for key in self.reasoning_keys:
            message[key] = "".join(self.reasoning)
        if tool_calls:
            message["tool_calls"] = tool_calls
        if self.function_call is not None:
            message["function_call"] = {**self.function_call, "arguments": "".join(self.function_call["arguments"])}
        message.update(self.extra)
        return message

    def result(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "message": self.message(),
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


def aggregate_chat(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Fold ``chat.completion.chunk`` dicts into one ``chat.completion`` dict.

    Raises ProxyError for an error object in the stream, and 502 for a stream without chunks.
    A choice whose stream never carried a finish_reason keeps ``finish_reason: None``: the
    pipeline can tell a truncated upstream from a finished one that way.
    """
    return _aggregate(chunks, "chat.completion", _ChatChoice,
                      ("id", "created", "model", "system_fingerprint", "service_tier"))


def _copy_optional(head: _ResponseHead, result: dict[str, Any]) -> None:
    for name in ("system_fingerprint", "service_tier"):
        if name in head.fields:
            result[name] = head.fields[name]
    if head.usage is not None:
        result["usage"] = head.usage


class _TextChoice:
    """Accumulates one choice of a legacy ``text_completion`` stream."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.text: list[str] = []
        self.logprobs: dict[str, Any] | None = None
        self.finish_reason: str | None = None

    def add(self, choice: dict[str, Any]) -> None:
        if choice.get("text"):
            self.text.append(choice["text"])
        # Legacy logprobs are parallel lists (tokens, token_logprobs, top_logprobs, text_offset).
        self.logprobs = _merge_logprobs(self.logprobs, choice.get("logprobs"))
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "text": "".join(self.text),
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


def aggregate_completion(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Fold legacy ``text_completion`` stream chunks into one ``text_completion`` dict."""
    return _aggregate(chunks, "text_completion", _TextChoice, ("id", "created", "model", "system_fingerprint"))


def _aggregate(chunks: Iterable[dict[str, Any]], object_name: str, choice_type: type,
               head_fields: tuple[str, ...]) -> dict[str, Any]:
    """Fold stream chunks: head fields from the first chunk that has them, choices merged by index."""
    folding = Fold(object_name, choice_type, head_fields)
    for chunk in chunks:
        folding.add(chunk)
    return folding.result()


class Fold:
    """A stream's chunks folded one at a time (what aggregate_chat and aggregate_completion do at once), for
    callers that see the chunks pass by: the journal's copy of a stream, given up past its size limit."""

    def __init__(self, object_name: str = "chat.completion", choice_type: type | None = None,
                 head_fields: tuple[str, ...] = ("id", "created", "model", "system_fingerprint", "service_tier")) -> None:
        self.object_name = object_name
        self.choice_type = choice_type or _ChatChoice
        self.head_fields = head_fields
        self.head = _ResponseHead()
        self.choices: dict[int, Any] = {}

    @classmethod
    def for_chunk(cls, chunk: dict[str, Any]) -> "Fold":
        """The fold for a stream whose first chunk this is (chat or legacy completion)."""
        if chunk.get("object") == "text_completion":
            return cls("text_completion", _TextChoice, ("id", "created", "model", "system_fingerprint"))
        return cls()

    def add(self, chunk: dict[str, Any]) -> None:
        raise_if_error(chunk)
        check_chunk(chunk)
        self.head.take(chunk, self.head_fields)
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            self.choices.setdefault(index, self.choice_type(index)).add(choice)

    def result(self) -> dict[str, Any]:
        head = self.head
        if not head.seen_any:
            raise ProxyError(502, "Upstream stream ended without sending any chunk")
        result: dict[str, Any] = {
            "id": head.fields.get("id", ""),
            "object": self.object_name,
            "created": head.fields.get("created", 0),
            "model": head.fields.get("model", ""),
            "choices": [self.choices[i].result() for i in sorted(self.choices)],
        }
        _copy_optional(head, result)
        return result


# --------------------------------------------------------------------------- packaging


def _chunk_base(completion: dict[str, Any], obj: str, include_usage: bool) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": completion.get("id", ""),
        "object": obj,
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    for name in ("system_fingerprint", "service_tier"):
        if completion.get(name) is not None:
            base[name] = completion[name]
    if include_usage:
        base["usage"] = None  # OpenAI sends "usage": null on every chunk but the last
    return base


def _message_deltas(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The deltas that carry a whole message: one, or two when it has both text and tool calls (text first,
    then the calls, as OpenAI streams them; some consumers read only one of the two from a chunk)."""
    delta = _first_delta(message)
    if delta.get("content") and "tool_calls" in delta:
        return [delta, {"tool_calls": delta.pop("tool_calls")}]
    return [delta]


def _first_delta(message: dict[str, Any]) -> dict[str, Any]:
    """The delta that carries a whole message at once."""
    delta: dict[str, Any] = {"role": message.get("role") or "assistant", "content": message.get("content")}
    for key, value in message.items():
        if key in ("role", "content", "tool_calls") or value is None:
            continue
        delta[key] = value  # reasoning_content / reasoning / refusal / function_call / extras
    if message.get("tool_calls"):
        delta["tool_calls"] = [
            {
                "index": i,
                "id": call.get("id"),
                "type": call.get("type") or "function",
                "function": {
                    "name": (call.get("function") or {}).get("name"),
                    "arguments": (call.get("function") or {}).get("arguments") or "",
                },
            }
            for i, call in enumerate(message["tool_calls"])
        ]
    return delta


def _finish_chunk(base: dict[str, Any], choice: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The closing chunk of one choice: nothing new (``body`` is the empty delta/text), just the reason."""
    index = choice.get("index", 0)
    return {**base, "choices": [{"index": index, **body, "logprobs": None, "finish_reason": choice.get("finish_reason")}]}


def package_chat(completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """Turn one ``chat.completion`` into the ``chat.completion.chunk`` dicts of an equivalent stream.

    Per choice: one chunk with the whole message (two when it has text and tool calls) and
    ``finish_reason: None``, then an empty delta with the finish_reason. With ``include_usage``, a final
    ``"choices": []`` usage chunk.
    """
    base = _chunk_base(completion, "chat.completion.chunk", include_usage)
    choices = completion.get("choices") or []
    for choice in choices:
        for n, delta in enumerate(_message_deltas(choice.get("message") or {})):
            first = {
                "index": choice.get("index", 0),
                "delta": delta,
                "logprobs": choice.get("logprobs") if n == 0 else None,
                "finish_reason": None,
            }
            yield {**base, "choices": [first]}
    for choice in choices:
        yield _finish_chunk(base, choice, {"delta": {}})
    if include_usage:
        yield {**base, "choices": [], "usage": completion.get("usage")}


def package_completion(completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """Turn one legacy ``text_completion`` into the chunks of an equivalent stream (layout as package_chat)."""
    base = _chunk_base(completion, "text_completion", include_usage)
    choices = completion.get("choices") or []
    for choice in choices:
        first = {
            "index": choice.get("index", 0),
            "text": choice.get("text") or "",
            "logprobs": choice.get("logprobs"),
            "finish_reason": None,
        }
        yield {**base, "choices": [first]}
    for choice in choices:
        yield _finish_chunk(base, choice, {"text": ""})
    if include_usage:
        yield {**base, "choices": [], "usage": completion.get("usage")}
