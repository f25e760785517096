"""The internal chat chunks -> the Responses stream's events (ResponseStream), one output item at a time; its text
deltas written as bytes when they go straight to the encoder."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.fronts import long_strings
from argoproxy.fronts.front import COMPACT, Exchange, Pieces, StreamState, first_choice, new_id
from argoproxy.fronts.responses.answer import (NO_TOOLS, logprobs_of, message_output, output_text, reasoning_output,
                                               response_id_of, sealed_reasoning, summary_text)
from argoproxy.fronts.responses.request import summary_asked
from argoproxy.fronts.responses.response import response_error, response_object, status_of, usage_to_responses
from argoproxy.fronts.responses.tools import ChatTools, custom_input, output_item_id
from argoproxy.jsonfast import dumps, encode_read_text


# A text delta as encode_event writes it: its sequence number, its item's part (ResponseStream.text), its text's JSON.
TEXT_DELTA = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d'
              b'%b%b,"logprobs":[]}\n\n')
# Any other event: its type, its JSON.
EVENT = b"event: %b\ndata: %b\n\n"
# An event that carries the response object: its type, twice, its sequence number, the object's JSON.
WRAPPED = b'event: %b\ndata: {"type":"%b","sequence_number":%d,"response":%b}\n\n'
# Characters of a text a stream keeps as a piece of its own (smaller ones are joined, COMPACT at a time).
RUN_PIECE = 4096
# Characters of output (text, reasoning, tool calls) up to which no string a stream's events hold from it can
# pass long_strings.SLICE, even sealed (reasoning.encrypted_content: JSON-escaped, compressed, base64).
SHORT_OUTPUT = long_strings.SLICE // 32


class ResponseStream(StreamState):
    """Chat chunks -> Responses events, one output item at a time (reasoning, message, function or custom tool
    calls), each opened with output_item.added and closed with its .done events before the next one starts."""

    piece_cost = 0  # its kept text is joined as it grows (Pieces): MAX_SSE_EVENT_BYTES counts characters only

    def __init__(self, ex: Exchange, on_final: Callable[..., None] | None = None,
                 wire: bool = False) -> None:
        super().__init__(ex)
        self.seq = 0
        self.resp_id = response_id_of(ex)
        # the final object's keeper (a stored response), called before its event goes (with response_json=, its
        # JSON, when that was made for the event)
        self.on_final = on_final
        self.output: list[dict[str, Any]] = []  # finished items
        self.open: dict[str, Any] | None = None  # the item being streamed: {"kind", "item", "text": [..]}
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its open item record
        self.late: dict[int, dict[str, Any]] = {}  # finished calls that got more fragments, by output index
        self.tools: ChatTools = ex.tools or NO_TOOLS
        # Token logprobs, when asked for: sent with each text delta only (the done events and the final response
        # would have to hold them all, several objects a token).
        self.wants_logprobs = bool((ex.chat or {}).get("logprobs"))
        self.delta_logprobs: list[Any] = []
        self.summary = summary_asked(ex.request) is not None  # reasoning goes as the item's summary
        self.echo_short = False  # the response object's echo of the request holds no long string (start)
        # Its events go straight to the encoder (FrontAnswers.encoded): text deltas, most of them, are written
        # here, as bytes, from their item's part made once (no logprobs: those differ from one delta to the next).
        self.wire = wire and not self.wants_logprobs
        if self.wants_logprobs:  # else each chunk goes straight to StreamState.chunk (one call less an event)
            self.chunk = self._chunk_with_logprobs  # type: ignore[method-assign]

    def run(self, chunks: Iterable[dict[str, Any] | str]) -> Iterator[Any]:
        return self._wired(chunks) if self.wire else StreamState.run(self, chunks)

    def _wired(self, chunks: Iterable[dict[str, Any] | str]) -> Iterator[Any]:
        """StreamState.run, but a chunk's text alone (a str: plain_chunks.py) that adds to the open message, most
        of a stream, goes to its event's bytes in one step: no call, no event list. Those texts are kept for the
        closing events, and counted, a run of them at a time (_settle), joined."""
        self.start()
        yield from self.joined()
        run: list[str] = []  # texts sent since the last _settle
        record: dict[str, Any] | None = None  # the open message, while its deltas go this way
        keep = self.ex.keep
        try:
            for chunk in chunks:
                if type(chunk) is str and self.open is record is not None:
                    size = len(chunk)
                    kept = self.kept_size + size
                    if kept > keep:  # as text() ends it: counted, not kept nor sent
                        self._settle(record, run)
                        self.counted.add(chunk)
                        self.ex.cut = True
                        break
                    self.kept_size = kept
                    run.append(chunk)
                    if size >= RUN_PIECE or len(run) >= COMPACT:  # a join copies at most COMPACT small pieces
                        self._settle(record, run)
                    try:
                        text = encode_read_text(chunk)  # read by plain_chunks: valid UTF-8
                    except UnicodeEncodeError:  # a lone surrogate (not UTF-8), were a str to come from elsewhere
                        text = dumps(chunk)
                    yield TEXT_DELTA % (self.seq, record["wire"], text)
                    self.seq += 1
                    continue
                if run:
                    self._settle(record, run)
                self.chunk(chunk)
                record = self.open if self.open is not None and self.open.get("wire") is not None else None
                if self.events:
                    yield from self.joined()
                if self.ex.cut:
                    break
            if run:
                self._settle(record, run)
            self.end()
        except ProxyError as err:
            if run:
                self._settle(record, run)
            self.ex.error = err
            self.fail(err)
        yield from self.joined()

    def joined(self) -> list[Any]:
        """The events made so far, those written here already as one piece (written at the same moment, they go
        out in one write, not one each)."""
        events = self.drain()
        if len(events) > 1 and all(type(e) is bytes for e in events):
            return [b"".join(events)]
        return events

    def _settle(self, record: dict[str, Any] | None, run: list[str]) -> None:
        """Texts the wired loop sent: kept in their message's record, and counted, as one piece."""
        text = run[0] if len(run) == 1 else "".join(run)
        run.clear()
        if record is not None:
            record["text"].add_joined(text)
        self.counted.add(text)

    def _chunk_with_logprobs(self, chunk: dict[str, Any] | str) -> None:
        self.delta_logprobs = logprobs_of(first_choice(chunk)) if isinstance(chunk, dict) else []
        StreamState.chunk(self, chunk)

    def emit(self, kind: str, **fields: Any) -> None:
        # Short: no string in it can pass long_strings.SLICE (what it echoes was looked at once, at the start,
        # and the output so far is shorter), so the encoder need not walk it to know.
        short = self.echo_short and self.counted.characters <= SHORT_OUTPUT
        if short and self.wire:  # written here, as encode_event writes it
            self.events.append(EVENT % (kind.encode(), dumps({"type": kind, "sequence_number": self.seq, **fields})))
        else:
            self.events.append((long_strings.Short if short else dict)(type=kind, sequence_number=self.seq, **fields))
        self.seq += 1

    def start(self) -> None:
        snapshot = response_object(self.ex, self.resp_id, "in_progress", [])
        # What every response object echoes: the request's settings (all but its input), its stored fields.
        req = self.ex.request
        self.echo_short = not long_strings.holds_long([self.ex.state, *(v for k, v in req.items() if k != "input")])
        if self.wire and self.echo_short:  # the same object twice: encoded once
            raw = dumps(snapshot)
            self.wrapped("response.created", raw)
            self.wrapped("response.in_progress", raw)
            return
        self.emit("response.created", response=snapshot)
        self.emit("response.in_progress", response=snapshot)

    def wrapped(self, kind: str, response_json: bytes) -> None:
        """An event that carries the response object, its JSON made already, written as encode_event would."""
        self.events.append(WRAPPED % (kind.encode(), kind.encode(), self.seq, response_json))
        self.seq += 1

    # -- items
    def _open(self, kind: str, item: dict[str, Any], part: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.waiting and kind not in ("call", "custom"):  # calls waiting for the open one go first
            self._release()
        self.close()
        self.new_item(item.get("call_id"), item.get("name"))
        index = len(self.output)
        self.emit("response.output_item.added", output_index=index, item=item)
        record = {"kind": kind, "item": item, "index": index, "text": Pieces()}
        if part is not None:
            self.emit("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                      part=part)
        self.open = record
        return record

    def close(self, status: str = "completed") -> None:
        """Close the open item; `status`: "incomplete" for one a failure or a token limit cut short."""
        record, self.open = self.open, None
        if record is None:
            return
        item, index, text = record["item"], record["index"], "".join(record["text"])
        record["text"] = Pieces([text])  # the pieces freed now (a late fragment of a call may still be added)
        done = closed_item(self.emit, record["kind"], item, index, text, status, self.summary, self.ex)
        self.emit("response.output_item.done", output_index=index, item=done)
        self.output.append(done)

    def fits(self, text: str) -> bool:
        """Keep this text for the closing events, which repeat it; past ex.keep the stream ends (incomplete)."""
        if self.keeping(len(text)):
            return True
        self.ex.cut = True
        return False

    def reasoning(self, text: str) -> None:
        if not self.fits(text):
            return
        record = self.open
        if record is None or record["kind"] != "reasoning":
            record = self._open_reasoning()
        record["text"].append(text)
        if self.summary:
            self.emit("response.reasoning_summary_text.delta", item_id=record["item"]["id"],
                      output_index=record["index"], summary_index=0, delta=text)
        else:
            self.emit("response.reasoning_text.delta", item_id=record["item"]["id"], output_index=record["index"],
                      content_index=0, delta=text)

    def _open_reasoning(self) -> dict[str, Any]:
        """A reasoning item opens: with one summary part (summary asked for), else one reasoning_text part."""
        item = {"type": "reasoning", "id": output_item_id("rs_", self.resp_id), "summary": [], "status": "in_progress"}
        if not self.summary:
            return self._open("reasoning", {**item, "content": []}, {"type": "reasoning_text", "text": ""})
        record = self._open("reasoning", item)
        self.emit("response.reasoning_summary_part.added", item_id=item["id"], output_index=record["index"],
                  summary_index=0, part=summary_text(""))
        return record

    def text(self, text: str) -> None:
        # Most of a stream's events: kept (fits, written out) and sent (emit, written out) in one call.
        kept = self.kept_size + len(text)
        if kept > self.ex.keep:
            self.ex.cut = True
            return
        self.kept_size = kept
        record = self.open
        if record is None or record["kind"] != "message":
            item = {"type": "message", "id": output_item_id("msg_", self.resp_id), "status": "in_progress",
                    "role": "assistant", "content": []}
            record = self._open("message", item, output_text(""))
            record["wire"] = (b',"item_id":%b,"output_index":%d,"content_index":0,"delta":'
                              % (dumps(item["id"]), record["index"])) if self.wire else None
        record["text"].append(text)
        if record["wire"] is not None and len(text) <= long_strings.SLICE:  # encode_event's bytes, made here
            self.events.append(TEXT_DELTA % (self.seq, record["wire"], dumps(text)))
        else:
            self.events.append({"type": "response.output_text.delta", "sequence_number": self.seq,
                                "item_id": record["item"]["id"], "output_index": record["index"],
                                "content_index": 0, "delta": text, "logprobs": self.delta_logprobs})
        self.seq += 1

    def refusal(self, text: str) -> None:
        """A refusal is a message of its own whose one part is a `refusal` (as OpenAI streams it)."""
        if not self.fits(text):
            return
        record = self.open
        if record is None or record["kind"] != "refusal":
            item = {"type": "message", "id": output_item_id("msg_", self.resp_id), "status": "in_progress",
                    "role": "assistant", "content": []}
            record = self._open("refusal", item, {"type": "refusal", "refusal": ""})
        record["text"].append(text)
        self.emit("response.refusal.delta", item_id=record["item"]["id"], output_index=record["index"],
                  content_index=0, delta=text)

    def tool_call(self, index: int, fragment: dict[str, Any]) -> None:
        function = fragment.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str) and not self.keeping(len(arguments)):
            # A call's arguments are repeated whole by its .done events: cut, they would be invalid JSON (the
            # call is left out of the failed response rather than repeated in part).
            if self.open is not None and self.open["kind"] in ("call", "custom"):
                self.open = None
            raise ProxyError(502, f"The upstream's tool call arguments grew past MAX_SSE_EVENT_BYTES ({self.ex.keep} "
                             "characters of output kept for the closing events).", code="upstream_event_too_large")
        record = self.calls.get(index)
        if record is None:
            if (self.open is not None and self.open["kind"] in ("call", "custom")) or index in self.waiting:
                # Another call is streaming, and an upstream may still add to it (interleaved parallel calls),
                # while a Responses stream sends one item at a time: this one waits and goes whole at the end.
                self.wait(index, fragment, function)
                return
            record = self.calls[index] = self._open_call(fragment.get("id"), function.get("name") or "")
        elif record is not self.open:
            if function.get("arguments"):  # a late fragment of a finished call (interleaved upstream calls):
                record["text"].append(function["arguments"])  # in the final response only (_settle_late)
                self.late[record["index"]] = record
            return
        args = function.get("arguments")
        if args:
            record["text"].append(args)
            if record["kind"] == "call":
                self.emit("response.function_call_arguments.delta", item_id=record["item"]["id"],
                          output_index=record["index"], delta=args)

    def _open_call(self, call_id: str | None, name: str) -> dict[str, Any]:
        item = self.tools.output_item(name, call_id or new_id("call_"), "", status="in_progress", resp_id=self.resp_id)
        return self._open("custom" if self.tools.is_custom(name) else "call", item)

    def _release(self) -> None:
        """The calls that waited, each a whole item in the order they began."""
        for index, call_id, name, args in self.waited():
            record = self.calls[index] = self._open_call(call_id, name)
            if args:
                record["text"].append(args)
                if record["kind"] == "call":
                    self.emit("response.function_call_arguments.delta", item_id=record["item"]["id"],
                              output_index=record["index"], delta=args)

    def _settle_late(self) -> None:
        """Finished calls that got late fragments: their items whole, joined once (joined per fragment, a hostile
        upstream's fragments cost time quadratic in their number)."""
        for index, record in self.late.items():
            done, text = self.output[index], "".join(record["text"])
            done.update(input=custom_input(text)) if record["kind"] == "custom" else done.update(arguments=text)
        self.late.clear()

    def finish(self) -> None:
        self._release()
        if not self.output and self.open is None:
            self.text("")  # an empty answer is still one message (output_text == "")
        # Cut at ex.keep: the output is what was sent, cut short as by a token limit.
        status, incomplete = status_of("length" if self.ex.cut else self.choice.get("finish_reason"))
        self.close("completed" if status == "completed" else "incomplete")
        self._settle_late()
        final = response_object(self.ex, self.resp_id, status, self.output, usage_to_responses(self.ex.usage),
                                 incomplete)
        self.ex.output = final
        kind = "response.completed" if status == "completed" else "response.incomplete"
        if self.wire and self.echo_short and self.counted.characters <= SHORT_OUTPUT:  # encoded once, for both
            raw = dumps(final)
            if self.on_final is not None:
                self.on_final(final, response_json=raw)
            self.wrapped(kind, raw)
            return
        if self.on_final is not None:
            self.on_final(final)
        self.emit(kind, response=final)

    def fail(self, err: ProxyError) -> None:
        self.echo_short = False  # its message is not bounded by the output
        self.close("incomplete")
        self._settle_late()
        code = err.code or ("server_error" if err.status >= 500 else "invalid_request_error")
        # OpenAI's event, its fields at its top (Open Responses nests them under `error`, which OpenAI's SDK
        # raises at, so its client would never see the response.failed that follows)
        self.emit("error", code=code, message=err.message, param=err.param)
        final = response_object(self.ex, self.resp_id, "failed", self.output, usage_to_responses(self.ex.usage),
                                error=response_error("rate_limit_exceeded" if err.status == 429 else code,
                                                     err.message))
        self.ex.output = final
        if self.on_final is not None:
            self.on_final(final)
        self.emit("response.failed", response=final)


def stream_events(chunks: Iterable[dict[str, Any] | str], ex: Exchange,
                  on_final: Callable[..., None] | None = None, wire: bool = False) -> Iterator[Any]:
    """Chat chunks -> the Responses event sequence (created ... completed), sequence_number from 0; `on_final`
    gets the final response object before its terminal event is sent. `wire`: text deltas come encoded (bytes)."""
    return ResponseStream(ex, on_final, wire).run(chunks)


def closed_item(emit: Callable[..., None], kind: str, item: dict[str, Any], index: int, text: str, status: str,
                summary: bool, ex: Exchange) -> dict[str, Any]:
    """An output item's closing events (its text, its part, by kind), and the item as done; `status`:
    "incomplete" for one a failure or a token limit cut short."""
    if kind == "reasoning" and summary:
        emit("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
             summary_index=0, text=text)
        ended = {"status": "incomplete"} if status == "incomplete" else {}
        emit("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
             summary_index=0, part=summary_text(text), **ended)
        done = sealed_reasoning({**reasoning_output(text, item["id"], summary=True), "status": status}, text,
                                ex)
    elif kind == "reasoning":
        part = {"type": "reasoning_text", "text": text}
        emit("response.reasoning_text.done", item_id=item["id"], output_index=index, content_index=0,
             text=text)
        emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
             part=part)
        done = sealed_reasoning({**reasoning_output(text, item["id"]), "status": status}, text, ex)
    elif kind == "message":
        part = output_text(text)
        emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
             text=text, logprobs=[])
        emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
             part=part)
        done = message_output(text, status, item_id=item["id"])
    elif kind == "refusal":
        emit("response.refusal.done", item_id=item["id"], output_index=index, content_index=0,
             refusal=text)
        emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
             part={"type": "refusal", "refusal": text})
        done = message_output("", status, item_id=item["id"], refusal=text)
    elif kind == "custom":
        # The input is the string inside the function's JSON arguments: sent once it is whole.
        done = {**item, "input": custom_input(text), "status": status}
        if done["input"]:
            emit("response.custom_tool_call_input.delta", item_id=item["id"], output_index=index,
                 delta=done["input"])
        emit("response.custom_tool_call_input.done", item_id=item["id"], output_index=index,
             input=done["input"])
    else:
        text = text or "{}"  # a call without arguments, as OpenAI writes it (the other doors give {})
        done = {**item, "arguments": text, "status": status}
        emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
             name=item["name"], arguments=text)
    return done
