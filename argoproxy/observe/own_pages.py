"""The proxy's own routes (the `own` family of edge/classify.py), answered without an upstream: `/` (the proxy is
up), `/health` (its detail for an accepted key only), `/metrics`, the status page `/ui` and `/ui/data`, the
launcher's listener proof, and a door's answers that ask nothing of an upstream (its version...). The door routes
here (serve/door.py); the pages are handed the route, the query (its client keys removed) and the client's
request, never the live call (an observers' package: tests/unit/test_call_records.py), and serve/build.py records
each answer through the answer side (Answers.recorded) as every other call's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from argoproxy.edge import listener_proof
from argoproxy.edge.cors import CORS_KINDS, opened
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError

if TYPE_CHECKING:
    from argoproxy.edge.auth import Auth
    from argoproxy.edge.classify import Route
    from argoproxy.edge.http_objects import Request
    from argoproxy.observe.health import HealthCheck
    from argoproxy.observe.status_page import StatusPage

ROOT_ANSWER = {"status": "ok", "service": "cot_proxy"}  # GET and HEAD /: the proxy is up (details: /health)
# The page runs only its own inline script and style, and the console's script (/ui/console.js), and talks only to
# this proxy.
STATUS_PAGE_POLICY = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class OwnPages:
    """The `own` routes' answers: `pages.answer(route, query, request)`."""

    def __init__(self, auth: Auth, health: HealthCheck, *,
                 metrics_view: Callable[[], Answer] | None, metrics_public: bool,
                 status_page: StatusPage | None = None,
                 upstreams_health: Callable[[], tuple[int, dict[str, Any]]] | None = None,
                 backend_health: Callable[[str], dict[str, Any] | None] = lambda query: None,
                 door_answer: Callable[[str, str], dict[str, Any] | None] = lambda door, kind: None) -> None:
        """`upstreams_health`: routing's (several upstreams; None: one target, asked by `backend_health` and
        `health`); `door_answer(door, kind)`: a door's own answer (None: no door of that name)."""
        self.auth, self.health = auth, health
        self.metrics_view, self.metrics_public, self.status_page = metrics_view, metrics_public, status_page
        self.upstreams_health, self.backend_health, self.door_answer = upstreams_health, backend_health, door_answer
        self.kinds: dict[str, Callable[[str, str, Request | None], Answer]] = {
            "root": lambda kind, query, req: Answer.json(ROOT_ANSWER),  # never forwarded: clients probe it first
            "ui": self.status_answer, "ui_data": self.status_answer, "listener_proof": listener_proof_answer,
            "metrics": self.metrics_answer, "health": self.health_answer}

    def answer(self, route: Route, query: str, req: Request | None) -> Answer:
        own = self.door_answer(route.front, route.kind) if route.front != "openai" else None
        if own is not None:
            return Answer.json(own)
        if route.kind in CORS_KINDS and req is not None:  # other sites' pages read these (edge/cors.py)
            return opened(req.method, route.methods, lambda: self.kinds[route.kind](route.kind, query, req))
        return self.kinds[route.kind](route.kind, query, req)

    def metrics_answer(self, kind: str, query: str, req: Request | None) -> Answer:
        if self.metrics_view is None:
            raise ProxyError(404, "Metrics are off.", code="unknown_route")
        if req is not None and req.team_key is not None and not self.metrics_public:
            raise ProxyError(403, "/metrics counts every team's use: a team key does not open it, the admin key "
                                  "(API_KEY_SECRET) does.", code="admin_key_required")
        return self.metrics_view()

    def health_answer(self, kind: str, query: str, req: Request | None) -> Answer:
        status, body = self.health_body(query)
        if self.auth.enabled and not self.auth.authenticated(req):
            body = {"status": body.get("status", "healthy" if status < 400 else "unhealthy")}  # status only
        return Answer.json(body, status)

    def health_body(self, query: str) -> tuple[int, dict[str, Any]]:
        """(status, body) of /health with its detail: deployments, target URL, errors."""
        if self.upstreams_health is not None:
            return self.upstreams_health()
        try:
            own = self.backend_health(query)
        except ProxyError as err:
            return 503, {"status": "unhealthy", "error": err.message}
        if own is not None:
            return 200, own
        return self.health.status()

    def admin_signed_in(self, req: Request | None) -> bool:
        """A console session of an admin (signin/sessions.py, when sign-in is on): the live views are theirs too."""
        sessions = self.auth.sessions
        live = sessions.of(req.headers) if sessions is not None and req is not None else None
        return bool(live is not None and live.person.admin)

    def status_answer(self, kind: str, query: str, req: Request | None) -> Answer:
        """/ui (the page) and /ui/data (what it shows: the admin key's only when auth is on)."""
        if self.status_page is None:
            raise ProxyError(404, "The status page is off (STATUS_PAGE).", code="unknown_route")
        if kind == "ui":
            return Answer(self.status_page.page(), 200, {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                                         "Content-Security-Policy": STATUS_PAGE_POLICY},
                          content_type="text/html; charset=utf-8")
        if not self.auth.is_admin(req) and not self.admin_signed_in(req):
            raise ProxyError(403, "Only the admin key (API_KEY_SECRET) or a signed-in admin opens the status page.",
                             code="admin_key_required")
        answer = Answer.json(self.status_page.data())
        answer.headers["Cache-Control"] = "no-store"  # keys' names and traffic: no cache or browser may keep them
        return answer


def listener_proof_answer(kind: str, query: str, req: Request | None) -> Answer:
    """`cot-proxy run`'s question before it sends a key (argoproxy/edge/listener_proof.py)."""
    proof = listener_proof.answer(req.headers, req.peer) if req is not None else None
    if proof is None:
        raise ProxyError(404, "No proof for that file from this proxy.", code="no_proof")
    answer = Answer.json({"proof": proof})
    answer.headers["Cache-Control"] = "no-store"
    return answer

