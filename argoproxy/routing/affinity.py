"""Cache-aware routing (ROUTING_STRATEGY=cache_aware): the turns of one conversation go to the deployment that
already holds its prompt in its cache.

A conversation is named by a digest of its leading messages: every message up to and including the first user
turn (the system prompt and the task), as the internal chat request has them, so a Responses request continued
with previous_response_id or a conversation, a Messages request and a chat request are routed alike. A request
with more than that (an assistant turn, a tool result) continues a conversation: it goes to the deployment that
served that prefix last (a table the workers share, routing/admission.py), else to the first deployment of a
rendezvous-hash order over the digest, while that deployment has room; past that, to the least loaded. A new
conversation goes to the least loaded deployment, which is then noted as the prefix's.

Room: a deployment with a limit (its server's slots) has room while a slot is free, as admission finds it
when it seats the request (routing/admission.py). Load balance is worth little there: its slots run side by
side, and a turn sent elsewhere reads the whole conversation again (with 8 agents on two 4-slot servers,
bounded-load hashing at 1.25x the mean sent a turn away whenever its server ran 3 requests and the other none).
A deployment without a limit has room while under LOAD_BOUND times the pool's mean load, and at least one
request over it (bounded-load consistent hashing; the mean is of small numbers).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

from argoproxy.jsonfast import dumps
from argoproxy.routing.admission import Admission

PROMPT_CHARS = 8192  # of a legacy completion's prompt: its head names the conversation
LOAD_BOUND = 1.25  # a deployment without a limit takes a conversation while under 1.25x the pool's mean load


def prefix_tag(body: dict[str, Any]) -> tuple[int, bool]:
    """(digest of the leading messages, whether the request continues a conversation); (0, False): nothing to
    go by (no messages or prompt)."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        end = next((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
                   len(messages) - 1)
        head = messages[:end + 1]
        return _digest(dumps(head)), len(messages) > end + 1
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        # a completion cannot say: its head decides (a lone surrogate, which JSON allows, kept as it came)
        return _digest(prompt[:PROMPT_CHARS].encode(errors="surrogatepass")), True
    return 0, False


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=7).digest(), "big") or 1


def preferred(admission: Admission, deps: Sequence[int], tag: int, continuing: bool) -> int:
    """The deployment a request should go to for its cache, -1: the least loaded (a new conversation, or every
    candidate is past its bound). A deployment with a limit is preferred whatever its load: admission seats the
    request there only while it has a free slot."""
    if not tag or not continuing or len(deps) < 2:
        return -1
    loads = dict(zip(deps, admission.loads(deps)))
    mean = (sum(used for used, _ in loads.values()) + 1) / len(deps)
    cap = max(math.ceil(LOAD_BOUND * mean), math.ceil(mean) + 1)

    def fits(dep: int) -> bool:
        used, limit = loads[dep]
        return limit > 0 or used + 1 <= cap

    last = admission.remembered(tag)
    if last in loads:
        return last if fits(last) else -1
    ranked = sorted(deps, key=lambda d: hashlib.blake2b(f"{tag}:{d}".encode(), digest_size=8).digest())
    return next((d for d in ranked if fits(d)), -1)
