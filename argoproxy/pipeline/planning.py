"""The sequence's plan step: from the request as admitted (call.plan.body), one frozen Planned for the attempt
(pipeline/call.py): LLM_PARAMS, stream modes and the usage asked, the think configuration, the backend's
preparation and what it returns, capability adaptation, the allow-list on the name served (Planner.plan; a door's
own request relayed: Planner.native). A stream asked again whole and a parameter the upstream refused are new
records made from the attempt's (whole_again, refused); a routed retry or fallback is planned again from the
request (request_bytes)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from msgspec import structs

from argoproxy.config.llm_params import MODEL_NAME_CHARS, starts_inside
from argoproxy.edge.client_caches import BoundedCache
from argoproxy.meter import supplied
from argoproxy.pipeline import upstream_messages
from argoproxy.pipeline.adapt import CHAT, Shape, adapt_request
from argoproxy.pipeline.backend import Prepared
from argoproxy.pipeline.call import Planned
from argoproxy.pipeline.guard import served_allowed
from argoproxy.pipeline.param_rules import apply_rule, without_params
from argoproxy.pipeline.stream_usage import UsageTap
from argoproxy.pipeline.think import ThinkConfig, for_client

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.pipeline.backend import Backend
    from argoproxy.pipeline.call import Call
    from argoproxy.pipeline.capabilities import CapabilityTable

log = logging.getLogger("cot_proxy")

THINK_CACHE = 256  # think configurations kept, by (model, upstream model)
WITHHELD_WARNINGS = 256  # models whose withheld parameters were said in the log (client names: bounded)
ADAPTED_KINDS = frozenset({"chat", "completions"})  # requests with sampling and reasoning parameters
NOTHING: frozenset[str] = frozenset()  # no member changed


class Planner:
    """One deployment's planning: its settings (LLM_PARAMS, UPSTREAM_MODE, THINK_*, ALLOWED_MODELS), its backend's
    policy and preparation, the capabilities of its models, and how its answers are priced (a stream that costs
    money is metered)."""

    def __init__(self, settings: Settings, backend: Backend, capabilities: CapabilityTable, price_source: Any) -> None:
        self.settings, self.backend, self.capabilities = settings, backend, capabilities
        self.price_source = price_source
        self._think_cache: BoundedCache[ThinkConfig | None] = BoundedCache(THINK_CACHE)  # keyed by client names
        self._withheld_said: BoundedCache[bool] = BoundedCache(WITHHELD_WARNINGS, MODEL_NAME_CHARS)

    def plan(self, call: Call, request: dict[str, Any] | None = None, model: str | None = None) -> Planned:
        """An API call's attempt on this deployment, planned from the request as admitted (`request`: parsed again
        from its bytes, for a routed retry or fallback; `model`: the routed entry's name, a fallback's): stream
        modes, LLM_PARAMS and the think configuration; the backend's policy (does the upstream stream, do answer
        transforms apply) asked once, of the request (call.plan.body); then the backend's preparation, adaptation
        and the allow-list on the name served. The rule is the one for the name served (routed: the deployment's);
        plan.model stays the name asked."""
        plan = call.plan
        if request is None and model is None:  # the first attempt: the request as admitted
            body, touched = plan.body, frozenset(plan.supplied) if plan.supplied else NOTHING
        else:
            body, touched = starting(call, request, model)
        served, ruled = self.params(body)
        rewritten = ruled or plan.exchange is not None or (request is not None and bool(plan.supplied))
        sent = body.get("model")  # the model sent, unless the backend's preparation resolves it
        sent = sent if isinstance(sent, str) else None
        if plan.kind == "embeddings":
            return self.prepared(call, Planned(body, plan.raw_body, plan.members, touched, rewritten, sent))
        backend = self.backend
        if plan.kind == "chat" and upstream_messages.normalize(body.get(upstream_messages.TURNS),
                                                               backend.keeps_developer, backend.tool_turn_content):
            touched |= {upstream_messages.TURNS}
        client_stream, upstream_stream, include_usage, meter, changed = self.streams(call, body)
        think = None
        if backend.transforms_answers(call):
            asks_reasoning = bool(getattr(plan.exchange, "asks_reasoning", False))
            think = for_client(self.think_config(served, sent), asks_reasoning)
        return self.prepared(call, Planned(body, plan.raw_body, plan.members, touched.union(changed) if changed
                                           else touched, rewritten, sent, client_stream, upstream_stream,
                                           include_usage, think, meter=meter))

    def streams(self, call: Call, body: dict[str, Any]) -> tuple[bool, bool, bool, UsageTap | None, tuple[str, ...]]:
        """Stream modes: does the client stream, does the upstream (UPSTREAM_MODE, the backend's policy), is usage
        asked (metered: asked of the upstream whoever asked), the stream's meter, and the members changed."""
        client_stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = client_stream and isinstance(options, dict) and options.get("include_usage") is True
        meter: UsageTap | None = None
        changed: tuple[str, ...] = ()
        if client_stream and call.plan.exchange is None and (counts_tokens(call) or self.charges(call, body)):
            meter, changed = metered(body, include_usage)
            include_usage = True
        mode = self.settings.upstream_mode
        upstream_stream = self.backend.upstream_streams(call, client_stream if mode == "off" else mode == "stream")
        if upstream_stream != client_stream:
            body["stream"] = upstream_stream
            if upstream_stream:
                body["stream_options"] = {"include_usage": True}
            else:
                body.pop("stream_options", None)
            changed = ("stream", "stream_options")
        return client_stream, upstream_stream, include_usage, meter, changed

    def params(self, body: dict[str, Any], withheld: frozenset[str] = frozenset()) -> tuple[str | None, bool]:
        """LLM_PARAMS, the one place they are applied (plan; native relay): the rule for the name the body serves
        (routed: the deployment's rule), applied to the body; returns that name and whether a rule applied.
        `withheld`: parameters the client's API version refuses, which the rule does not add (the client's own
        are its word)."""
        served = body.get("model")
        served = served if isinstance(served, str) else None
        rule = self.settings.llm_params.rule_for(served) if self.settings.llm_params else None
        if rule is not None and withheld:
            rule, held = without_params(rule, withheld)
            if held:
                self.said_withheld(served or "", held)
        if rule is None:
            return served, False
        apply_rule(body, rule)
        return served, True

    def said_withheld(self, model: str, held: list[str]) -> None:
        """A warning, once per model (per worker, for the last WITHHELD_WARNINGS models), that LLM_PARAMS or its
        model rule sets parameters its clients' API version refuses."""
        key = model[:MODEL_NAME_CHARS]
        self._withheld_said.get(key, lambda: _warn_withheld(key, held))

    def charges(self, call: Call, body: dict[str, Any]) -> bool:
        """May this deployment's answer cost money (its model priced above 0, or unpriced)? Then its spend is
        counted whoever asks: a self-hosted model priced 0 is not (nothing asked or read for it)."""
        source = self.price_source
        if source.costs_nothing:
            return False
        served = body.get("model")
        names = tuple(dict.fromkeys(n for n in (served, call.plan.model) if isinstance(n, str) and n))
        return bool(source.charges(names, time.time()))

    def prepared(self, call: Call, planned: Planned) -> Planned:
        """The backend's preparation of `planned` (model name, images; its own state: it reads the record on the
        call), then the request adapted to what that model accepts, then the allow-list on the name served."""
        call.planned = planned
        ready = self.backend.prepare(call)
        if ready is not None:
            planned = with_prepared(planned, ready if isinstance(ready, Prepared) else Prepared(state=ready))
        if call.plan.kind in ADAPTED_KINDS:
            adapted = self.adapt(call, planned.body, CHAT, planned.upstream_model or call.plan.model)
            if adapted:
                planned = structs.replace(planned, rewritten=True, adapted=planned.adapted + adapted)
        if self.settings.allowed_models:
            served_allowed(self.settings.allowed_models, call.plan.model, planned.upstream_model)
        return planned

    def native(self, call: Call, door: str, body: dict[str, Any], count_only: bool, shape: Shape | None,
               supply: tuple[tuple[str, ...], int] | None, withheld: frozenset[str] = frozenset()) -> Planned:
        """A door's own request relayed to an upstream that serves its API: LLM_PARAMS (no stream modes or think:
        the answer is not parsed; none of `withheld`, what the client's API version refuses), the limit its
        reservation sends, adaptation in the door's own shape, the backend's preparation."""
        plan = call.plan
        rewritten = self.params(body, withheld)[1]
        touched = frozenset(supplied(body, supply)) if supply is not None else frozenset()
        adapted = self.adapt(call, body, shape or CHAT, self.backend.front_model(door, plan.model),
                             supply_limit=not count_only)
        draft = Planned(body, plan.raw_body, plan.members, touched, rewritten or bool(adapted),
                        client_stream=body.get("stream") is True and not count_only, adapted=adapted)
        call.planned = draft
        ready = self.backend.prepare_front(call, door, body, count_only)
        return draft if ready is None else with_prepared(draft, ready)

    def adapt(self, call: Call, body: dict[str, Any], shape: Shape, upstream_model: str | None,
              supply_limit: bool = True) -> tuple[str, ...]:
        """Drop, clamp or convert what the model does not accept (capabilities.py, adapt.py); an unknown model's
        request goes as the client wrote it. The changes, returned, go to X-Adapted-Params and the journal."""
        caps = self.capabilities.lookup(upstream_model, call.plan.model)
        if caps is None:
            return ()
        return tuple(adapt_request(body, caps, shape, supply_limit))

    def think_config(self, model: str | None, upstream_model: Any) -> ThinkConfig | None:
        key = (model, upstream_model if isinstance(upstream_model, str) else None)
        return self._think_cache.get(key, lambda: self._build_think(*key))

    def _build_think(self, model: str | None, upstream_model: str | None) -> ThinkConfig | None:
        s = self.settings
        rule = s.llm_params.rule_for(model) if s.llm_params else None
        mode = (rule.think_mode if rule and rule.think_mode else None) or s.think_mode
        if mode == "keep":
            return None
        inside = rule.think_starts_inside if rule and rule.think_starts_inside is not None else None
        if inside is None:
            inside = starts_inside(model) or starts_inside(upstream_model)
        return ThinkConfig(mode, (rule and rule.think_tag_start) or s.think_tag,
                           (rule and rule.think_tag_end) or s.think_end_tag, bool(inside))


def _warn_withheld(model: str, held: list[str]) -> bool:
    log.warning("LLM_PARAMS sets %s for model %r, which its clients' API version refuses: left out of its "
                "requests relayed as written", ", ".join(held), model)
    return True


def counts_tokens(call: Call) -> bool:
    """Is this call's usage counted (key_limits' tpm; any team key: its usage rows charge every answer, a stream
    whose upstream sends no usage with the estimate of what it relayed)?"""
    limit = call.plan.key_limit
    return bool(limit is not None and limit.tpm) or call.plan.team_key is not None


def starting(call: Call, request: dict[str, Any] | None, model: str | None) -> tuple[dict[str, Any], frozenset[str]]:
    """The body an attempt is planned from, and its members already changed: the request as admitted (a limit
    supplied), or `request` (parsed again for a routed retry or fallback); naming the routed entry's `model`."""
    body = call.plan.body if request is None else request
    touched = frozenset(call.plan.supplied) if request is None and call.plan.supplied else NOTHING
    if model is not None and body.get("model") != model:
        body["model"] = model
        touched |= {"model"}
    return body, touched


def metered(body: dict[str, Any], include_usage: bool) -> tuple[UsageTap, tuple[str, ...]]:
    """A chat-door stream under a token budget, or one whose answer costs money: the upstream asked for usage
    (taken out again for a client that did not ask), counted should none come (pipeline/stream_usage.py)."""
    meter = UsageTap(strip=not include_usage)
    if include_usage:
        return meter, ()
    options = body.get("stream_options")
    body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return meter, ("stream_options",)


def with_prepared(planned: Planned, ready: Prepared) -> Planned:
    """The record with what the backend's preparation decided (the backend returns; it writes nothing)."""
    return structs.replace(
        planned, backend_state=ready.state,
        upstream_model=ready.upstream_model if ready.upstream_model is not None else planned.upstream_model,
        timeout=ready.timeout if ready.timeout is not None else planned.timeout,
        touched=planned.touched.union(ready.changed) if ready.changed else planned.touched,
        rewritten=planned.rewritten or ready.body_changed, adapted=planned.adapted + ready.adapted)


def whole_again(planned: Planned) -> Planned:
    """A stream that ended before its first event, asked again without streaming: a new record, its body without
    the stream's members (the attempt's own stays as it was sent)."""
    body = dict(planned.body)
    body["stream"] = False
    body.pop("stream_options", None)
    return structs.replace(planned, body=body, upstream_stream=False, rewritten=True)


def refused(planned: Planned, change: str, member: str, value: Any) -> Planned:
    """A parameter the upstream refused, left out (`value` None) or sent in the shape it takes: a new record, which
    later askings of this attempt (a stream asked again whole) start from."""
    body = dict(planned.body)
    if value is None:
        body.pop(member, None)
    else:
        body[member] = value
    return structs.replace(planned, body=body, touched=planned.touched | {member},
                           adapted=planned.adapted + (change,))


def served_by_route(planned: Planned, upstream_model: str | None) -> Planned:
    """A backend's own route names the model it sends."""
    return structs.replace(planned, upstream_model=upstream_model)
