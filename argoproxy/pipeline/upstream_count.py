"""Token counts asked of the upstream itself, where it can count (Messages count_tokens, Google countTokens):
the server's own chat template and tokenizer give the number agents plan their context with, where the
proxy's estimate (meter/tokens.py) sees neither.

- llama.cpp's server: POST /apply-template (the chat request: messages and tools) gives the prompt as the model
  reads it; POST /tokenize of that prompt gives its tokens.
- vLLM: POST /tokenize with the chat request's messages and tools gives `count` directly.

Which way an upstream (its base URL) and model take is learned at their first count and kept (COUNTERS entries):
one that can do neither (answers 404 or refuses the request) is asked no more, and its counts are the estimate.
Each count is bounded (TIMEOUT for each call, BODY_BYTES for each answer); one that fails or is late is the
estimate too, and the way is tried again next time (a server busy for a moment has not lost its routes).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.pipeline.upstream_messages import normalize
from argoproxy.upstream.wire import read_whole
from argoproxy.upstream.wire import UpstreamRequest

log = logging.getLogger("cot_proxy")

TIMEOUT = 5.0  # seconds for each call to the upstream (a coding agent's 20k-token prompt tokenizes in ~50 ms)
BODY_BYTES = 4 << 20  # the most read of an answer (a /tokenize answer lists every token id)
COUNTERS = 1024  # (upstream, model) pairs whose way of counting is remembered
LLAMA, VLLM, NONE = "llama.cpp", "vllm", "none"
CHAT_MEMBERS = ("messages", "tools", "tool_choice")  # what a chat template reads of the request


class UpstreamCounter:
    def __init__(self) -> None:
        self._ways: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def way(self, root: str, model: str) -> str | None:
        with self._lock:
            return self._ways.get((root, model))

    def learn(self, root: str, model: str, way: str) -> None:
        with self._lock:
            self._ways[(root, model)] = way
            self._ways.move_to_end((root, model))
            while len(self._ways) > COUNTERS:
                self._ways.popitem(last=False)

    def count(self, backend: Any, chat: dict[str, Any]) -> int | None:
        """The upstream's count of this chat request's prompt, or None (the estimate stands)."""
        root = server_root(getattr(backend, "base", None)) if backend.server_counts else None
        model = chat.get("model")
        if root is None or not isinstance(model, str):
            return None
        known = self.way(root, model)
        if known == NONE:
            return None
        body = template_request(chat, backend)
        for way in ([known] if known else [LLAMA, VLLM]):
            try:
                counted = (_llama if way == LLAMA else _vllm)(backend, root, body)
            except _CannotCount:
                continue
            except (ProxyError, ValueError, OSError) as exc:  # late, unreachable, a broken answer: not learned
                log.info("token count for %s from %s failed (%s): estimated", model, way, exc)
                return None
            self.learn(root, model, way)
            return counted
        self.learn(root, model, NONE)
        return None


class _CannotCount(Exception):
    """The upstream has no such route, or refuses the request: it cannot count this way."""


def server_root(base: Any) -> str | None:
    """The server's root URL from its OpenAI base URL (http://host:8080/v1/ -> http://host:8080/): the
    counting routes of llama.cpp and vLLM are not under /v1."""
    if not isinstance(base, str) or not base.startswith(("http://", "https://")):
        return None
    base = base.rstrip("/")
    return (base[:-3] if base.endswith("/v1") else base) + "/"


def template_request(chat: dict[str, Any], backend: Any) -> dict[str, Any]:
    """What a chat template reads of the request, with the messages as the proxy sends them upstream (a
    `developer` message as `system`, no null content beside tool calls: llama.cpp's server refuses both)."""
    body = {k: chat[k] for k in CHAT_MEMBERS if chat.get(k) is not None}
    body["messages"] = json.loads(json.dumps(body.get("messages") or []))  # normalize() rewrites in place
    normalize(body["messages"], getattr(backend, "keeps_developer", False), getattr(backend, "tool_turn_content", ""))
    body["model"] = chat["model"]
    return body


def _post(backend: Any, url: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    api_key = getattr(backend, "api_key", "")
    if isinstance(api_key, str) and api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = UpstreamRequest("POST", url, headers, json.dumps(body).encode(), TIMEOUT, max_bytes=BODY_BYTES)
    resp = backend.upstream.send(request)
    try:
        data = read_whole(resp, TIMEOUT)
    finally:
        resp.close()
    if resp.status_code in (400, 404, 405, 422, 501):
        raise _CannotCount()
    if resp.status_code != 200:
        raise ValueError(f"HTTP {resp.status_code}")
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise _CannotCount()
    return answer


def _llama(backend: Any, root: str, body: dict[str, Any]) -> int:
    prompt = _post(backend, root + "apply-template", body).get("prompt")
    if not isinstance(prompt, str):
        raise _CannotCount()
    # parse_special: the template's own markers (<start_of_turn>) are one token each, as the server reads them
    tokens = _post(backend, root + "tokenize", {"content": prompt, "add_special": False,
                                                "parse_special": True}).get("tokens")
    if not isinstance(tokens, list):
        raise _CannotCount()
    return len(tokens)


def _vllm(backend: Any, root: str, body: dict[str, Any]) -> int:
    count = _post(backend, root + "tokenize", {**body, "add_generation_prompt": True}).get("count")
    if not isinstance(count, int):  # llama.cpp's /tokenize answers a request without `content` with no count
        raise _CannotCount()
    return count


UPSTREAM_COUNTS = UpstreamCounter()  # one per worker process: what it learned serves every request after
