"""The sequence's plan step, and every change the sequence makes to a call's Plan: LLM_PARAMS, stream modes and the
think configuration (Planner.plan), the backend's preparation and what it returns, capability adaptation
(Planner.prepare), a front door's request as the chat request it became (translated), a routed attempt's body,
a stream asked again whole, a parameter the upstream refused left out."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from argoproxy.config.llm_params import MODEL_NAME_CHARS, starts_inside
from argoproxy.edge.client_caches import BoundedCache
from argoproxy.jsonfast import dumps, loads
from argoproxy.meter import supplied
from argoproxy.pipeline import upstream_messages
from argoproxy.pipeline.adapt import CHAT, Shape, adapt_request
from argoproxy.pipeline.backend import Prepared
from argoproxy.pipeline.forwarded_body import forwarded_body
from argoproxy.pipeline.param_rules import apply_rule, without_params
from argoproxy.pipeline.stream_usage import UsageTap
from argoproxy.pipeline.think import ThinkConfig, for_client

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.pipeline.backend import Backend
    from argoproxy.pipeline.call import Call
    from argoproxy.pipeline.capabilities import CapabilityTable
    from argoproxy.pipeline.door_api import DoorExchange

log = logging.getLogger("cot_proxy")

THINK_CACHE = 256  # think configurations kept, by (model, upstream model)
WITHHELD_WARNINGS = 256  # models whose withheld parameters were said in the log (client names: bounded)
ADAPTED_KINDS = frozenset({"chat", "completions"})  # requests with sampling and reasoning parameters


class Planner:
    """One deployment's planning: its settings (LLM_PARAMS, UPSTREAM_MODE, THINK_*), its backend's policy and
    preparation, the capabilities of its models, and how its answers are priced (a stream that costs money is
    metered)."""

    def __init__(self, settings: Settings, backend: Backend, capabilities: CapabilityTable, price_source: Any) -> None:
        self.settings, self.backend, self.capabilities = settings, backend, capabilities
        self.price_source = price_source
        self._think_cache: BoundedCache[ThinkConfig | None] = BoundedCache(THINK_CACHE)  # keyed by client names
        self._withheld_said: BoundedCache[bool] = BoundedCache(WITHHELD_WARNINGS, MODEL_NAME_CHARS)

    def plan(self, call: Call) -> None:
        """Stream modes, LLM_PARAMS and the think configuration for an API call; the backend's policy
        (does the upstream stream, do answer transforms apply) is asked here, once, before the body changes.
        The rule is the one for the name served (routed: the deployment's); plan.model stays the name asked."""
        plan = call.plan
        body = plan.body
        served = self.params(call, body)
        if plan.kind == "embeddings":
            return
        backend = self.backend
        if plan.kind == "chat" and upstream_messages.normalize(body.get(upstream_messages.TURNS),
                                                               backend.keeps_developer, backend.tool_turn_content):
            plan.touch(upstream_messages.TURNS)
        plan.client_stream = body.get("stream") is True
        options = body.get("stream_options")
        plan.include_usage = plan.client_stream and isinstance(options, dict) and options.get("include_usage") is True
        plan.meter = None  # routed: an earlier deployment's does not stay
        if plan.client_stream and plan.exchange is None and (counts_tokens(call) or self.charges(call, body)):
            metered(call, body)
        mode = self.settings.upstream_mode
        wanted = plan.client_stream if mode == "off" else mode == "stream"
        plan.upstream_stream = backend.upstream_streams(call, wanted)
        if plan.upstream_stream != plan.client_stream:
            body["stream"] = plan.upstream_stream
            if plan.upstream_stream:
                body["stream_options"] = {"include_usage": True}
            else:
                body.pop("stream_options", None)
            plan.touch("stream", "stream_options")
        if backend.transforms_answers(call):
            plan.think = for_client(self.think_config(served, body.get("model")), plan.asks_reasoning)

    def params(self, call: Call, body: dict[str, Any], withheld: frozenset[str] = frozenset()) -> str | None:
        """LLM_PARAMS, the one place they are applied (plan; native relay): the rule for the name the body serves
        (routed: the deployment's rule), applied to the body; returns that name. `withheld`: parameters the
        client's API version refuses, which the rule does not add (the client's own are its word)."""
        served = body.get("model")
        served = served if isinstance(served, str) else None
        rule = self.settings.llm_params.rule_for(served) if self.settings.llm_params else None
        if rule is not None and withheld:
            rule, held = without_params(rule, withheld)
            if held:
                self.said_withheld(served or "", held)
        if rule is not None:
            apply_rule(body, rule)
            call.plan.body_changed = True
        return served

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

    def prepare(self, call: Call) -> None:
        """The backend's preparation (model name, images; its own state), then the request adapted to what that
        model accepts."""
        plan = call.plan
        model = plan.body.get("model")
        plan.upstream_model = model if isinstance(model, str) else None  # the backend's prepare may resolve it
        ready = self.backend.prepare(call)
        if isinstance(ready, Prepared):
            prepared(call, ready)
        else:  # a provider of before Prepared: its state
            plan.backend_state = ready
        if plan.kind in ADAPTED_KINDS:
            self.adapt(call, plan.body, CHAT, plan.upstream_model or plan.model)

    def native(self, call: Call, door: str, body: dict[str, Any], count_only: bool, shape: Shape | None,
               supply: tuple[tuple[str, ...], int] | None, withheld: frozenset[str] = frozenset()) -> None:
        """A door's own request relayed to an upstream that serves its API: LLM_PARAMS (no stream modes or think:
        the answer is not parsed; none of `withheld`, what the client's API version refuses), the limit its
        reservation sends, adaptation in the door's own shape, the backend's preparation."""
        plan = call.plan
        self.params(call, body, withheld)
        plan.body = body
        if supply is not None:
            plan.touch(*supplied(body, supply))
        plan.client_stream = body.get("stream") is True and not count_only
        self.adapt(call, body, shape or CHAT, self.backend.front_model(door, plan.model), supply_limit=not count_only)
        ready = self.backend.prepare_front(call, door, body, count_only)
        if ready is not None:
            prepared(call, ready)

    def adapt(self, call: Call, body: dict[str, Any], shape: Shape, upstream_model: str | None,
              supply_limit: bool = True) -> None:
        """Drop, clamp or convert what the model does not accept (capabilities.py, adapt.py); an unknown model's
        request goes as the client wrote it. The changes go to X-Adapted-Params and the journal."""
        caps = self.capabilities.lookup(upstream_model, call.plan.model)
        if caps is None:
            return
        changes = adapt_request(body, caps, shape, supply_limit)
        if changes:
            call.plan.body_changed = True
            call.plan.adapted.extend(changes)

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


def metered(call: Call, body: dict[str, Any]) -> None:
    """A chat-door stream under a token budget, or one whose answer costs money: ask the upstream for usage
    (taken out again for a client that did not ask) and count the stream should none come
    (pipeline/stream_usage.py)."""
    plan = call.plan
    plan.meter = UsageTap(strip=not plan.include_usage)
    if not plan.include_usage:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        plan.include_usage = True
        plan.touch("stream_options")


def prepared(call: Call, ready: Prepared) -> None:
    """What the backend decided, kept in the plan (the sequence writes the plan; the backend returns)."""
    plan = call.plan
    plan.backend_state = ready.state
    if ready.upstream_model is not None:
        plan.upstream_model = ready.upstream_model
    if ready.timeout is not None:
        plan.timeout = ready.timeout
    if ready.changed:
        plan.touch(*ready.changed)
    if ready.body_changed:
        plan.body_changed = True
    if ready.adapted:
        plan.adapted.extend(ready.adapted)


def api_body(call: Call, body: dict[str, Any], supply: tuple[tuple[str, ...], int] | None) -> None:
    """The body an API call sends (`supply`: the limit its reservation sends, no field bounding its answer)."""
    plan = call.plan
    if supply is not None:
        plan.touch(*supplied(body, supply))
    plan.body = body


def forwarded_supply(call: Call, supply: tuple[tuple[str, ...], int]) -> None:
    """The limit a forwarded body's reservation sends (where its door says: `Spelled.supply`), written into its
    bytes."""
    body = forwarded_body(call)
    if body is not None and supplied(body, supply):
        call.plan.raw_body = dumps(body)


def translated(call: Call, ex: DoorExchange, headers: dict[str, str]) -> None:
    """A front door's request became the internal request `ex.chat`: the call now serves that route, with the
    headers its door lets go upstream."""
    plan = call.plan
    plan.exchange, plan.body_changed = ex, True
    plan.asks_reasoning = ex.asks_reasoning
    plan.kind, plan.path, plan.query = ex.kind, ex.path, ""
    plan.headers = headers


def counting(call: Call) -> None:
    """A door's token count: the call is counted as one."""
    call.plan.kind = "count_tokens"


def kept_alive(call: Call) -> None:
    """Keepalives run for this stream now (routed: around all attempts, not each deployment's)."""
    call.plan.kept_alive = True


def attempt(call: Call, again_from: bytes | None, model: str | None) -> None:
    """A routed attempt's body: as it was before an earlier attempt edited it (`again_from`: the client's bytes,
    or a front door's translation as JSON), naming the model of its entry (a fallback's)."""
    plan = call.plan
    if again_from is not None:
        plan.body = loads(again_from)
        plan.body_changed = again_from is not plan.raw_body
        plan.touched = set()
    if model is not None:
        plan.set_member("model", model)


def whole_again(call: Call) -> None:
    """A stream that ended before its first event, asked again without streaming."""
    plan = call.plan
    plan.body["stream"] = False
    plan.body.pop("stream_options", None)
    plan.upstream_stream = False
    plan.body_changed = True


def refused_member(call: Call, change: str, member: str, value: Any) -> None:
    """A parameter the upstream refused, left out (`value` None) or sent in the shape it takes; later askings (a
    stream asked again whole, another deployment) start from the body so changed."""
    body = call.plan.body
    if value is None:
        body.pop(member, None)
    else:
        body[member] = value
    call.plan.touch(member)
    call.plan.adapted.append(change)


def serves(call: Call, model: str | None, upstream_model: str | None) -> None:
    """A backend's own route names the model it serves."""
    plan = call.plan
    plan.model, plan.upstream_model = model, upstream_model
