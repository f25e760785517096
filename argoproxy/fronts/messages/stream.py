"""The internal chat chunks -> the Messages stream's events (MessageStream): one content block at a time,
with dense indexes."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import Exchange, StreamState, new_id
from argoproxy.fronts.messages.answer import (DIRECT, delta_usage, message_object, signature, stop_details, stop_of,
                                              text_block, tool_input, usage_to_messages)
from argoproxy.fronts.messages.errors import error_type


class MessageStream(StreamState):
    """Chat chunks -> Messages events: message_start, ping, one block at a time (start, deltas, stop, with
    dense indexes), message_delta with the stop reason and cumulative usage, message_stop.

    No event repeats what was streamed, so text and tool arguments are kept only for ex.output (journals), up
    to ex.keep characters; past that they only pass through."""

    def __init__(self, ex: Exchange) -> None:
        super().__init__(ex)
        self.msg_id = new_id("msg_")
        self.blocks: list[dict[str, Any]] = []  # the content so far (for ex.output)
        self.open: str | None = None  # kind of the block being streamed
        self.calls: dict[int, int] = {}  # chat tool-call index -> block index
        self.args: dict[int, list[str]] = {}  # block index -> JSON fragments
        self.pieces: dict[int, list[str]] = {}  # block index -> text or thinking, joined when the block closes
        self.digest: Any = None  # the open thinking block's SHA-256, fed as it streams (its signature)

    def start(self) -> None:
        usage = usage_to_messages(None, self.ex.input_tokens)
        self.events.append({"type": "message_start",
                            "message": message_object(self.msg_id, self.ex.model, [], None, None, usage)})
        self.events.append({"type": "ping"})

    def _open(self, kind: str, block: dict[str, Any]) -> int:
        if self.waiting and kind != "tool_use":  # calls waiting for the open one go before what comes next
            self._release()
        self.close()
        self.new_item(block.get("id"), block.get("name"))
        index = len(self.blocks)
        self.blocks.append(dict(block))
        self.events.append({"type": "content_block_start", "index": index, "content_block": block})
        self.open = kind
        return index

    def close(self) -> None:
        if self.open is None:
            return
        index = len(self.blocks) - 1
        if self.open == "tool_use":
            self.blocks[index]["input"] = tool_input("".join(self.args.get(index, ())))
        else:  # `text += piece` on the block copied it per chunk: 100,000 chunks took 13 s
            self.blocks[index][self.open] = "".join(self.pieces.pop(index, ()))
        if self.open == "thinking":  # its signature comes last, just before the block's stop (as Anthropic's)
            signed = self.blocks[index]["signature"] = signature(self.digest)
            self.events.append({"type": "content_block_delta", "index": index,
                                "delta": {"type": "signature_delta", "signature": signed}})
        self.events.append({"type": "content_block_stop", "index": index})
        self.open = None

    def reasoning(self, text: str) -> None:
        if self.open != "thinking":
            self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self.digest = hashlib.sha256()
        self.digest.update(text.encode())
        index = len(self.blocks) - 1
        if self.keeping(len(text)):
            self.pieces.setdefault(index, []).append(text)
        self.events.append({"type": "content_block_delta", "index": index,
                            "delta": {"type": "thinking_delta", "thinking": text}})

    def text(self, text: str) -> None:
        if self.open != "text":
            self._open("text", text_block(""))
        index = len(self.blocks) - 1
        if self.keeping(len(text)):
            self.pieces.setdefault(index, []).append(text)
        if text:
            self.events.append({"type": "content_block_delta", "index": index,
                                "delta": {"type": "text_delta", "text": text}})

    def tool_call(self, key: int, fragment: dict[str, Any]) -> None:
        function = fragment.get("function") or {}
        index = self.calls.get(key)
        if index is None:
            if self.open == "tool_use" or key in self.waiting:
                # Another call is streaming, and an upstream may still add to it (interleaved parallel calls),
                # while a Messages stream has one block at a time: this one waits and goes whole at the end.
                self.wait(key, fragment, function)
                return
            index = self.calls[key] = self._open_call(fragment.get("id"), function.get("name") or "")
        args = function.get("arguments")
        if not args:
            return
        kept = self.keeping(len(args))
        if kept:
            self.args.setdefault(index, []).append(args)
        if index == len(self.blocks) - 1 and self.open == "tool_use":
            self.events.append({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": args}})
        elif kept:  # a late fragment of a closed call (interleaved upstream calls): only the final message has it
            self.blocks[index]["input"] = tool_input("".join(self.args[index]))

    def finish(self) -> None:
        if not self.blocks:
            self.text("")  # an empty answer is still one (empty) text block
        self._release()
        self.close()
        stop_reason, stop_sequence = stop_of(self.choice, self.ex, self.refused)
        usage = usage_to_messages(self.ex.usage, self.ex.input_tokens)
        self.events.append({"type": "message_delta", "delta": {
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "stop_details": stop_details(stop_reason),
            "container": None}, "usage": delta_usage(usage)})
        self.events.append({"type": "message_stop"})
        self.ex.output = message_object(self.msg_id, self.ex.model, self.blocks, stop_reason, stop_sequence, usage)

    def fail(self, err: ProxyError) -> None:
        # the API's ErrorResponse (its request id is in the stream's `request-id` header)
        self.events.append({"type": "error", "error": {"type": error_type(err.status), "message": err.message},
                            "request_id": None})

    def _open_call(self, call_id: str | None, name: str) -> int:
        return self._open("tool_use", {"type": "tool_use", "id": call_id or new_id("toolu_"), "name": name,
                                       "input": {}, "caller": DIRECT})

    def _release(self) -> None:
        """The calls that waited, each a whole block in the order they began."""
        for key, call_id, name, args in self.waited():
            index = self.calls[key] = self._open_call(call_id, name)
            if args:
                if self.keeping(len(args)):
                    self.args[index] = [args]
                self.events.append({"type": "content_block_delta", "index": index,
                                    "delta": {"type": "input_json_delta", "partial_json": args}})


def stream_events(chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
    """Chat chunks -> the Messages event sequence."""
    return MessageStream(ex).run(chunks)
