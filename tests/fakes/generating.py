"""Answers for FakeOpenAI (its `default_answer`) that spend what a request asks for, as the servers do, and say
so in their usage: a budget's test reads what the upstream would really have generated.

- OpenAI-compatible chat and completions: each answer is as long as the largest length field a server honours
  (max_tokens; max_completion_tokens, which vLLM reads first; n_predict, which llama.cpp reads first), or
  `unbounded` tokens when none is set (a model that talks until its context ends) or n_predict is below 0
  (llama.cpp's "no limit", which wins over max_tokens there); n (or best_of) answers, and
  each prompt of /v1/completions answered apart. Streams carry a usage chunk when asked (include_usage).
- Ollama's /api/chat and /api/generate: options.num_predict when positive, else `unbounded` (Ollama shifts its
  context and goes on), its members read as Go reads them (`Options` is `options`, the last one winning;
  invalid UTF-8 in a string taken as U+FFFD, anything after the first value not read);
  NDJSON streams (or one object with stream false) ending with prompt_eval_count and eval_count, as Ollama
  writes them.
Each answer takes about `seconds`, so answers started together overlap."""

from __future__ import annotations

import json
from typing import Any, Callable

from argoproxy.meter.tokens import count_texts, request_texts
from tests.fakes.fake_openai import Reply, Stream, chat_chunks, chat_completion

GENERATING = ("/chat/completions", "/completions", "/api/chat", "/api/generate")
LIMITS = ("max_tokens", "max_completion_tokens", "n_predict")
MULTIPLIERS = ("n", "best_of")


def generating(fallback: Callable[[str, str, bytes], Any], unbounded: int = 10_000, seconds: float = 1.0):
    """`fallback`: the fake's own default answer, for what generates nothing (the model list...)."""
    def answer(method: str, path: str, body: bytes) -> Reply | Stream:
        if method != "POST" or not path.endswith(GENERATING):
            return fallback(method, path, body)
        if path.endswith(("/api/chat", "/api/generate")):
            return _ollama(path, _go_decoded(body), unbounded, seconds)
        req = json.loads(body or b"{}")
        each = _largest(req, LIMITS) or unbounded
        if _negative(req.get("n_predict")):  # llama.cpp reads n_predict first: below 0 it has no limit at all
            each = max(each, unbounded)
        answers = _largest(req, MULTIPLIERS) or 1
        completions = path.endswith("/completions") and not path.endswith("/chat/completions")
        prompts = req.get("prompt")
        if completions and isinstance(prompts, list) and prompts and not all(isinstance(t, int) for t in prompts):
            answers *= len(prompts)
        prompt = count_texts(request_texts(req))
        usage = {"prompt_tokens": prompt, "completion_tokens": each * answers, "total_tokens": prompt + each * answers}
        if req.get("stream"):
            events = chat_chunks(["one ", "two ", "three"], usage=True)
            events[-2]["usage"] = usage  # sent only when asked (FakeOpenAI._write_stream)
            return Stream(events, delay=seconds / len(events))
        if completions:
            obj: dict[str, Any] = {"id": "cmpl-fake", "object": "text_completion", "created": 1700000000,
                                   "model": req.get("model", "m"), "choices": [
                                       {"index": i, "text": "one two three", "logprobs": None, "finish_reason": "length"}
                                       for i in range(answers)]}
        else:
            obj = chat_completion("one two three", n=answers)
        obj["usage"] = usage
        return Reply(obj, delay=seconds)
    return answer


def _negative(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0


def _largest(req: dict[str, Any], fields: tuple[str, ...]) -> int | None:
    found = [v for v in map(req.get, fields) if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return max(found) if found else None


def _go_decoded(body: bytes) -> Any:
    """A body as Ollama's server decodes it (Go's json.Decoder through gin): invalid UTF-8 in a string read as
    U+FFFD, and only the first value read (what follows it is never looked at)."""
    return json.JSONDecoder().raw_decode((body or b"{}").decode("utf-8", "replace").lstrip(" \t\r\n"))[0]


def _as_go_reads(req: dict[str, Any]) -> dict[str, Any]:
    """Ollama's request as Go's encoding/json reads it: a member matched to its field without regard to case, the
    last one winning, an object merged into the map an earlier one made (`Options` after `options`)."""
    read: dict[str, Any] = {}
    for key, value in req.items():
        name = key.casefold()
        if isinstance(value, dict) and isinstance(read.get(name), dict):
            value = {**read[name], **value}
        read[name] = value
    return read


def _ollama(path: str, req: dict[str, Any], unbounded: int, seconds: float) -> Reply | Stream:
    req = _as_go_reads(req)
    options = req.get("options") if isinstance(req.get("options"), dict) else {}
    predict = options.get("num_predict")
    generated = predict if isinstance(predict, int) and predict > 0 else unbounded
    prompt = count_texts(request_texts(req))
    chat = path.endswith("/api/chat")

    def piece(text: str, done: bool) -> dict[str, Any]:
        line: dict[str, Any] = {"model": req.get("model", "m"), "created_at": "2026-01-01T00:00:00Z", "done": done}
        if chat:
            line["message"] = {"role": "assistant", "content": text}
        else:
            line["response"] = text
        if done:
            line.update(done_reason="length", total_duration=1, prompt_eval_count=prompt, eval_count=generated)
        return line
    if req.get("stream") is False:
        return Reply(piece("one two three", True), delay=seconds)
    lines = [piece(w, False) for w in ("one ", "two ", "three")] + [piece("", True)]
    return Stream([json.dumps(line).encode() + b"\n" for line in lines], delay=seconds / len(lines),
                  headers={"Content-Type": "application/x-ndjson"})
