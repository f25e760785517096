"""A toy API door: `POST /v1/toy/ask` takes {"model", "question", "stream"} and answers {"model", "answer"}, or,
streamed, SSE events `text` (a piece of the answer) and a last `done`. Its errors are {"error": message}."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import DoorArgs, DoorRoute, Exchange, Front, StreamState, first_choice


class ToyFront(Front):
    name = "toy"  # the label of metrics, journals and FRONTS_PASSTHROUGH
    routes = (DoorRoute("v1/toy/ask", "toy_ask"),)
    passes_through = False  # no upstream speaks the toy API itself

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        model, question, stream = body.get("model"), body.get("question"), body.get("stream", False)
        if not isinstance(model, str) or not model:
            raise ProxyError(400, "`model` must name a model.", param="model")
        if not isinstance(question, str):
            raise ProxyError(400, "`question` must be text.", param="question")
        if not isinstance(stream, bool):
            raise ProxyError(400, "`stream` must be true or false.", param="stream")
        chat = {"model": model, "messages": [{"role": "user", "content": question}], "stream": stream}
        return chat, Exchange(model=model, stream=stream, request=body, chat=chat)

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        message = first_choice(completion).get("message") or {}
        ex.output = {"model": ex.model, "answer": message.get("content") or ""}
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        return ToyStream(ex).run(chunks)

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        return {"error": err.get("message") or ""}


class ToyStream(StreamState):
    """Chat chunks in, the toy's events out (the default encoder writes each as `event: TYPE` and its JSON)."""

    def start(self) -> None:
        pass  # the toy's stream has no opening event

    def text(self, text: str) -> None:
        self.events.append({"type": "text", "text": text})

    def reasoning(self, text: str) -> None:
        pass  # the toy API has no place for reasoning...

    def tool_call(self, key: int, fragment: dict[str, Any]) -> None:
        pass  # ...nor for tool calls

    def finish(self) -> None:
        self.events.append({"type": "done", "model": self.ex.model})

    def fail(self, err: ProxyError) -> None:
        self.events.append({"type": "error", "error": err.message})
