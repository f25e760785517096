"""What the core is handed of the Responses door's state: pipeline/collaborators.py's StoredResponses, over the
worker's ResponsesState (service.py: the history put before a request, its answer kept) and the state routes
(routes.py: GET/DELETE /v1/responses/{id}, input items, cancel, /v1/conversations...). serve/proxy.py hands
`responses_state` to the core's builder, which imports nothing of this package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from argoproxy.fronts.responses.compact import SEAL
from argoproxy.state.routes import StateRoutes, state_route
from argoproxy.state.seal_key import seal_key
from argoproxy.state.service import ResponsesState, open_state

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.classify import Route
    from argoproxy.edge.http_objects import Answer
    from argoproxy.pipeline.call import Call
    from argoproxy.pipeline.collaborators import Attempt


def responses_state(settings: Settings, answers: Any) -> StoredDoor | None:
    """What the Responses door keeps, for one worker: the key its sealed content (compaction, reasoning) opens
    with on every worker, and its stored responses when RESPONSES_STORE is on (None: off); `answers`: the
    worker's Answers, through which what the proxy answers itself is observed."""
    SEAL.use(seal_key(settings))
    return StoredDoor(open_state(settings, answers)) if settings.responses_store else None


class StoredDoor:
    """StoredResponses: the sequence's side (serves, serve, request_for) is the state's, the door's side (the
    state routes) is routes.py's."""

    __slots__ = ("state", "routes")

    def __init__(self, state: ResponsesState) -> None:
        self.state = state
        self.routes = StateRoutes(state)

    # ---------------------------------------------------------------- the sequence's side
    def serves(self, front: Any) -> bool:
        return self.state.serves(front)

    def serve(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        return self.state.serve(call, body, attempt)

    def request_for(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        return self.state.request_for(call, body)

    # ---------------------------------------------------------------- the door's side
    def serves_routes(self, backend: Any, routed: bool) -> bool:
        return self.state.serves_routes(backend, routed)

    @staticmethod
    def claim(parts: tuple[str, ...]) -> Route | None:
        return state_route(parts)

    def answer_route(self, call: Call, kind: str, ids: list[str], query: str, body: dict[str, Any] | None,
                     admin: bool) -> Answer:
        return self.routes.answer(call, kind, ids, query, body, admin)
