"""What the sequence asks of the parts it reaches through an interface of its own: routing over several
deployments (`Dispatcher`), key_limits' budgets (`Limiter`), stored Responses (`StoredResponses`, handing each
attempt a `ResponseKeeper`; the door answers their routes through it too). serve/build.py hands the implementations to a
worker's Gateway when it builds it (argoproxy/routing/dispatch.py's Routing, argoproxy/admission/key_limits.py's
KeyLimiter; the doors' stored state, argoproxy/fronts/kept.py's KeptDoors, is handed to serve/build.py in turn),
so neither the pipeline nor the door imports routing or state.
Routing, the other way, knows the Gateway only as `Sends`: what it asks of the sequence to run its attempts (an
attempt on a deployment's view, keepalives around them all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Protocol

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.http_objects import Answer
    from argoproxy.pipeline.backend import Backend
    from argoproxy.upstream.client import Upstream
    from argoproxy.pipeline.call import Call
    from argoproxy.pipeline.call_records import CallEnd, CallStart
    from argoproxy.meter import Asked


class Dispatcher(Protocol):
    """Several deployments behind one Gateway (`models`): each call goes to one of them, with fallbacks."""

    def api(self, call: Call) -> Answer:
        """The call answered by a deployment chosen for its model (404 when none serves it)."""

    def chain(self, asked: str) -> list[Any]:
        """The pools to try for a model, in order; a 404 naming it when none serves it."""

    def serves(self, name: str) -> bool:
        """Does any deployment serve this model name (no 404)?"""

    def priced(self, asked: str) -> list[tuple[Any, str]]:
        """Each deployment that may serve a name: (its PriceSource, the model name it is sent)."""

    def count(self, chat: dict[str, Any]) -> int | None:
        """A chat request's prompt tokens as a deployment serving its model counts them (None: it cannot)."""

    def model_list(self) -> list[dict[str, Any]]:
        """GET /v1/models' data: every deployment's models."""

    def health(self) -> tuple[int, dict[str, Any]]:
        """/health's status and body over every deployment."""


class Limiter(Protocol):
    """key_limits: budgets per client key."""

    def admit_call(self, call: Call, presented: Iterable[str], body: Asked | None = None) -> tuple[Any, Any]:
        """Count the call against the budget of the key it presented (a 429 over it), holding its reservation (its
        tokens read from `body`) until observe: (the budget it counts against (KeyLimit), what it holds), which
        the guard keeps in the plan; (None, None) for a key without one."""

    def observe(self, start: CallStart, end: CallEnd) -> None:
        """Count a finished call's tokens (an observer: its frozen records, call_records.py)."""


class ResponseKeeper(Protocol):
    """Keeps a stored response as the client gets it (whole, or at a stream's terminal event)."""

    #: no keepalive before the answer's first byte (truncation auto asks again when the upstream says the context
    #: is exceeded, an error that must stay an HTTP one); the sequence keeps it in the plan
    quiet: bool

    def attach(self, ex: Any) -> None:
        """Ride on the front door's exchange (door_api.py's DoorExchange: fronts/front.py's Exchange), which reports
        the answer as it is encoded."""


# One attempt of a stored-Responses request: the call, its body with the history put before the input, the
# keeper of what comes back (None: nothing is kept) -> the answer.
Attempt = Callable[["Call", dict[str, Any], Optional[ResponseKeeper]], "Answer"]


class StoredResponses(Protocol):
    """Stored Responses (store, previous_response_id, conversations, background)."""

    def serves(self, front: Any) -> bool:
        """Is this the door whose requests the store reads and keeps?"""

    def serve(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        """The request with its stored history, run by `attempt`, its answer kept."""

    def request_for(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """The request `serve` would first hand `attempt` (what a token limit reserves for)."""

    # The door's side: the routes of what is stored (GET/DELETE /v1/responses/{id}, /v1/conversations...).
    def serves_routes(self, backend: Backend, routed: bool) -> bool:
        """Are the state routes the proxy's (not when the upstream serves the Responses API itself)?"""

    def claim(self, parts: tuple[str, ...]) -> Any:
        """The route table's claim on a path's segments (edge/classify.py's Route, or None: not a state route)."""

    def answer_route(self, call: Call, kind: str, ids: list[str], query: str, body: dict[str, Any] | None,
                     admin: bool) -> Answer:
        """One state route (`ids`: the path's ids in order); `admin`: the admin key may reach others' objects."""


class Sends(Protocol):
    """What routing (argoproxy/routing/dispatch.py) asks of the sequence it routes for, the worker's Gateway, and
    of each deployment's view of it: routing imports this, never pipeline/gateway.py."""

    settings: Settings
    backend: Backend
    upstream: Upstream
    price_source: Any  # how its answers are priced (argoproxy/spend/pricer.py's PriceSource)

    def for_deployment(self, backend: Backend, upstream: Upstream, settings: Settings) -> Sends:
        """One deployment's view: its own backend, upstream and settings; the same answer side."""

    def attempt(self, call: Call, served_by: str, model: str, shown: str, renamed_to: str | None,
                request: dict[str, Any] | None) -> Answer:
        """One routed attempt on this deployment, up to the client's first byte: planned anew from the request
        (`request`: a retry's, parsed again from the request's bytes), the deployment named (journals, metrics,
        the X-Served-* headers), run."""

    def kept_alive(self, call: Call, produce: Callable[[], Answer]) -> Answer:
        """A stream answered with keepalives while `produce` (routing's attempts) waits on its upstream."""
