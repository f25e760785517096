"""The Responses door's Front: its routes (create, compact), its exchange, a stored response's keeper called as
the answer is made, and what it keeps (kept.py, over argoproxy/state/)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from argoproxy.fronts.front import DoorArgs, DoorRoute, Exchange, Front
from argoproxy.fronts.responses import compact
from argoproxy.fronts.responses.answer import chat_to_response
from argoproxy.fronts.responses.input_items import input_messages
from argoproxy.fronts.responses.request import summary_asked, translate
from argoproxy.fronts.responses.response import usage_to_responses
from argoproxy.fronts.responses.stream import stream_events
from argoproxy.pipeline.adapt import Shape
from argoproxy.pipeline.reservation import Spelled
from argoproxy.state.seal_key import seal_key


class ResponsesFront(Front):
    name = "responses"
    routes = (DoorRoute("v1/responses", "responses", bare=True),
              DoorRoute("v1/responses/compact", compact.KIND, bare=True))
    native_shape = Shape(("reasoning", "effort"), "max_output_tokens", False)
    spelled = Spelled(limits=(("max_output_tokens",),), supply=("max_output_tokens",))
    spelled_paths = (("/v1/responses", spelled), ("/responses", spelled))  # a batch's lines
    renamed = {"messages": "input", "max_tokens": "max_output_tokens", "response_format": "text.format",
               "reasoning_effort": "reasoning.effort"}

    def plain_texts(self, ex: Exchange) -> bool:
        return not (ex.chat or {}).get("logprobs")  # each text delta carries its chunk's logprobs

    def answer_budget(self, max_sse_event_bytes: int, journal_bytes: int) -> int:
        # response.completed and the .done events repeat all output: it is kept, up to one event's size.
        return max_sse_event_bytes

    def door_args(self, route: Any, query: str) -> DoorArgs | None:
        return DoorArgs(action=compact.ACTION) if route.kind == compact.KIND else None

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        if args is not None and args.action == compact.ACTION:  # POST /v1/responses/compact
            chat = compact.compaction_to_chat(body, input_messages)
            return chat, Exchange(model=chat["model"], stream=False, request=body, action=compact.ACTION)
        chat, tools = translate(body)
        return chat, Exchange(model=chat["model"], stream=chat.get("stream") is True, request=body, tools=tools,
                              asks_reasoning=summary_asked(body) is not None,
                              dropped=tuple(tools.dropped))

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        if ex.action == compact.ACTION:
            ex.output = compact.compaction_object(completion, ex, usage_to_responses)
            return ex.output
        ex.output = chat_to_response(completion, ex)
        if ex.keeper is not None:  # stored before it is sent (its JSON made once, for both)
            ex.output = ex.keeper.whole(ex.output)
        return ex.output

    def kept(self, settings: Any, state: Any) -> Any:
        """The key its sealed content (compaction, reasoning) opens with on every worker, and its stored responses
        when RESPONSES_STORE is on (kept.py)."""
        compact.SEAL.use(seal_key(settings))
        if state is None:
            return None
        from argoproxy.fronts.responses.kept import KeptResponses  # the store's modules: in the worker only
        return KeptResponses(state, self.encode_event)

    def stream(self, chunks: Iterable[dict[str, Any] | str], ex: Exchange) -> Iterator[dict[str, Any]]:
        keeper = ex.keeper
        if keeper is not None and keeper.background:  # its events and progress kept as they go
            kept: Iterator[dict[str, Any]] = keeper.events(stream_events(chunks, ex))
            return kept
        # a stored answer is kept at its end, before its terminal event (no layer over every event)
        return stream_events(chunks, ex, keeper.save if keeper is not None else None, ex.encoded_events)
