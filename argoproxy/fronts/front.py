"""Front doors: the client APIs the proxy speaks besides OpenAI chat completions.

A front door translates the client's request into the one internal request (an OpenAI chat-completions
body) and the answer back (a whole chat.completion, or the chunk iterator after the think transform). Every
guard, transform and observer of the pipeline runs on the internal request, so they work the same behind
every door. The translations are pure functions (dict in, dict out; iterator in, iterator out) in each door's
package: responses/ (OpenAI Responses API), messages/ (Anthropic Messages API), google/ (Google GenAI) and
ollama/; this module holds the small interface they implement and what they share (the package's __init__ is the
registry).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

from argoproxy.edge.classify import Route
from argoproxy.errors import ProxyError
from argoproxy.fronts import long_strings
from argoproxy.ids import new_id as new_id  # the doors name it from here
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.adapt import Shape
from argoproxy.pipeline.answer_shape import chunk_text
from argoproxy.pipeline.call_keys import CallKeys
from argoproxy.pipeline.reservation import Spelled
from argoproxy.pipeline.door_api import DoorArgs as DoorArgs  # the sequence's own (the doors' modules name it from here too)
from argoproxy.pipeline.stream_usage import OutputCount, estimated_usage, prompt_tokens

# Chunk-delta keys that carry reasoning text (DeepSeek/DashScope/vLLM<0.10; newer vLLM, OpenRouter).
REASONING_KEYS = ("reasoning_content", "reasoning")
ARGS_LIMIT = 8 * 1024 * 1024  # bytes of tool-call arguments a door's stream may hold back (to send them whole)
# What a door's stream keeps besides text: each output item, block or tool call costs a record, each kept piece
# of text an object. Counted so that an upstream opening a million calls, or sending text two characters at a
# time, cannot grow a worker without end (a review saw +939 MB for 2,000 calls with 60 KB names).
MAX_ITEMS = 4096  # output items, blocks or tool calls in one answer
MAX_LABEL = 1024  # characters of a tool call's id or name
PIECE_COST = 32  # characters a kept piece counts for besides its own (doors keeping text for a journal only)
COMPACT = 256  # kept pieces joined into one (doors whose closing events repeat the text: Pieces)
# Characters of reasoning counted for reasoning tokens the upstream did not report (the rest measured and scaled):
# a split of the output, where 16 KB cost half a millisecond per answer.
REASONING_SAMPLE = 4096


class Pieces(list[str]):
    """Text pieces kept for closing events, every COMPACT of them joined into one: a string per two-character
    delta cost 25 times its text, and counting that cost against MAX_SSE_EVENT_BYTES would cut answers that
    fit it (one-token deltas at a ninth of it)."""

    loose = 0  # pieces appended since the last join

    def append(self, text: str) -> None:
        list.append(self, text)
        self.loose += 1
        if self.loose >= COMPACT:
            self[-COMPACT:] = ["".join(self[-COMPACT:])]
            self.loose = 0

    def add_joined(self, text: str) -> None:
        """Text that is the join of at most COMPACT pieces already: kept as the one piece a join makes (not joined
        again with the next ones, which would copy ever more of the text at once)."""
        list.append(self, text)


@dataclass(frozen=True)
class DoorRoute:
    """A fixed route a door serves: its path (matched whatever its case), the kind metrics and journals name it
    by, the family that serves it (serve/door.py: `front` translated through the one sequence, `models` the
    door's model list or one model, `own` answered by the door alone), its methods, and whether it is served
    without its leading v1/ too (base URLs without /v1)."""
    path: str
    kind: str
    family: str = "front"
    methods: tuple[str, ...] = ("POST",)
    bare: bool = False


@dataclass
class Exchange:
    """What a front door remembers about one request between translating it and translating its answer."""
    model: str
    stream: bool
    request: dict[str, Any]  # the client's body as it came (fields echoed back in the answer)
    created: int = field(default_factory=lambda: int(time.time()))
    thinking: bool = True  # surface reasoning text (Messages: only when the client asked for thinking)
    # The client asked for reasoning in its API's own way (Messages `thinking`, Google `includeThoughts`, Responses
    # `reasoning.summary`): under THINK_MODE=strip its <think> text becomes reasoning (pipeline/think.py).
    asks_reasoning: bool = False
    stop_sequences: tuple[str, ...] = ()
    input_tokens: int | None = None  # an estimate for stream starts that need one before usage arrives
    tools: Any = None  # the front's own tool bookkeeping (Responses: how calls are named back)
    dropped: tuple[str, ...] = ()  # tool types the door dropped: a chat backend cannot run them (logged)
    chat: dict[str, Any] | None = None  # the internal request (its prompt is estimated when no usage comes)
    # Characters of answer text (text, reasoning, tool arguments) a stream encoder may keep for its closing
    # events and its final object; the rest only passes through (Front.answer_budget).
    keep: int = 16 * 1024 * 1024
    # Filled while the answer is translated (journals and metrics read them).
    usage: dict[str, Any] | None = None  # the internal (chat) usage
    usage_estimated: bool = False  # the upstream sent none: counted here (argoproxy/pipeline/stream_usage.py)
    output: dict[str, Any] | None = None  # the translated whole answer
    error: ProxyError | None = None  # the error that ended a stream
    cut: bool = False  # the encoder ended the stream early: it would have had to keep more than `keep`
    # The internal request the door's request became: a chat completion, or (an embeddings door) embeddings.
    kind: str = "chat"
    path: str = "v1/chat/completions"
    # Stored responses (argoproxy/state/): the fields the answer object echoes (its id, store,
    # previous_response_id...) and the keeper that saves the answer as it goes out. None: stateless.
    state: dict[str, Any] | None = None
    keeper: Any = None
    # The fields each of the door's answer objects repeats from the request, made with the first (Responses).
    echo: Any = None
    # Its stream's events go straight to the door's encoder (serve.FrontAnswers.encoded), which writes an event
    # that comes as bytes as it is: a door may encode its most frequent one itself (Responses' text deltas).
    encoded_events: bool = False
    action: str = ""  # the operation the path named (DoorArgs.action): "" for the door's main one


class Front:
    """The interface of a front door; subclasses are stateless and shared by all requests. A door owns everything
    about its API: the routes it serves (`routes`, `route`), how its clients are told apart on routes it shares
    (`claims_client`, `looks_like_mine`), its model list's shape, its key spellings, its error shape and headers,
    and its answer encoder. Nothing outside argoproxy/fronts/ names a door (tests/unit/test_door_names.py);
    docs/adding-a-door.md is the guide."""

    name = "chat"
    #: the fixed routes the door serves (DoorRoute), registered in the one route table (edge/classify.py)
    routes: tuple[DoorRoute, ...] = ()
    #: leading segments (lower case) of forwarded paths that answer in this door's error shape
    forwarded_prefixes: tuple[tuple[str, ...], ...] = ()
    #: headers besides `Authorization: Bearer` its clients send their key in (read on every route, then removed)
    key_headers: tuple[str, ...] = ()
    #: query parameters its clients may send their key in (read on its routes only; never sent upstream)
    key_params: frozenset[str] = frozenset()
    #: how its clients send a key, for the 401 of a request that sent none ("": the proxy's general words)
    key_hint = ""
    #: consecutive turns are joined as its clients' streamed pieces were written (no blank line between them)
    joins_answer_pieces = False
    #: its stream's first event carries the prompt's token count, needed before the upstream's usage arrives
    counts_prompt_first = False
    #: FRONTS_PASSTHROUGH may name it: an upstream that serves its API itself gets its requests as they came
    passes_through = True
    #: where its own body keeps the reasoning effort and the output limit, for capability adaptation of a body
    #: relayed as it is (pipeline/adapt.py); None: not relayed so
    native_shape: Shape | None = None
    #: how its own body says what it may generate, for a token limit's reservation of a body relayed as it is
    #: (pipeline/reservation.py); None: not relayed so (its translation is read)
    spelled: Spelled | None = None
    #: (path glob, Spelled) for bodies in its API sent as they are: its forwarded paths, a batch's lines
    spelled_paths: tuple[tuple[str, Spelled], ...] = ()
    #: under FRONTS_PASSTHROUGH its paths are forwarded as they are (the whole API, byte for byte), not relayed
    #: one request at a time through its routes
    forwarded_when_passed_through = False
    #: (path glob, reader) for its forwarded paths that name their model elsewhere than `model`: the one guard
    #: reads them (argoproxy/edge/model_readers.py; held to ALLOWED_MODELS and team keys' globs), under
    #: FRONTS_PASSTHROUGH too
    model_readers: tuple[tuple[str, Any], ...] = ()
    #: (route after the API prefix, lower case; a DoorBatch, pipeline/batch_models.py) for its forwarded batch
    #: routes whose body lists requests: the guard checks each one's model, a token limit reserves for each
    batch_routes: tuple[tuple[str, Any], ...] = ()
    #: Forwarded paths ("METHOD /path" globs) that change what the upstream serves for everyone (Ollama's pull,
    #: push, copy, create, delete) or act on its account (Ollama's sign-out): the operator's keys only; a team
    #: key and a key_limits key are refused there (they may use models, not change the upstream).
    operator_paths: tuple[str, ...] = ()
    #: Forwarded paths ("METHOD /path" globs) whose answer is the upstream's model list (Ollama's /api/tags and
    #: /api/ps under FRONTS_PASSTHROUGH): filtered by `listed`, as the proxy's own list is, while ALLOWED_MODELS
    #: or a team key's globs are in force.
    forwarded_lists: tuple[str, ...] = ()
    #: what SSE_KEEPALIVE sends while a stream waits on its upstream (argoproxy/edge/keepalive.py)
    keepalive_beat = b": keepalive\n\n"
    #: the chat-completions path the internal request takes upstream
    chat_path = "v1/chat/completions"
    #: chat-completions parameter -> the front's own name, for errors the chat request's checks raise
    renamed: Mapping[str, str] = {}
    #: its stream events hold the answer's text as strings, a long one written a slice at a time (encode_pieces);
    #: False where the events come with their text encoded already (the Google door's)
    texts_in_events = True

    # ------------------------------------------------------------ routes and clients
    def route(self, parts: tuple[str, ...]) -> Route | None:
        """A route for a path the fixed routes do not hold (the canonical path's segments), or None: the door
        claims paths it alone has (Google's /v1beta/...)."""
        return None

    def claims_client(self, headers: Mapping[str, str], query: str) -> bool:
        """On a route every door shares (GET /v1/models), is the client one of this door's? It then gets the
        door's shape (the model list, errors)."""
        return False

    def looks_like_mine(self, target: str) -> bool:
        """Is a raw request target refused before it has a route (a bad path) plainly meant for this door? Its
        400 then comes in the door's error shape."""
        return False

    def door_args(self, route: Route, query: str) -> DoorArgs | None:
        """What the request target says beside the body (the model and method in Google's path)."""
        return None

    def unserved(self, route: Route, method: str) -> ProxyError | None:
        """The error for a method the route does not take, when the door says it better than a 405."""
        return None

    # ------------------------------------------------------------ the model list and the door's own answers
    def model_list(self, data: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        """The proxy's model list (OpenAI entries, filtered) in the door's shape, for a `models` route of this
        kind (a door that claims clients on GET /v1/models, or has model routes, answers them here)."""
        return {"object": "list", "data": data}

    def model_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """One model (an OpenAI entry) in the door's shape."""
        return dict(entry)

    def listed(self, answer: Any, keep: Callable[[Any], bool]) -> Any:
        """A forwarded model list (`forwarded_lists`) with only the entries whose name `keep` takes."""
        return answer

    def model_named(self, body: Any) -> str | None:
        """The model a `model` route's body names (a route that takes it in its body, not its path)."""
        return None

    def own_answer(self, kind: str) -> dict[str, Any]:
        """The answer of an `own` route of the door, which asks nothing of an upstream."""
        raise ProxyError(404, f"No route of kind {kind} on this door.", code="unknown_route")

    def id_headers(self, request_id: str) -> dict[str, str]:
        """Headers naming the request id where the door's clients read it (besides X-Request-ID)."""
        return {}

    def keepalive_for(self, ex: Exchange) -> bytes:
        """What SSE_KEEPALIVE sends while this exchange's stream waits on its upstream."""
        return self.keepalive_beat

    def withheld_params(self, headers: Mapping[str, str]) -> frozenset[str]:
        """Parameters the API version its client asks for (in `headers`) refuses: LLM_PARAMS and model rules
        add none of them to its request relayed as written to an upstream that speaks its API."""
        return frozenset()

    # ------------------------------------------------------------ translation
    def own_error(self, err: ProxyError) -> ProxyError:
        """An error about the internal chat request, naming the parameter the client sent."""
        name = self.renamed.get(err.param or "")
        if name:
            err.message = err.message.replace(f"`{err.param}`", f"`{name}`")
            err.param = name
        return err

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        """The client's request as a chat-completions body, and what the answer translation needs
        (count_only: a token-count request, which has no answer; args: what the path said). Raises
        ProxyError(400) naming the parameter for a request the door cannot serve."""
        raise NotImplementedError

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        """A whole chat.completion as the front's answer object."""
        raise NotImplementedError

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        """chat.completion.chunk dicts as the front's stream events (dicts with a `type`). A ProxyError the
        chunk iterator raises becomes the front's terminal error events (and is kept in ex.error)."""
        raise NotImplementedError

    def plain_texts(self, ex: Exchange) -> bool:
        """Does its stream take an upstream event that carries text alone as that text, a str read straight from
        the event's bytes (fronts/plain_chunks.py), instead of the chunk? StreamState.chunk does; a stream that
        reads more of each chunk (token logprobs) does not."""
        return False

    def answer_budget(self, max_sse_event_bytes: int, journal_bytes: int) -> int:
        """Exchange.keep for a stream: what the front's closing events must repeat is bounded by the size of one
        event; what only a journal reads, by what the journal records whole (0: no journal)."""
        return journal_bytes

    def encode_event(self, event: dict[str, Any]) -> bytes:
        """One stream event as SSE: named events (`event: <type>`), as both vendors send them."""
        kind: str = event["type"]
        return b"event: " + kind.encode() + b"\ndata: " + dumps(event) + b"\n\n"

    def encode_pieces(self, event: dict[str, Any]) -> Iterator[bytes]:
        """encode_event in pieces: an event repeating a long text (Responses' closing events, an echoed request
        field) is written a slice of that text at a time, never copied whole (argoproxy.fronts.long_strings)."""
        swapped, texts = long_strings.swap(event)
        pieces = long_strings.spliced(self.encode_event(swapped), texts) if texts else None
        if pieces is None:
            yield self.encode_event(event)
            return
        yield from pieces

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        """An error in the front's own shape, from the OpenAI-shaped {"message", "type", "param", "code"}."""
        body = {"error": dict(err)}
        body["error"]["request_id"] = request_id
        return body

    def client_key(self, headers: Mapping[str, str]) -> str | None:
        """The key the client presented (Bearer token), as the upstream credential when the proxy has none."""
        return bearer(headers.get("Authorization"))

    def upstream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The client's headers as they may go to a chat-completions upstream (front-only headers dropped)."""
        return headers

    def stream_type(self, ex: Exchange) -> str:
        """The Content-Type of the front's streamed answer."""
        return "text/event-stream; charset=utf-8"

    def count_answer(self, count: int) -> dict[str, Any]:
        """A token count (count_tokens routes) in the front's shape."""
        return {"input_tokens": count}

    # ------------------------------------------------------------ stored state (argoproxy/state/)
    def kept(self, settings: Any, state: Any) -> Any:
        """What the door keeps, for one worker (fronts/kept.py asks every door): its side of the stored state over
        the worker's StateService `state` (None: RESPONSES_STORE is off), as fronts/kept.py's DoorKept (serve,
        request_for, serves_routes, claim, answer_route); None: the door keeps nothing. A door also readies here
        what it needs of the settings whether it stores or not (the Responses door: its seal key)."""
        return None


class StreamState:
    """What both fronts' stream translations share: chat chunks in, the front's events out. A subclass opens
    and closes its own items or blocks (reasoning, text, tool_call) and writes the start and the end; this
    reads each chunk's usage, deltas and finish reason, collects the events, and ends a stream that raised a
    ProxyError in the front's own failure events (kept in ex.error).

    Memory: only the events of the chunk in hand are held, and the answer text a subclass keeps for its
    closing events or final object, counted through `keeping` against ex.keep. A subclass that must keep
    everything it sent (Responses repeats it) sets ex.cut and the stream ends early; one that keeps text only
    for a journal stops keeping it."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.events: list[Any] = []  # dicts; a door may add one encoded already (bytes: Exchange.encoded_events)
        self.choice: dict[str, Any] = {}  # the chunk choice that carried the finish reason
        self.counted = OutputCount()  # output tokens, for an upstream that sends no usage
        self.reasoned = OutputCount(REASONING_SAMPLE)  # reasoning tokens, for an upstream whose usage leaves them out
        self.kept_size = 0  # characters of answer text kept so far (against ex.keep)
        # Tool calls that began while another one streamed: [id, name, argument fragments], by chat index. A
        # door that sends one item or block at a time sends them whole when the open one is done (release),
        # because an upstream may still add to the open one (interleaved parallel calls).
        self.waiting: dict[Any, list[Any]] = {}
        self.waiting_bytes = 0
        self.items = 0  # output items, blocks and tool calls opened (new_item)
        self.call_keys = CallKeys()  # which call each tool-call fragment adds to
        self.refused = False  # a refusal came (chat's `refusal` deltas)

    def wait(self, key: Any, fragment: dict[str, Any], function: dict[str, Any]) -> None:
        """Hold a fragment of a call that must wait, or of any call for a door that sends calls whole (up to
        ARGS_LIMIT bytes of arguments in all)."""
        call = self.waiting.get(key)
        if call is None:
            self.new_item(fragment.get("id"), function.get("name"))
            call = self.waiting[key] = [None, "", Pieces()]  # joined as they grow: 8 MB of 2-byte fragments
        call[0], call[1] = call[0] or self.label(fragment.get("id")), call[1] or self.label(function.get("name")) or ""
        args = function.get("arguments")
        if isinstance(args, str) and args:
            self.waiting_bytes += len(args)
            if self.waiting_bytes > ARGS_LIMIT:
                raise ProxyError(502, f"The upstream's tool-call arguments held back exceed {ARGS_LIMIT} bytes.",
                                 code="upstream_answer_too_large")
            call[2].append(args)

    def waited(self) -> list[tuple[Any, str | None, str, str]]:
        """The calls that waited, in the order they began, as (key, id, name, arguments); none wait after."""
        waiting, self.waiting, self.waiting_bytes = self.waiting, {}, 0
        self.items -= len(waiting)  # counted again as they open
        return [(key, call_id, name, "".join(pieces)) for key, (call_id, name, pieces) in waiting.items()]

    piece_cost = PIECE_COST  # a door that joins its pieces (Pieces) counts text only

    def keeping(self, size: int) -> bool:
        """Count `size` more characters (and piece_cost for the piece) as kept; False (nothing counted) when that
        would pass ex.keep."""
        size += self.piece_cost
        if self.kept_size + size > self.ex.keep:
            return False
        self.kept_size += size
        return True

    def new_item(self, *labels: Any) -> None:
        """An output item, block or tool call opens (`labels`: a call's id and name): at most MAX_ITEMS of them,
        labels of at most MAX_LABEL characters; else the answer ends as too large."""
        self.items += 1
        if self.items > MAX_ITEMS:
            raise ProxyError(502, f"The upstream's answer has more than {MAX_ITEMS} output items or tool calls.",
                             code="upstream_answer_too_large")
        for label in labels:
            self.label(label)

    @staticmethod
    def label(value: Any) -> Any:
        """A tool call's id or name, at most MAX_LABEL characters."""
        if isinstance(value, str) and len(value) > MAX_LABEL:
            raise ProxyError(502, f"The upstream sent a tool call id or name longer than {MAX_LABEL} characters.",
                             code="upstream_answer_too_large")
        return value

    def run(self, chunks: Iterable[dict[str, Any] | str]) -> Iterator[dict[str, Any]]:
        self.start()
        yield from self.drain()
        try:
            for chunk in chunks:
                self.chunk(chunk)
                if self.events:
                    yield from self.drain()
                if self.ex.cut:
                    break
            self.end()
        except ProxyError as err:
            self.ex.error = err
            self.fail(err)
        yield from self.drain()

    def end(self) -> None:
        """The chunks are done: usage estimated if none came, reasoning counted, the closing events made."""
        if self.ex.usage is None:
            estimate_usage(self.ex, self.counted.total())
        count_reasoning(self.ex, self.reasoned)
        self.finish()

    def drain(self) -> list[Any]:  # dicts, and bytes a door wrote itself (Exchange.encoded_events)
        events, self.events = self.events, []
        return events

    def chunk(self, chunk: dict[str, Any] | str) -> None:
        if isinstance(chunk, str):  # a chunk's text alone, read so already (Front.plain_texts)
            self.counted.add(chunk)
            self.text(chunk)
            return
        text = chunk_text(chunk)  # the shape is checked here, once (serve.FrontAnswers.chunks leaves it)
        if text is not None:  # most chunks: their text alone
            self.counted.add(text)
            self.text(text)
            return
        if chunk.get("usage"):
            self.ex.usage = chunk["usage"]
        choice = first_choice(chunk)
        delta = choice.get("delta") or {}
        reasoning = reasoning_of(delta)
        if reasoning:
            self.counted.add(reasoning)  # output tokens, surfaced or not
            self.reasoned.add(reasoning)
            if self.ex.thinking:
                self.reasoning(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.counted.add(content)
            self.text(content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self.counted.add(refusal)
            self.refused = True
            self.refusal(refusal)
        for position, fragment in enumerate(delta.get("tool_calls") or ()):
            if isinstance(fragment, dict):
                self.counted.add_call(fragment)
                self.tool_call(self.call_keys.key(position, fragment), fragment)
        if choice.get("finish_reason") is not None:
            self.choice = choice

    def start(self) -> None:
        raise NotImplementedError

    def reasoning(self, text: str) -> None:
        raise NotImplementedError

    def text(self, text: str) -> None:
        raise NotImplementedError

    def refusal(self, text: str) -> None:
        """A model's refusal: said as text where the door's API has no place of its own for it."""
        self.text(text)

    def tool_call(self, key: int, fragment: dict[str, Any]) -> None:
        """A fragment of the call `key` names (call_keys.py)."""
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def fail(self, err: ProxyError) -> None:
        raise NotImplementedError


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def first_choice(obj: dict[str, Any]) -> dict[str, Any]:
    """Choice 0 of a chat.completion or chunk (the fronts have no `n`)."""
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return {}


@dataclass
class WholeAnswer:
    """Choice 0 of a whole chat.completion, in the parts both fronts build their answer from."""
    choice: dict[str, Any]
    message: dict[str, Any]
    reasoning: str  # "" when there is none, or the client did not ask for it
    text: str
    calls: list[dict[str, Any]]
    refusal: str | None  # a model's refusal (OpenAI's structured outputs), in chat's own field


def whole_answer(completion: dict[str, Any], ex: Exchange) -> WholeAnswer:
    """A whole chat.completion split into its parts (its usage kept in ex.usage, estimated when it has none)."""
    choice = first_choice(completion)
    message = choice.get("message") or {}
    ex.usage = completion.get("usage") if isinstance(completion.get("usage"), dict) else None
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
    if ex.usage is None:
        output = OutputCount()
        output.add_delta({**message, "content": text_of(message.get("content")), "tool_calls": calls})
        estimate_usage(ex, output.total())
    reasoning = reasoning_of(message)
    if reasoning:
        reasoned = OutputCount(REASONING_SAMPLE)
        reasoned.add(reasoning)
        count_reasoning(ex, reasoned)
    refusal = message.get("refusal")
    return WholeAnswer(choice, message, reasoning if ex.thinking else "", text_of(message.get("content")),
                       calls, refusal if isinstance(refusal, str) else None)


def embedding_vectors(result: dict[str, Any], ex: Exchange) -> list[list[Any]]:
    """An OpenAI embeddings answer's vectors in input order (its usage noted on the exchange); an answer with no
    list of embeddings is the upstream's fault (502)."""
    data = result.get("data")
    if not isinstance(data, list) or not all(isinstance(d, dict) and isinstance(d.get("embedding"), list)
                                             for d in data):
        raise ProxyError(502, "The upstream's embeddings answer has no list of embeddings.",
                         code="upstream_bad_response")
    ex.usage = result.get("usage") if isinstance(result.get("usage"), dict) else None
    return [d["embedding"] for d in sorted(data, key=lambda d: d.get("index") if isinstance(d.get("index"), int)
                                           else 0)]


def estimate_usage(ex: Exchange, completion_tokens: int) -> None:
    """The upstream sent no usage: the count_tokens estimate of the prompt and the counted output."""
    prompt = ex.input_tokens if ex.input_tokens is not None else prompt_tokens(ex.chat) if ex.chat else 0
    ex.usage = estimated_usage(prompt, completion_tokens)
    ex.usage_estimated = True


def count_reasoning(ex: Exchange, reasoned: OutputCount) -> None:
    """Reasoning passed but the upstream's usage does not count it (llama.cpp and vLLM leave reasoning_tokens
    out): it is counted from its text, at most the completion's count, so every door's usage shows it."""
    usage = ex.usage
    if not reasoned.seen or not isinstance(usage, dict):
        return
    details = usage.get("completion_tokens_details")
    details = details if isinstance(details, dict) else {}
    if details.get("reasoning_tokens"):
        return
    counted = reasoned.total()
    completion = usage.get("completion_tokens")
    if type(completion) is int:
        counted = min(counted, completion)
    ex.usage = {**usage, "completion_tokens_details": {**details, "reasoning_tokens": counted}}


def reasoning_of(holder: Mapping[str, Any]) -> str:
    """The reasoning text of a message or delta, under whichever name the upstream used."""
    for key in REASONING_KEYS:
        value = holder.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def text_of(content: Any) -> str:
    """The text of a chat message content (a string or text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> ProxyError:
    return ProxyError(400, message, param=param, code=code)
