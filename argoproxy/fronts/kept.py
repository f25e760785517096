"""What the doors that keep state hand the sequence: one pipeline/collaborators.py StoredResponses over each such
door's own side (Front.kept: the Responses door's stored responses and conversations, the Interactions door's
interactions), all over the one StateService of the worker (argoproxy/state/: one store, the same bounds and
retention). A request reaches the side of the door its route names; the state package names no door."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from argoproxy.edge.request_body import parse_object
from argoproxy.fronts import FRONTS

if TYPE_CHECKING:
    from argoproxy.edge.classify import Route
    from argoproxy.edge.http_objects import Answer
    from argoproxy.pipeline.call import Call
    from argoproxy.pipeline.collaborators import Attempt


class DoorKept(Protocol):
    """One door's side of its stored state (Front.kept)."""

    def serve(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer: ...

    def request_for(self, call: Call, body: dict[str, Any]) -> dict[str, Any]: ...

    def serves_routes(self, backend: Any, routed: bool, name: str) -> bool: ...

    def claim(self, parts: tuple[str, ...]) -> Route | None: ...

    def answer_route(self, call: Call, kind: str, ids: list[str], query: str, body: dict[str, Any] | None,
                     admin: bool) -> Answer: ...


def kept_state(settings: Any, answers: Any) -> KeptDoors | None:
    """What the doors keep, for one worker (`answers`: the worker's Answers, through which what the proxy answers
    itself is observed); None when no door keeps anything. The store is opened once, when RESPONSES_STORE is on."""
    state = None
    if settings.responses_store:
        from argoproxy.state.service import open_state  # the store is opened in the worker, never the master
        state = open_state(settings, answers)
    doors = {name: kept for name, front in FRONTS.items() if (kept := front.kept(settings, state)) is not None}
    return KeptDoors(doors) if doors else None


class KeptDoors:
    """StoredResponses over the doors' sides, by the name of the door the call's route names."""

    __slots__ = ("doors", "claims")

    def __init__(self, doors: dict[str, DoorKept]) -> None:
        self.doors = doors
        self.claims: list[Callable[[tuple[str, ...]], Route | None]] = []  # serves_routes says whose

    # ---------------------------------------------------------------- the sequence's side
    def serves(self, front: Any) -> bool:
        return front.name in self.doors

    def serve(self, call: Call, body: dict[str, Any], attempt: Attempt) -> Answer:
        return self.doors[call.client.front].serve(call, body, attempt)

    def request_for(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        return self.doors[call.client.front].request_for(call, body)

    # ---------------------------------------------------------------- the door's side
    def serves_routes(self, backend: Any, routed: bool) -> bool:
        """Are any door's state routes the proxy's (not a door's whose API the upstream serves itself)?"""
        self.claims = [kept.claim for name, kept in self.doors.items() if kept.serves_routes(backend, routed, name)]
        return bool(self.claims)

    def claim(self, parts: tuple[str, ...]) -> Route | None:
        for claim in self.claims:
            route = claim(parts)
            if route is not None:
                return route
        return None

    def answer_route(self, call: Call, kind: str, ids: list[str], query: str, body: dict[str, Any] | None,
                     admin: bool) -> Answer:
        return self.doors[call.client.front].answer_route(call, kind, ids, query, body, admin)


class StoredStateHandler:
    """The `state` routes' handler (GET/DELETE /v1/responses/{id}, /v1/conversations/{id}/items...: the key's own
    objects only, the admin key's any): the door routes here with the body's bytes in the plan, and each answer
    is recorded through the answer side (Answers.recorded), without its body: stored bodies are journaled nowhere
    new."""

    __slots__ = ("kept", "admin", "record")

    def __init__(self, kept: Any, admin: Callable[[Any], bool], record: Callable[[Call, Answer], Answer]) -> None:
        """`kept`: what the doors keep (answer_route); `admin(request)`: did it come with the admin key?"""
        self.kept, self.admin, self.record = kept, admin, record

    def __call__(self, call: Call, route: Route) -> Answer:
        body = None
        if call.client.method == "POST":
            raw = call.plan.raw_body
            body = parse_object(raw) if raw.strip() else {}
        ids = route.path.split("/")[2::2]  # v1/responses/{id}/..., v1/conversations/{id}/items/{id}
        answer = self.kept.answer_route(call, route.kind, ids, call.plan.query, body, self.admin(call.client.request))
        return self.record(call, answer)
