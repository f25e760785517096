"""The one guard every upstream-bound request passes (issue 37): `Guard.check`, called once per request by every
route family that can reach an upstream (the API and front doors through Gateway.api, forwarded paths, the
backends' own routes, a model's detail, batch and file uploads, native relay, routed calls).

It decides, in this order:

1. authentication: the door established who the client is before routing (a 401 comes before a 404 or 405,
   so a prober without a key learns nothing of the routes); a request that reaches the guard without an
   accepted key while ENABLE_AUTH is on is refused here too (a route that skipped the door fails closed);
2. the models the request names: `?model=` on every route, then the route family's reader
   (argoproxy/edge/model_readers.py: a body's `model`, Ollama's `name`, each line of a batch file, a deployment in
   the path), each name against ALLOWED_MODELS and the team key's globs. While either is in force, a forwarded
   request whose models cannot be read, or that names none (the upstream would pick its default), is refused
   unless its path is model-free (MODEL_FREE_PATHS); an API request must name one for a team key's globs;
3. the limits: key_limits (the client key's budget) and the team key's rate limits and budget.

Between 1 and 2, a forwarded path of the operator's (a door's `operator_paths`: Ollama's pull, create, delete, its
account's sign-out...) is refused to every key but the operator's: team keys and key_limits keys alike.

The API doors resolve the name they serve after the guard (aliases, LLM_PARAMS' rename, a routed entry's
model): the allow-list takes the name asked for or the name served (`served_allowed`, asked once the plan has it).
"""

from __future__ import annotations

import re
from fnmatch import translate
from typing import TYPE_CHECKING, Any, Callable

from argoproxy.edge.auth import unauthorized
from argoproxy.edge.model_readers import Named, Reader, Unreadable
from argoproxy.edge.request_models import check_named, key_model_refused, query_model
from argoproxy.edge.validation import model_allowed, require_model
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.call import Call, Held
from argoproxy.pipeline.forwarded_body import forwarded_body
from argoproxy.meter import Asked, supplied

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.http_objects import Request
    from argoproxy.pipeline.collaborators import Limiter
    from argoproxy.teamkeys.service import TeamKeys

# The API's prefixes a model-free glob written for OpenAI's spelling (/v1/files) also covers: Azure OpenAI's
# (/openai/files, /openai/v1/files) and a server's without /v1 (/files).
_API_PREFIX = re.compile(r"(?i)^/(?:openai/v1|openai|v1)(?=/)")


class ModelFree:
    """MODEL_FREE_PATHS compiled: does a method and canonical path name no model by the operator's word?"""

    def __init__(self, globs: tuple[str, ...]) -> None:
        self.rules: list[tuple[str, re.Pattern[str]]] = []
        for item in globs:
            method, _, path = item.rpartition(" ")
            # in any case: a path that names no model in one spelling names none in another
            self.rules.append((method.strip().upper() or "*", re.compile(translate(path), re.IGNORECASE)))

    def __call__(self, method: str, path: str) -> bool:
        method = "GET" if method == "HEAD" else method  # HEAD asks what GET would
        target = "/" + path
        spelled = _API_PREFIX.sub("/v1", target, count=1)
        bare = target if spelled != target else "/v1" + target  # /files as a server without /v1 spells it
        for rule_method, pattern in self.rules:
            if rule_method in ("*", method) or (rule_method == "HEAD" and method == "GET"):
                if pattern.match(target) or pattern.match(spelled) or pattern.match(bare):
                    return True
        return False


def plan_model(call: Call, named: Named) -> None:
    """The API doors' reader: the model the body (or Google's path) names, read while parsing (Gateway.api)."""
    if call.plan.model is not None:
        named(call.plan.model)


class Guard:
    """The one guard (see the module's docstring). One per worker, built by serve/build.py with what it asks: the
    key limits and team keys (None: not configured), the doors' operator paths, and auth's test of an operator's
    key."""

    def __init__(self, settings: Settings, limiter: Limiter | None = None, team_keys: TeamKeys | None = None, *,
                 operator_paths: tuple[str, ...] = (),
                 operator: Callable[[Request | None], bool] | None = None) -> None:
        self.allowed: tuple[str, ...] = settings.allowed_models
        self.auth = settings.enable_auth
        self.model_free = ModelFree(settings.model_free_paths)
        self.operator_paths = ModelFree(operator_paths)  # the doors' (Front.operator_paths)
        # Did the request come with one of the operator's keys (API_KEY_SECRET, API_KEY_FILE, the generated one)?
        # Auth's own test; without it, with auth on, nobody's is (fail closed).
        self.operator: Callable[[Request | None], bool] = operator if operator is not None else \
            (lambda req: not settings.enable_auth)
        self.limiter, self.team_keys = limiter, team_keys

    def limited(self, call: Call) -> bool:
        """May a token limit apply to this call (key_limits, or a team key)? Otherwise nothing is reserved, and
        nothing is read for it."""
        req = call.client.request
        return self.limiter is not None or (req is not None and req.team_key is not None)

    def admit(self, call: Call, reader: Reader | None, read: Callable[[], Asked], *, queued: bool = False,
              supply_into: dict[str, Any] | None = None, **check: Any) -> Asked | None:
        """`check`, its limits reading the request as its reservation does (`read`: read only when a limit, or
        the fair queue (`queued`), needs it; kept in the plan: a trace records what they read). Where no field
        bounds the answer, the limit the reservation sends is written into the request as admitted: a forwarded
        body's bytes, or `supply_into` (the chat door's body, which planning starts from); a front door writes it
        into the chat request its body becomes (Gateway.front_call)."""
        limited = self.limited(call)
        if not (limited or queued):  # nothing weighs this request: the meter is not asked
            self.check(call, reader, **check)
            return None
        asked = call.plan.asked = read()
        self.check(call, reader, body=asked if limited else None, **check)
        if asked.supply is not None:
            if check.get("forwarded"):
                forwarded_supply(call, asked.supply)
            elif supply_into is not None:
                call.plan.supplied = supplied(supply_into, asked.supply)
        return asked

    def check(self, call: Call, reader: Reader | None = None, *, required: bool = False, forwarded: bool = False,
              served_later: bool = False, admit: bool = True, body: Asked | None = None) -> None:
        """Authentication, the models the request names (`reader`, `?model=`), ALLOWED_MODELS and the team key's
        globs, the limits. `required`: an API request, which must name a model for a key's globs; `forwarded`: a
        forwarded request, which must name one unless its path is model-free; `served_later`: the allow-list takes
        the name served as well, decided by `served_allowed` once planned; `admit`: count against the limits (a
        model list or detail is not counted); `body`: the parsed request, whose tokens a team key reserves."""
        req = call.client.request
        if self.auth and req is not None and not req.presented_keys:
            raise unauthorized("Missing API key.", "missing_api_key", invalid=False)
        team_key = req.team_key if req is not None else None
        if forwarded and self.operator_paths(call.client.method, call.plan.path) and not self.operator(req):
            # a team key's or a key_limits key's: either may use models, not change the upstream for everyone
            raise ProxyError(403, f"/{call.plan.path} changes the models the upstream serves, or its account, for "
                             "everyone: only the operator's keys (API_KEY_SECRET, API_KEY_FILE) may use it.",
                             code="operator_route")
        key_models = team_key.allowed_models if team_key is not None else ()
        if self.allowed or key_models:
            self.models(call, reader, key_models, required, forwarded, served_later)
        elif team_key is not None and reader is not None:
            noted(call, reader)  # the key's usage rows name the model its tokens went to
        if admit:
            plan = call.plan
            if self.limiter is not None:
                plan.key_limit, lease = self.limiter.admit_call(
                    call, req.presented_keys if req is not None else (), body)
                plan.limit_lease = Held(lease) if lease is not None else None
            if team_key is not None and self.team_keys is not None:
                plan.key_name = team_key.name  # a refusal below is this key's too (the status page names it)
                plan.key_lease = self.team_keys.admit_call(call, team_key, body)
                plan.team_key = team_key  # admitted: its usage is counted when the answer ends

    def models(self, call: Call, reader: Reader | None, key_models: tuple[str, ...], required: bool,
               forwarded: bool, served_later: bool) -> None:
        """Every name the request gives, against the allow-list (unless decided on the name served) and the key's
        globs; a request that names none, or cannot be read, where that is refused."""
        req = call.client.request
        if req is not None and req.team_key is not None:
            call.plan.key_name = req.team_key.name  # a refusal is this key's too (the status page names it)
        plan = call.plan
        if plan.query:
            model = query_model(plan.query)
            if model is not None:
                check_named(self.allowed, model, key_models)
        allowed = () if served_later else self.allowed
        count = [0]

        def named(model: Any, served: Any = None) -> None:
            """A name the request gives; `served`: the name it resolves to, which passes for it (an alias)."""
            count[0] += 1
            try:
                check_named(allowed, model, key_models)
            except ProxyError:
                if served is None:
                    raise
                check_named(allowed, served, key_models)
            if plan.model is None and isinstance(model, str):
                plan.model = model

        unreadable = None
        if reader is not None:
            try:
                reader(call, named)
            except Unreadable as why:
                unreadable = str(why)
        if count[0] or not (required or forwarded) or self.model_free(call.client.method, plan.path):
            return
        if required:
            if key_models:
                raise key_model_refused(None)  # the upstream's default would be one the key was never given
            return  # the allow-list: decided on the name served (served_allowed)
        if unreadable is not None:
            raise ProxyError(403, f"This request's models cannot be read ({unreadable}), and only some models are "
                             "allowed on this proxy: send JSON, or ask the operator to list the path in "
                             "MODEL_FREE_PATHS.", param="model", code="model_not_allowed")
        if key_models:
            raise key_model_refused(None)
        raise ProxyError(403, f"This request names no model, and only some models are allowed on this proxy "
                         f"({call.client.method} /{plan.path} is not in MODEL_FREE_PATHS): name one.",
                         param="model", code="model_not_allowed")


def noted(call: Call, reader: Reader) -> None:
    """The model a request names, for a team key's usage rows only: nothing is checked, nothing is fetched
    (`named.noting`: a batch's input file is not read back for it), and a request that cannot be read so goes
    as it is."""
    def named(model: Any, served: Any = None) -> None:
        if call.plan.model is None and isinstance(model, str):
            call.plan.model = model
    named.noting = True  # type: ignore[attr-defined]
    try:
        reader(call, named)
    except (ProxyError, Unreadable):
        call.plan.model = None


def served_allowed(patterns: tuple[str, ...], asked: str | None, sent: str | None = None) -> None:
    """ALLOWED_MODELS on the name served: the name the client asked for (`asked`) or the name it resolves to
    upstream (`sent`: an alias, LLM_PARAMS' rename, a routed entry's model) must be listed."""
    if not patterns:
        return
    if asked is None and sent is None:
        require_model(None)
    if not (model_allowed(patterns, asked) or model_allowed(patterns, sent)):
        raise ProxyError(403, f"The model `{asked or sent}` is not allowed on this proxy.", param="model",
                         code="model_not_allowed")


def serves_model(call: Call, model: str | None) -> None:
    """A backend's own route names the model it serves (its handler reads it from the request)."""
    call.plan.model = model


def forwarded_supply(call: Call, supply: tuple[tuple[str, ...], int]) -> None:
    """The limit a forwarded body's reservation sends (where its door says: `Spelled.supply`), written into its
    bytes."""
    body = forwarded_body(call)
    if body is not None and supplied(body, supply):
        call.plan.raw_body = dumps(body)


def handed_over(request: Call, run: Call) -> None:
    """A background run (argoproxy/state/background.py) takes over what its request's admission holds: its key's
    --max-parallel slot and its reservation, held until the run ends or is cancelled, and the key is charged
    what the run used. The request that answers `queued` then holds nothing and is charged nothing (it is
    observed at once: it gave them back there)."""
    asked, ran = request.plan, run.plan
    ran.key_lease, ran.limit_lease, ran.team_key, ran.key_limit = (asked.key_lease, asked.limit_lease,
                                                                   asked.team_key, asked.key_limit)
    asked.key_lease, asked.limit_lease, asked.team_key, asked.key_limit = None, None, None, None
