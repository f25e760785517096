"""POST /v1/responses/compact over any backend, and the proxy's own sealed content.

Compaction asks the upstream model, through the one sequence (guards, keys, budgets, metrics), for a summary
of the conversation (`input`, and with stored responses the `previous_response_id` chain): the conversation
as chat messages, then a request to summarise it for whoever takes the work over. The answer, a
`response.compaction` object, is the compacted window: the conversation's most recent user messages as they
were (COMPACT_KEEP characters of them, newest first), then one `compaction` item whose `encrypted_content` is
the summary sealed by the proxy. A later /v1/responses request that carries that item in its `input` has it
expanded back into the summary, as a user message, for the upstream.

Sealed content (`Seal`) is the proxy's own opaque encoding: the text compressed, under an HMAC-SHA256 tag with
a per-install key (its purpose, "compaction" or "reasoning", signed with it), so a client cannot make the proxy
pass off text of its own as a summary it wrote (what a client could send as a message anyway is all it can
reach). It is not secret from its client: it holds what that client's conversation said. The key comes from
the Responses door's Front.kept (door.py; state/seal_key.py: a file in the data directory, or Redis so
replicas agree); a process without one (in-process tests) makes its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import zlib
from typing import Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import Exchange, bad_request, whole_answer
from argoproxy.fronts.responses.tools import output_item_id
from argoproxy.ids import new_id

ACTION = "compact"  # DoorArgs.action and Exchange.action of a compaction
KIND = "responses_compact"  # its route's kind (metrics, journals; the state reads it)
COMPACT_KEEP = 80_000  # characters of the conversation's most recent user messages kept as they were
SEALED = "cpx1."  # what the proxy's sealed content starts with (its format's version)
MAX_OPENED = 16 * 1024 * 1024  # bytes sealed content may expand to (a summary, not a bulk answer)
# Characters the compaction items of one request expand to in all: repeated text seals into a few kilobytes, so a
# body of a megabyte carrying it a thousand times would otherwise become gigabytes for the upstream.
MAX_EXPANDED = MAX_OPENED
SUMMARY_LEAD = ("A summary of the conversation so far, written when its earlier turns were compacted (the most "
                "recent user messages are kept as they were):\n\n")
# What the model is asked once the conversation has been put before it.
COMPACT_PROMPT = (
    "Stop here: the conversation above is about to be compacted, and what you write now is all that will remain "
    "of it besides the user's latest messages. Write a summary that lets another assistant take the work over "
    "without asking anything again: the user's goal and requirements, decisions made and why, what has been done "
    "(files, commands, results, tool calls and what they returned), what is left to do and the next step, and "
    "every name, value, path or snippet the work depends on. Write only the summary.")


class Seal:
    """Text sealed and opened under the per-install key (`source()` reads it, once per process)."""

    def __init__(self) -> None:
        self.source: Callable[[], bytes] | None = None
        self._key: bytes | None = None

    def use(self, source: Callable[[], bytes]) -> None:
        self.source, self._key = source, None

    def key(self) -> bytes:
        if self._key is None:
            self._key = self.source() if self.source is not None else os.urandom(32)
        return self._key

    def seal(self, purpose: str, text: str) -> str:
        body = base64.urlsafe_b64encode(zlib.compress(json.dumps({"t": text}).encode(), 6)).decode().rstrip("=")
        return SEALED + body + "." + self._tag(purpose, body)

    def open(self, purpose: str, sealed: Any) -> str | None:
        """The text sealed for this purpose, or None: not the proxy's, altered, or sealed for another purpose."""
        if not isinstance(sealed, str) or not sealed.startswith(SEALED):
            return None
        body, _, tag = sealed[len(SEALED):].rpartition(".")
        if not body or not hmac.compare_digest(tag, self._tag(purpose, body)):
            return None
        try:
            unpacker = zlib.decompressobj()
            data = unpacker.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)), MAX_OPENED)
            text = json.loads(data)["t"] if not unpacker.unconsumed_tail else None
        except (ValueError, KeyError, TypeError, zlib.error):
            return None
        return text if isinstance(text, str) else None

    def _tag(self, purpose: str, body: str) -> str:
        mac = hmac.new(self.key(), purpose.encode() + b"\0" + body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


SEAL = Seal()


# ---------------------------------------------------------------------------------------------- request

def compaction_to_chat(body: dict[str, Any], messages_of: Callable[[Any], list[dict[str, Any]]]) -> dict[str, Any]:
    """A compact request as the chat request that asks for the summary (`messages_of`: the door's reading of
    `input` as chat messages)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("You must provide a model parameter.", "model", "missing_required_parameter")
    if body.get("previous_response_id") is not None:
        raise bad_request("`previous_response_id` needs stored responses, and this proxy stores none (it is "
                          "stateless: send the whole conversation in `input`).", "previous_response_id",
                          "unsupported_parameter")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("`instructions` must be a string.", "instructions")
    value = body.get("input")
    if value is None or value == []:
        raise bad_request("There is nothing to compact: send the conversation in `input` (or, with stored "
                          "responses, name it with `previous_response_id`).", "input", "missing_required_parameter")
    messages = [{"role": "system", "content": instructions}] if instructions else []
    messages.extend(messages_of(value))
    messages.append({"role": "user", "content": COMPACT_PROMPT})
    return {"model": model, "messages": messages}


def compaction_message(item: dict[str, Any], param: str, expanded: int = 0) -> dict[str, Any]:
    """A compaction item of `input` as the summary it seals, a user message for the upstream (`expanded`: the
    characters the request's earlier compaction items expanded to)."""
    summary = SEAL.open("compaction", item.get("encrypted_content"))
    if summary is None:
        raise ProxyError(400, "The encrypted content of this compaction item could not be verified: it was not made "
                         "by this proxy's /v1/responses/compact, or it was altered.", param=f"{param}.encrypted_content",
                         code="invalid_encrypted_content")
    if expanded + len(summary) > MAX_EXPANDED:
        raise ProxyError(400, f"The compaction items of this input expand to more than {MAX_EXPANDED:,} characters "
                         "in all: send each compacted window once.", param=f"{param}.encrypted_content",
                         code="compaction_too_large")
    return {"role": "user", "content": SUMMARY_LEAD + summary}


# ---------------------------------------------------------------------------------------------- answer

def compaction_object(completion: dict[str, Any], ex: Exchange, usage_of: Callable[[Any], Any]) -> dict[str, Any]:
    """The upstream's summary as the compacted window (`usage_of`: the door's usage translation)."""
    answer = whole_answer(completion, ex)
    if not answer.text.strip():
        raise ProxyError(502, "The upstream model answered the compaction with no summary.",
                         code="upstream_empty_answer", type="server_error")
    resp_id = new_id("resp_")
    output = kept_user_messages(ex.request.get("input"), resp_id)
    output.append({"type": "compaction", "id": output_item_id("cmp_", resp_id),
                   "encrypted_content": SEAL.seal("compaction", answer.text.strip())})
    return {"id": resp_id, "object": "response.compaction", "created_at": int(time.time()), "output": output,
            "usage": usage_of(ex.usage)}


def kept_user_messages(value: Any, resp_id: str) -> list[dict[str, Any]]:
    """The conversation's user messages, newest first while they fit COMPACT_KEEP characters, in their order,
    as message items (a compacted summary is not among them: the new one holds it)."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    kept: list[dict[str, Any]] = []
    room = COMPACT_KEEP
    for item in reversed(value if isinstance(value, list) else []):
        if not (isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message"):
            continue
        content = item.get("content")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            continue
        size = len(json.dumps(parts))
        if size > room:
            break
        room -= size
        item_id = item.get("id") if isinstance(item.get("id"), str) else output_item_id("msg_", resp_id)
        kept.append({"type": "message", "id": item_id, "status": "completed", "role": "user", "content": parts})
    return kept[::-1]
