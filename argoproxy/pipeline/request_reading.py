"""How the sequence reads a request for what it may reserve of a limit (the meter's Asked, meter/worst.py), read
only when a limit or the fair queue needs it: an API request, a door's (its translation, a stored conversation's
history, or its own body where the upstream serves its API), a forwarded body or batch. What bounds an answer no
field bounds (the meter's ModelBounds: the limit the proxy supplies for a model, its context as listed) and the most a
call may cost are read here too."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from argoproxy.edge.model_readers import Reader, reader_for
from argoproxy.meter import OPENAI, Asked, Reading, Worst, most_nanos, shape_of
from argoproxy.pipeline.batch_models import BatchModels, DoorBatches, upstream_fetch
from argoproxy.pipeline.forwarded_body import forwarded_body
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.model_context import ModelContexts
from argoproxy.upstream.answer_bounds import MAX_PROBE_ANSWER

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.pipeline.backend import Backend
    from argoproxy.pipeline.capabilities import CapabilityTable
    from argoproxy.pipeline.collaborators import StoredResponses
    from argoproxy.pipeline.door_api import DoorArgs, FrontDoor
    from argoproxy.spend import Pricer
    from argoproxy.upstream.client import Upstream


class RequestReading:
    """One worker's reading of requests: its backend's spellings (routed: any OpenAI-compatible server), its
    models' supplied limits and contexts, the doors' own spellings of forwarded bodies (`spelled`), the stored
    conversations of the stateful door."""

    def __init__(self, settings: Settings, backend: Backend, upstream: Upstream, capabilities: CapabilityTable,
                 listing: Callable[[], list[Any]], *, routed: bool = False, stored: StoredResponses | None = None,
                 spelled: tuple[tuple[str, Any], ...] = (), batches: DoorBatches = (), pricer: Pricer | None = None,
                 serving: Callable[[str], list[tuple[Any, str]]] | None = None) -> None:
        """`listing`: the models served, for their contexts; `pricer` and `serving` (a model -> each deployment
        that may serve it: its price source, its name for the model): what a call may cost at most."""
        self.routed = routed
        self.pricer, self.serving = pricer, serving
        self.reading: Reading = OPENAI if routed else backend.reading  # routed: any OpenAI-compatible server
        self.backend, self.upstream, self.capabilities = backend, upstream, capabilities
        self.image_tokens = settings.meter_image_tokens  # Bounds: an image of a model of no known family
        self.contexts = ModelContexts(listing)  # the models' contexts, for reservations (read when asked)
        self.stored, self.spelled = stored, spelled
        self.batches = BatchModels(settings.max_body_bytes, settings.timeout, batches)

    # ---------------------------------------------------------------- the meter's ModelBounds
    def supplied_limit(self, model: str | None) -> int | None:
        """The output limit adapt sends for a model when a request sets none."""
        caps = self.capabilities.lookup(None, model)
        return caps.max_tokens if caps is not None else None

    def context(self, model: str | None) -> int | None:
        """The model's context as the model list says it (read again every few minutes)."""
        return self.contexts(model)

    def most_cost(self, call: Call, input_tokens: int, output_tokens: int) -> int | None:
        """The most a call may cost at its model's prices (a team key's dollar budget holds it)."""
        if self.pricer is None or self.serving is None:
            return None
        return most_cost(call, input_tokens, output_tokens, self.pricer, self.serving(call.plan.model or ""))

    # ---------------------------------------------------------------- requests
    def api(self, call: Call, body: dict[str, Any], front: FrontDoor | None, count_only: bool,
            args: DoorArgs | None) -> Asked:
        """An API request: the body as sent, or the request an API door makes of it (its own spellings of the
        answer limit, its contents and images read as the door reads them): the chat request it translates to,
        with a stored conversation's history, or the door's own body where the upstream serves its API and is
        sent it as written (native relay)."""
        plan = call.plan
        if front is None:
            return Asked(lambda: (plan.kind, body), self.reading, self)

        def read() -> tuple[Any, Any]:
            if count_only:
                return "count", body
            if self.relays(front, plan.model):
                return front.spelled or "forwarded", body  # its own body, as its door says it is read
            asked = body
            if self.stored is not None and self.stored.serves(front):
                asked = self.stored.request_for(call, body)
            return "chat", front.to_chat(asked, count_only, args)[0]
        return Asked(read, self.reading, self, plan.model)

    def relays(self, front: FrontDoor, model: str | None) -> bool:
        """Does the upstream serve this door's API itself, its requests relayed as written (native relay)?"""
        return not self.routed and self.backend.native_front(front.name, model)

    def forwarded(self, call: Call) -> Asked:
        """A forwarded request (or a backend's own route): its JSON body in the shape its path says (a door's own
        API, llama.cpp's /completion...), or a batch's requests (each line of its input file, read from the
        upstream)."""
        def read() -> tuple[Any, Any]:
            if call.client.method != "POST":  # reading back, deleting: nothing generated, nothing charged
                return "read", None
            if self.batches.lists_requests(call.client.method, call.plan.path):
                fetch = upstream_fetch(self.upstream.send, self.backend.url, self.backend.upstream_headers(call),
                                       call.plan.query)
                lines: Iterable[tuple[str, Any]] = self.batches.requests(call, fetch)
                return "batch", ((self.shape_for(url), line) for url, line in lines)
            shape = self.shape_for(call.plan.path)
            return (shape, None) if shape == "read" else (shape, forwarded_body(call, strict=True))
        return Asked(read, self.reading, self)

    def shape_for(self, path: str) -> Any:
        """How a body sent to `path` says what it may generate: in a door's own API (its `spelled_paths`), else
        as an OpenAI-compatible server reads it (meter/worst.py)."""
        spelled: Reader | None = reader_for(self.spelled, path.lstrip("/"))
        return spelled or shape_of(path)


def most_cost(call: Call, input_tokens: int, output_tokens: int, pricer: Pricer,
              serving: list[tuple[Any, str]]) -> int | None:
    """The most a call may cost, in nano-dollars, on whichever deployment may serve its model (`serving`: each
    deployment's price source and its name for the model); None when one of them has no price for it. The
    meter's worst case priced once (meter/dollars.py), kept with it for the trace."""
    model = call.plan.model or ""
    named = [(source, tuple(dict.fromkeys(n for n in (name, model) if n))) for source, name in serving]
    asked = call.plan.asked
    if asked is None or asked.read_worst is None or (asked.read_worst.input, asked.read_worst.output) != (
            input_tokens, output_tokens):
        return most_nanos(pricer, named, Worst(input_tokens, output_tokens, ""), time.time())
    return asked.most_nanos(lambda worst: most_nanos(pricer, named, worst, time.time()))


def listed_models(routing: Any, backend: Backend) -> list[Any]:
    """The models a worker serves, for their contexts: routing's list, or its backend's (the proxy's own read: a
    longer list is not read on, the default is reserved)."""
    if routing is not None:
        return routing.model_list()  # type: ignore[no-any-return]
    data = backend.list_models(Call.of("models", "GET", "v1/models", answer_most=MAX_PROBE_ANSWER)).get("data")
    return data if isinstance(data, list) else []
