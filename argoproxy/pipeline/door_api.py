"""What the sequence asks of an API door (the front doors under argoproxy/fronts/ implement it; serve/build.py
hands the sequence their answer encoder), so that the pipeline never imports a door, as it reaches providers
(backend.py) and routing, key budgets and stored Responses (collaborators.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Protocol

if TYPE_CHECKING:  # (the Gunicorn master imports the doors' registry: nothing here may pull requests in)
    from argoproxy.errors import ProxyError
    from argoproxy.pipeline.backend import StreamItem
    from argoproxy.upstream.wire import UpstreamResponse
    from argoproxy.pipeline.adapt import Shape
    from argoproxy.pipeline.call import Call
    from argoproxy.meter import Spelled


class Exchanged(NamedTuple):
    """The exchange's result (pipeline/exchange.py), as the door's encoder takes it: the upstream's response and
    its answer decoded, whole (`whole`: the upstream's bytes or object; `assembled`: an object the backend made
    from requests of its own, with no response to relay) or as a stream of items (through the think transform)."""
    resp: UpstreamResponse | None
    whole: dict[str, Any] | bytes | None = None
    items: Iterator[StreamItem] | None = None
    assembled: bool = False


class Outgoing(NamedTuple):
    """A door's answer as its encoder made it, which the answer side sends (answers.py's Answers.delivered: a whole
    body through the byte filters, counted and observed; a stream's pieces relayed as they come). The encoder has
    written what it found in the Outcome (usage, the answer for the journals)."""
    status: int
    headers: list[tuple[str, str]]
    body: bytes | Iterator[bytes]


class AnswerEncoder(Protocol):
    """A door's answer side: the decoded (and thought) upstream answer in the client's format."""

    def encode(self, call: Call, exchanged: Exchanged) -> Outgoing:
        """The exchange's result in the door's format (no I/O but reading the upstream's stream as it is sent)."""

    def error_event(self, call: Call, err: ProxyError) -> bytes: ...

    def stream_headers(self, call: Call) -> list[tuple[str, str]]: ...

    def keepalive_beat(self, call: Call) -> bytes: ...


@dataclass(frozen=True)
class DoorArgs:
    """What the request target says beside the body: the Google door names the model and the method in its path
    (`/v1beta/models/{model}:streamGenerateContent?alt=sse`); the other doors read both from the body."""
    model: str | None = None
    stream: bool = False
    sse: bool = True  # a Google stream as SSE (`alt=sse`), else as one JSON array
    action: str = ""  # an operation the path names besides the door's main one (Responses' `compact`)


class DoorExchange(Protocol):
    """A door's translation state for one request (fronts/front.py's Exchange), as far as the sequence reads and
    sets it; the door's own answer encoder reads the rest."""
    kind: str  # the internal request the door's became: chat, or (an embeddings door) embeddings
    path: str
    stream: bool
    dropped: tuple[str, ...]  # what a chat backend cannot run, left out (logged)
    input_tokens: int | None  # the prompt's estimate, for a stream whose start needs one
    chat: dict[str, Any] | None  # the internal request
    keep: int  # characters of answer text its stream encoder may keep for its closing events
    asks_reasoning: bool  # the client asked for reasoning in its API's own way (THINK_MODE=strip gives it then)


class FrontDoor(Protocol):
    """An API door, as the sequence uses it (fronts/front.py's Front)."""
    name: str
    native_shape: Shape | None  # where its own body keeps the reasoning effort and the output limit
    spelled: Spelled | None  # how its own body, relayed as it is, says what it may generate (reservations)
    joins_answer_pieces: bool
    counts_prompt_first: bool

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], DoorExchange]: ...

    def answer_budget(self, max_sse_event_bytes: int, journal_bytes: int) -> int: ...

    def upstream_headers(self, headers: dict[str, str]) -> dict[str, str]: ...

    def own_error(self, err: ProxyError) -> ProxyError: ...

    def withheld_params(self, headers: Mapping[str, str]) -> frozenset[str]: ...

    def count_answer(self, count: int) -> dict[str, Any]: ...


class DoorAnswers(AnswerEncoder, Protocol):
    """The doors' answer encoder (fronts/serve.py's FrontAnswers): a translated call's answer in its door's shape."""

    def headers(self, call: Call, headers: list[tuple[str, str]]) -> list[tuple[str, str]]: ...
