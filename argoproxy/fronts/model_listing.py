"""Model listing: the `models` routes of every door (edge/classify.py: /v1/models[/{id}], and a door's own model
routes in its shape, /v1beta/models, /api/tags...) and the upstream's own list on a forwarded path, each filtered
by the allow-list and the team key's globs.

What the proxy serves is one list: the upstream's (or the routing entries'), the LLM_PARAMS pseudo models, a name
only a routing glob serves; a model's detail comes from the same knowledge, or from the upstream where it is
forwarded. The door routes here (serve/door.py) with the route's part of the plan written (its model, its body);
each answer is recorded through the answer side (Answers.recorded) as every other call's. This module names no
door: what it needs of one it asks its Front."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from msgspec import structs

from argoproxy.edge.http_objects import Answer
from argoproxy.edge.validation import model_allowed
from argoproxy.errors import ProxyError
from argoproxy.fronts import FRONTS, Front, front_named
from argoproxy.pipeline.answer_shape import bad_answer
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.guard import ModelFree, plan_model

if TYPE_CHECKING:
    from argoproxy.edge.classify import Route
    from argoproxy.pipeline.backend import Backend
    from argoproxy.pipeline.collaborators import Dispatcher
    from argoproxy.pipeline.guard import Guard
    from argoproxy.upstream.wire import UpstreamResponse

Record = Callable[[Call, Answer], Answer]
Passthrough = Callable[[Call, str, dict[str, str]], Answer]  # Gateway.passthrough: a guarded request sent as it came


class ModelListing:
    """The `models` routes' handler (`listing(call, route)`), and the filter of a forwarded model list."""

    def __init__(self, backend: Backend, routing: Dispatcher | None, guard: Guard, passthrough: Passthrough,
                 record: Record, *, allowed: tuple[str, ...], pseudo_models: tuple[str, ...] | Any,
                 forwards: bool) -> None:
        """`forwards`: one upstream to forward to (not routed), which answers a model's detail itself."""
        self.backend, self.routing, self.guard = backend, routing, guard
        self.passthrough, self.record = passthrough, record
        self.allowed, self.pseudo_models, self.forwards = allowed, tuple(pseudo_models), forwards
        # Forwarded paths answering the upstream's model list, which the allow-list and a key's globs filter.
        self.listings = tuple((ModelFree(front.forwarded_lists), front) for front in FRONTS.values()
                              if front.forwarded_lists)

    def __call__(self, call: Call, route: Route) -> Answer:
        front = front_named(route.front)
        if front is not None and call.client.method != "DELETE":
            return self.door_models(call, route, front)
        if call.plan.kind == "models":
            self.guard.check(call, admit=False)
            return self.record(call, Answer.json(self.model_list(call)))
        if self.allowed and self.forwards and not model_allowed(self.allowed, route.model):
            raise model_not_found(route.model)  # answered from the filtered list below when not forwarding
        # forwarded: the id goes upstream; else answered from the list the allow-list filtered
        self.guard.check(call, plan_model, served_later=not self.forwards, admit=False)
        if route.model in self.pseudo_models and call.client.method in ("GET", "HEAD"):
            # LLM_PARAMS pseudo models are the proxy's own: the upstream does not know them
            return self.record(call, Answer.json(own_entry(route.model)))
        if self.forwards:
            return self.forwarded_model(call, route)
        if call.client.method == "DELETE":
            raise ProxyError(405, f"{route.label} takes GET only on the {self.backend.name} backend.",
                             code="method_not_allowed", headers={"Allow": "GET, HEAD"})
        return self.record(call, Answer.json(self.known_or_none(call, route.model)))

    def forwarded_model(self, call: Call, route: Route) -> Answer:
        """/v1/models/{id} on a forwarding backend: the upstream's answer, or, where the upstream has no such
        route (llama.cpp answers 404 for any id), the proxy's own knowledge of the model."""
        url, headers = self.backend.url(call.plan.path, call.plan.query), self.backend.upstream_headers(call)
        if call.client.method == "HEAD":  # a HEAD answer has no body to judge: what the proxy knows comes first
            entry = self.known_model(call, route.model)
            if entry is not None:
                return self.record(call, Answer.json(entry))
            return self.passthrough(call, url, headers)
        if call.client.method != "GET":
            return self.passthrough(call, url, headers)
        try:
            return self.passthrough(call, url, headers)
        except ProxyError as err:
            entry = self.known_model(call, route.model) if err.status == 404 else None
            if entry is None:
                if err.status == 404 and err.code is None:  # llama.cpp's bare "Not Found": said as OpenAI says it
                    raise model_not_found(route.model) from None
                raise
            return self.record(call, Answer.json(entry))

    def door_models(self, call: Call, route: Route, front: Front) -> Answer:
        """A door's model routes: the proxy's own list in the door's shape; one model (named in the path, or in
        the body: the door wrote it into the plan) from the same knowledge (`known_model`, routing globs
        included); errors in the door's shape."""
        headers = front.upstream_headers(call.plan.headers)  # the door's params and its own headers not passed
        if route.kind != "model":
            self.guard.check(call, admit=False)
            listing = listing_call(call, headers)
            listing.outcome = call.outcome  # the upstream's answer is this call's (journals, the DEBUG line)
            return self.record(call, Answer.json(front.model_list(self.model_list(listing)["data"], route.kind)))
        name = call.plan.model
        self.guard.check(call, plan_model, served_later=True, admit=False)  # known_model: the allow-list's list
        entry = self.known_model(call, name, headers)
        if entry is None:
            raise model_not_found(name)
        return self.record(call, Answer.json(front.model_entry({**entry, "id": name})))

    def known_or_none(self, call: Call, name: str | None) -> dict[str, Any]:
        entry = self.known_model(call, name)
        if entry is None:
            raise model_not_found(name)
        return entry

    def known_model(self, call: Call, name: str | None, headers: dict[str, str] | None = None) -> dict[str, Any] | None:
        """A model entry from what the proxy serves (the model list: the upstream's, the routing entries, the
        LLM_PARAMS pseudo-models, filtered by the allow-list), or for a name only a routing glob serves
        (`claude-*`), an entry of its own."""
        if not name:
            return None
        listing = listing_call(call, headers if headers is not None else call.plan.headers)
        try:
            entry = self.backend.model_entry(name, self.model_list(listing)["data"])
        except ProxyError:  # no list to read (the upstream has none): the routing entries may still know it
            entry = None
        if entry is None and self.routing is not None and (not self.allowed or model_allowed(self.allowed, name)) \
                and self.routing.serves(name):
            entry = own_entry(name)
        return entry

    def model_list(self, call: Call) -> dict[str, Any]:
        """The backend's models plus LLM_PARAMS pseudo models, filtered by the allow-list and the key's globs."""
        if self.routing is not None:
            listing = {"object": "list", "data": self.routing.model_list()}
        else:
            listing = self.backend.list_models(call)
        data = listing.get("data", [])
        if not isinstance(data, list):
            raise bad_answer("the model list's `data` is not a list")
        known = {m.get("id") for m in data if isinstance(m, dict)}
        data.extend(own_entry(name) for name in self.pseudo_models if name not in known)
        if self.allowed:
            data = [m for m in data if isinstance(m, dict) and listed_allowed(m, self.allowed)]
        key_models = key_models_of(call)
        if key_models:  # a team key sees the models it may use
            data = [m for m in data if isinstance(m, dict) and listed_allowed(m, key_models)]
        listing["data"] = data
        return listing

    # ---------------------------------------------------------------- a forwarded path's model list
    def forwarded_filter(self, call: Call) -> Callable[[Call, UpstreamResponse], Answer] | None:
        """The filter of the upstream's own model list this forwarded request asks for (a door's
        `forwarded_lists`), when the allow-list or the key's globs narrow it; None: forwarded as it is."""
        if not (self.allowed or key_models_of(call)):
            return None
        front = next((front for paths, front in self.listings if paths(call.client.method, call.plan.path)), None)
        return (lambda c, resp: self.filtered_listing(c, resp, front)) if front is not None else None

    def filtered_listing(self, call: Call, resp: UpstreamResponse, front: Front) -> Answer:
        """The upstream's own model list with only the models the request's key may use, as the proxy's own list
        is filtered (`model_list`)."""
        with resp:
            if resp.status_code != 200:
                raise bad_answer(f"its model list answered {resp.status_code}")
            try:
                answer = resp.json()
            except ValueError:
                raise bad_answer("its model list is not JSON") from None
        key_models = key_models_of(call)

        def keep(name: Any) -> bool:
            return (not self.allowed or model_allowed(self.allowed, name)) and \
                (not key_models or model_allowed(key_models, name))
        return self.record(call, Answer.json(front.listed(answer, keep)))


def listing_call(call: Call, headers: dict[str, str]) -> Call:
    """The call an upstream's model list is asked with for this request: GET /v1/models, the client's key."""
    return Call(structs.replace(call.client, method="GET", path="v1/models"),
                structs.replace(call.plan, kind="models", path="v1/models", query="", headers=headers))


def key_models_of(call: Call) -> tuple[str, ...]:
    """The model globs of the team key the request came with (none: any model ALLOWED_MODELS takes)."""
    req = call.client.request
    key = req.team_key if req is not None else None
    return key.allowed_models if key is not None else ()


def listed_allowed(entry: dict[str, Any], patterns: tuple[str, ...]) -> bool:
    """A model list entry passes the allow-list (or a team key's globs) by its id or by the id it resolves to
    (ARGO's aliases carry it as `internal_name`), as requests naming it are checked after alias resolution."""
    return model_allowed(patterns, entry.get("id")) or model_allowed(patterns, entry.get("internal_name"))


def own_entry(name: str | None) -> dict[str, Any]:
    """A model the proxy serves itself (an LLM_PARAMS pseudo model, a routing glob's name)."""
    return {"id": name, "object": "model", "created": 0, "owned_by": "cot_proxy"}


def model_not_found(model: str | None) -> ProxyError:
    return ProxyError(404, f"The model `{model}` does not exist or you do not have access to it.", param="model",
                      code="model_not_found")

