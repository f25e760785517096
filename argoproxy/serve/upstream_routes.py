"""The handlers of the upstream-bound routes the sequence serves as variants (edge/classify.py's `forward` and
`backend` families): a forwarded path, read by the doors' model readers and handed to Gateway.forward, and a
route a backend serves itself (ARGO's /v1/chat, /v1/embed, /v1/status), admitted by the one guard and answered
by its handler through the sequence's exchange. The door routes here (serve/door.py) with the body's bytes in the
plan; each is given what it uses when serve/build.py builds it, and records its call through the answer side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from argoproxy.edge.model_readers import Named, Reader, body_model, path_models, reader_for
from argoproxy.fronts import FRONTS
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.batch_models import BatchModels, upstream_fetch
from argoproxy.pipeline.think import ThinkConfig, transform_completion

if TYPE_CHECKING:
    from argoproxy.edge.classify import Route
    from argoproxy.edge.http_objects import Answer
    from argoproxy.fronts.model_listing import ModelListing
    from argoproxy.pipeline.answers import Answers
    from argoproxy.pipeline.backend import Backend
    from argoproxy.pipeline.call import Call
    from argoproxy.pipeline.guard import Guard


@dataclass(frozen=True)
class BackendRoute:
    """A route a backend serves itself: `handler(call, send)` answers it (the body is in call.plan.raw_body;
    `send(req, error)` is the sequence's one exchange with the upstream, Gateway.exchange); `models` reads the
    models it names for the guard (argoproxy/edge/model_readers.py; None: it names none)."""

    path: str
    kind: str
    methods: tuple[str, ...]
    handler: Callable[[Call, Any], Answer]
    models: Reader | None = None


class Forwarded:
    """The `forward` family's handler: a forwarded path, the models it names read by the doors' readers, the
    upstream's own model list filtered for the key (fronts/model_listing.py)."""

    def __init__(self, forward: Callable[..., Answer], backend: Backend, send: Callable[..., Any],
                 listing: ModelListing, batches: BatchModels) -> None:
        """`forward`: Gateway.forward; `send`: the upstream client's, for the batch files a request names."""
        self.forward, self.backend, self.send, self.listing, self.batches = forward, backend, send, listing, batches
        # Readers of forwarded paths naming their models elsewhere than `model`: the doors' (a door whose API is
        # forwarded under FRONTS_PASSTHROUGH included).
        self.readers: tuple[tuple[str, Reader], ...] = tuple(pair for front in FRONTS.values()
                                                             for pair in front.model_readers)

    def __call__(self, call: Call, route: Route) -> Answer:
        return self.forward(call, self.forwarded_models, self.listing.forwarded_filter(call))

    def forwarded_models(self, call: Call, named: Named) -> None:
        """The reader of a forwarded request's models: a deployment or engine in the path; the body's `model` (or
        what a door names it under, `name`...); each line or request of batch work."""
        path_models(call, named)
        reader = reader_for(self.readers, call.plan.path) or body_model
        reader(call, named)
        if getattr(named, "noting", False):
            return  # a team key's usage rows only: no batch file read back for them
        fetch = upstream_fetch(self.send, self.backend.url, self.backend.upstream_headers(call), call.plan.query)
        self.batches.read(call, named, fetch)  # models named inside batch files and message batches


class BackendRoutes:
    """The `backend` family's handler: the backend's own routes (Backend.extra_routes), by kind."""

    def __init__(self, routes: list[BackendRoute], guard: Guard, reading: Callable[[Call], Any],
                 sender: Callable[[Call], Any], think_config: Callable[[str | None, Any], ThinkConfig | None],
                 answers: Answers, completion_routes: Any) -> None:
        """`reading`: what the limits read of the request (RequestReading.forwarded); `sender(call)`: the
        exchange its handler sends with (Gateway.route_sender); `think_config`: the Planner's, for a route whose
        answer is a chat.completion (`completion_routes`)."""
        self.routes = {route.kind: route for route in routes}
        self.guard, self.reading, self.sender, self.think_config = guard, reading, sender, think_config
        self.answers, self.completion_routes = answers, completion_routes

    def __call__(self, call: Call, route: Route) -> Answer:
        served = self.routes[call.plan.kind]
        self.guard.admit(call, served.models, lambda: self.reading(call))
        answer = served.handler(call, self.sender(call))
        if call.plan.kind in self.completion_routes and answer.status_code == 200:
            answer = self.as_chat_answer(call, answer)
        return self.answers.recorded(call, self.answers.scrubbed(call, answer))

    def as_chat_answer(self, call: Call, answer: Answer) -> Answer:
        """A backend route's chat.completion, through what a chat answer goes through: think tags handled per
        THINK_MODE and the model's LLM_PARAMS (ARGO's /v1/status returned <think> text chat strips)."""
        obj = self.answers.completion_of(call, answer.get_data())
        think = self.think_config(call.plan.model, call.planned.upstream_model)
        if think is not None:
            transform_completion(obj, think)
        answer.set_data(dumps(obj))
        return answer


def backend_routes(extra: list[Any]) -> list[BackendRoute]:
    """A backend's own routes as it lists them (BackendRoute, or its fields in order)."""
    return [r if isinstance(r, BackendRoute) else BackendRoute(*r) for r in extra]
