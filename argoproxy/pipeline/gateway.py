"""The one sequence for every API request, whichever door it came in by (its body read and parsed by the door,
serve/door.py, which picks the sequence: `api`, or for a door `relay_native` or `count_tokens`):

    guard (admit) -> stored history (the Responses door's) -> translate (a front door's request becomes the
    internal chat request; validate) -> dispatch (to this worker's one deployment, or through routing to one
    of several: the same `run`) -> plan (LLM_PARAMS, stream modes, think) -> prepare (the backend: model name,
    images; its own state) -> adapt (what the model accepts) -> allow-list -> send -> decode (the backend)
    -> transform (think) -> encode (the door's answer encoder: chat_answers.py or fronts/serve.py)
    -> observe (answers.py).

A Gateway is one deployment's view: its settings, backend and upstream. The worker's Gateway also holds the
routing (`models`), the key budgets and the team keys; a routed deployment's Gateway shares its Answers."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from argoproxy.config import provider_registry as providers
from argoproxy.config.llm_params import starts_inside
from argoproxy.config.routing_settings import ModelEntry, entry_url
from argoproxy.config.settings import Settings
from argoproxy.edge.client_caches import BoundedCache
from argoproxy.edge.header_policy import response_headers
from argoproxy.edge.http_objects import Answer, Request
from argoproxy.errors import ProxyError, named
from argoproxy.pipeline.door_api import AnswerEncoder, DoorArgs, DoorAnswersFactory, FrontDoor
from argoproxy.jsonfast import dumps, loads
from argoproxy.edge import keepalive
from argoproxy.pipeline import upstream_messages
from argoproxy.pipeline.adapt import CHAT, TYPES_TAKEN, Shape, adapt_request, refused_param, schema_as_json_object
from argoproxy.pipeline.answers import Answers, try_json
from argoproxy.pipeline.call import Call, Trace
from argoproxy.pipeline.capabilities import CapabilityTable
from argoproxy.pipeline.chat_answers import ChatAnswers
from argoproxy.pipeline.filters import item_filters
from argoproxy.pipeline.guard import Guard, plan_model, served_allowed
from argoproxy.turns import under_gevent
from argoproxy.pipeline.stream_usage import Meter, native_usage
from argoproxy.pipeline.think import ThinkConfig, for_client
from argoproxy.meter.template_overhead import estimated_prompt
from argoproxy.pipeline.backend import Prepared, Backend, StreamItem
from argoproxy.pipeline.model_context import ModelContexts
from argoproxy.pipeline.param_rules import apply_rule
from argoproxy.pipeline.request_shape import validate
from argoproxy.meter.dollars import most_nanos
from argoproxy.meter.worst import OPENAI, Asked, Worst, supplied
from argoproxy.pipeline.served import SERVED_BY, SERVED_MODEL, header_safe
from argoproxy.pipeline.upstream_count import UPSTREAM_COUNTS
from argoproxy.redaction import listing, sanitize_message
from argoproxy.upstream.local_server import asker
from argoproxy.upstream.answer_bounds import MAX_PROBE_ANSWER
from argoproxy.upstream.client import READ_ERRORS, CallBudget, Upstream, replayable, stream_error
from argoproxy.upstream.relay import error_headers, redirect_error
from argoproxy.upstream.wire import (UpstreamRequest, UpstreamResponse, describe_host, framed, read_chunks,
                                    unframed_end)

if TYPE_CHECKING:
    from argoproxy.pipeline.collaborators import Dispatcher, Keeper, Limiter, StoredResponses
    from argoproxy.teamkeys.service import TeamKeys

log = logging.getLogger("cot_proxy")

THINK_CACHE = 256  # think configurations kept, by (model, upstream model)
SMALL_BODY = 256 * 1024  # pass-through bodies up to this size are relayed in one piece
ADAPTED_KINDS = frozenset({"chat", "completions"})  # requests with sampling and reasoning parameters


class Gateway:
    def __init__(self, settings: Settings, backend: Backend, upstream: Upstream, door_answers: DoorAnswersFactory,
                 answers: Answers | None = None, *, routing: Callable[[Gateway], Dispatcher] | None = None,
                 limiter: Limiter | None = None, team_keys: TeamKeys | None = None,
                 stored: StoredResponses | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.upstream = upstream
        self.answers = answers if answers is not None else Answers(settings)
        self.chat = ChatAnswers(self.answers, backend)  # the chat-completions door's encoder
        # the API doors' encoder (fronts/serve.py's FrontAnswers, handed by serve/build.py: no door imported here)
        self.door_answers = door_answers
        self.fronts = door_answers(self.answers, upstream.read_timeout)
        self._think_cache: BoundedCache[ThinkConfig | None] = BoundedCache(THINK_CACHE)  # keyed by client names
        self.capabilities = CapabilityTable(settings.backend, settings.model_capabilities)
        answers = self.answers  # the decoded stream's transforms, in order
        self.item_filters = item_filters(answers.journal_bytes, answers.note_upstream_output,
                                         answers.note_facts if answers.reads_facts else None, answers.reads_content)
        # The worker's collaborators, handed by serve/build.py (None when not configured); a routed deployment's
        # view has none of them.
        self.limiter = limiter  # `key_limits`
        self.team_keys = team_keys  # auth on: team keys (argoproxy/teamkeys/)
        self.stored = stored  # stored responses (argoproxy/state/)
        self.contexts = ModelContexts(self.listed_models)  # the models' contexts, for reservations (read when asked)
        self.image_tokens = settings.meter_image_tokens  # Bounds: an image of a model of no known family
        self.guard = Guard(settings, self)  # the one guard every upstream-bound request passes
        self.completes = type(backend).complete is not Backend.complete  # asked only of a backend that has it
        base_url = entry_url(settings, ModelEntry("*", settings.backend))
        self.served_by = describe_host(base_url)  # X-Served-By
        # its models' prices (prices/pricer.py); a local server may say it is one (upstream/local_server.py)
        says_local = asker(base_url, settings.openai_api_key) if providers.get(settings.backend).local_servers else None
        self.price_source = self.answers.pricer.source(base_url, backend.priced_as if backend.names_vendor else None,
                                                       settings.self_hosted, says_local)
        # `models`: several deployments (argoproxy/routing/), built last: it makes a view of this Gateway for each
        self.routing: Dispatcher | None = routing(self) if routing is not None else None

    def for_deployment(self, backend: Backend, upstream: Upstream, settings: Settings) -> "Gateway":
        """One routed deployment's view: its own backend, upstream and settings; the same answer side."""
        return Gateway(settings, backend, upstream, self.door_answers, self.answers)

    def most_cost(self, call: Call, input_tokens: int, output_tokens: int) -> int | None:
        """The most a call may cost, in nano-dollars, on whichever deployment may serve its model (routing: the
        dearest of them); None when one of them has no price for it (a dollar budget then refuses it). The
        meter's worst case priced once (argoproxy/meter/dollars.py), kept with it for the trace."""
        model = call.plan.model or ""
        serving = self.routing.priced(model) if self.routing is not None else [(self.price_source, model)]
        named = [(source, tuple(dict.fromkeys(n for n in (name, model) if n))) for source, name in serving]
        asked = call.plan.asked
        if asked is None or asked.read_worst is None or (asked.read_worst.input, asked.read_worst.output) != (
                input_tokens, output_tokens):
            return most_nanos(self.answers.pricer, named, Worst(input_tokens, output_tokens, ""), time.time())
        return asked.most_nanos(lambda worst: most_nanos(self.answers.pricer, named, worst, time.time()))

    def new_call(self, req: Request, kind: str, path: str, trace: Trace | None = None) -> Call:
        return Call.of(kind, req.method, path, "", req.headers, req.request_id, req, trace)

    # ---------------------------------------------------------------- the door's side
    def api(self, call: Call, body: dict[str, Any], front: FrontDoor | None = None,
            args: DoorArgs | None = None) -> Answer:
        """Every API request the proxy serves by translating and sending it: chat/completions, completions,
        embeddings, and the API doors' (`front`: the door, argoproxy/fronts/; `args`: what its path says, such as a
        model and method named there), its body read and parsed by the door (serve/door.py)."""
        supply = self.admit(call, body, front, False, args)
        if front is not None:
            if self.stored is not None and self.stored.serves(front):
                # stored responses: the history put before the input, the answer kept (argoproxy/state/)
                return self.stored.serve(call, body, lambda c, b, keeper: self.front_call(
                    c, front, b, args, keeper, supply))
            return self.front_call(call, front, body, args, supply=supply)
        plan = call.plan
        if supply is not None:
            plan.touch(*supplied(body, supply))
        plan.body = body
        return self.dispatch(call)

    def admit(self, call: Call, body: dict[str, Any], front: FrontDoor | None, count_only: bool,
              args: DoorArgs | None) -> tuple[tuple[str, ...], int] | None:
        """The one guard, its limits reading the request as its reservation does; returns the limit the reservation
        sends when no field bounds the answer (None: none)."""
        limited = self.limited(call)
        if not (limited or self.routing is not None):  # nothing weighs this request: the meter is not asked
            self.guard.check(call, plan_model, required=True, served_later=True)
            return None
        asked = call.plan.asked = self.asked(call, body, front, count_only, args)  # read once, when a limit or the
        # fair queue first needs it (a trace records what they read)
        self.guard.check(call, plan_model, required=True, served_later=True, body=asked if limited else None)
        return asked.supply

    def relays(self, front: FrontDoor, model: str | None) -> bool:
        """Does the upstream serve this door's API itself, its requests relayed as written (relay_native)?"""
        return self.routing is None and self.backend.native_front(front.name, model)

    def limited(self, call: Call) -> bool:
        """May a token limit apply to this call (key_limits, or a team key)? Otherwise nothing is reserved, and
        nothing is read for it."""
        req = call.client.request
        return self.limiter is not None or (req is not None and req.team_key is not None)

    def asked(self, call: Call, body: dict[str, Any], front: FrontDoor | None, count_only: bool,
              args: DoorArgs | None) -> Asked:
        """An API request as its reservation reads it (meter/worst.py), read only if a limit needs it:
        the body as sent, or the request an API door makes of it (its own spellings of the answer limit, its
        contents and images read as the door reads them): the chat request it translates to, with a stored
        conversation's history (the stateful door's, argoproxy/state/), or the door's own body where the
        upstream serves its API and is sent it as written."""
        reading = self.backend.reading if self.routing is None else OPENAI  # routed: any OpenAI-compatible server
        plan = call.plan
        if front is None:
            return Asked(lambda: (plan.kind, body), reading, self)

        def read() -> tuple[Any, Any]:
            if count_only:
                return "count", body
            if self.relays(front, plan.model):
                return front.spelled or "forwarded", body  # its own body, as its door says it is read
            asked = body
            if self.stored is not None and self.stored.serves(front):
                asked = self.stored.request_for(call, body)
            return "chat", front.to_chat(asked, count_only, args)[0]
        return Asked(read, reading, self, plan.model)

    def supplied_limit(self, model: str | None) -> int | None:
        """Bounds (meter/worst.py): the output limit adapt sends for a model when a request sets none."""
        caps = self.capabilities.lookup(None, model)
        return caps.max_tokens if caps is not None else None

    def context(self, model: str | None) -> int | None:
        """Bounds: the model's context as the model list says it (read again every few minutes)."""
        return self.contexts(model)

    def listed_models(self) -> list[Any]:
        if self.routing is not None:
            return self.routing.model_list()
        # the proxy's own read, for the models' contexts: a longer list is not read on (the default is reserved)
        data = self.backend.list_models(Call.of("models", "GET", "v1/models", answer_most=MAX_PROBE_ANSWER)).get("data")
        return data if isinstance(data, list) else []

    def front_call(self, call: Call, front: FrontDoor, body: dict[str, Any], args: DoorArgs | None,
                   keeper: Keeper | None = None, supply: tuple[tuple[str, ...], int] | None = None) -> Answer:
        """A front door's request translated, then served as the chat request it became (`supply`: the limit
        its reservation sends, no field bounding its answer)."""
        body = self.translate(call, front, body, False, args)
        if supply is not None:
            supplied(body, supply)
        if keeper is not None:
            if call.plan.exchange is not None:
                keeper.attach(call.plan.exchange)
            if keeper.quiet:  # no keepalive first: the upstream's context error stays an HTTP one, asked again
                call.plan.kept_alive = True
        call.plan.body = body
        return self.dispatch(call)

    def dispatch(self, call: Call) -> Answer:
        """To the deployment that serves: routing's choice among several (each answer names it), or this one, the
        shorthand for a one-entry list: its answers and errors name it the same way (X-Served-Model, the model
        asked for; X-Served-By, the upstream's host:port)."""
        if self.routing is not None:
            self.calls(call)  # MAX_UPSTREAM_CALLS over every attempt routing makes (Outcome.calls)
            return self.routing.api(call)
        shown = self.serving(call, self.served_by, call.plan.model, call.plan.model or "")
        try:
            answer = self.run(call)
        except ProxyError as err:
            err.headers = {**err.headers, SERVED_MODEL: shown, SERVED_BY: self.served_by}
            raise
        # added, not replaced: no upstream header of these names is relayed (upstream/relayed_headers.py), and a
        # replacement scans every header twice (2 us a chat answer)
        answer.headers.add_header(SERVED_MODEL, shown)
        answer.headers.add_header(SERVED_BY, self.served_by)
        return answer

    def translate(self, call: Call, front: FrontDoor, body: dict[str, Any], count_only: bool,
                  args: DoorArgs | None) -> dict[str, Any]:
        """A front door's request as the internal chat request; the call now serves the chat route."""
        chat, ex = front.to_chat(body, count_only, args)
        upstream_messages.join_turns(chat, answer_pieces=front.joins_answer_pieces)
        if ex.dropped:  # agents send tools only their own vendor runs (docs/decisions.md)
            log.warning("%s %s: left out what a chat backend cannot run: %s", front.name, call.client.request_id,
                        listing(ex.dropped))
        if count_only:
            return chat
        if front.counts_prompt_first and ex.stream:
            ex.input_tokens = estimated_prompt(chat)  # its stream's start needs a count before usage arrives
        ex.chat = chat
        ex.keep = front.answer_budget(self.settings.max_sse_event_bytes, self.answers.journal_bytes)
        plan = call.plan
        plan.exchange, plan.body_changed = ex, True
        plan.asks_reasoning = ex.asks_reasoning
        plan.kind, plan.path, plan.query = ex.kind, ex.path, ""
        plan.headers = front.upstream_headers(plan.headers)
        try:
            validate(ex.kind, chat)
        except ProxyError as err:
            raise front.own_error(err) from None
        return chat

    def count_tokens(self, call: Call, front: FrontDoor, body: dict[str, Any], args: DoorArgs | None) -> Answer:
        """A door's token count of the chat request its body translates to: the upstream's own count where it can
        count (pipeline/upstream_count.py: llama.cpp, vLLM), else the estimate (meter/tokens.py) over
        messages, system and tools with the chat template's overhead."""
        self.admit(call, body, front, True, args)
        chat = self.translate(call, front, body, True, args)
        call.plan.kind = "count_tokens"
        served_allowed(self.settings.allowed_models, call)
        if self.routing is not None:  # by a deployment that serves the model (a 404 for a model none serves)
            counted = self.routing.count(chat)
        else:
            counted = UPSTREAM_COUNTS.count(self.backend, chat)
        obj = front.count_answer(estimated_prompt(chat) if counted is None else counted)
        return self.answers.whole(call, obj, self.fronts.headers(call, [("Content-Type", "application/json")]))

    # ---------------------------------------------------------------- one deployment
    def serving(self, call: Call, served_by: str, model: str | None, shown: str, renamed_to: str | None = None,
                routed: bool = False) -> str:
        """The deployment about to serve, for journals, metrics and the X-Served-* headers (returned: the model
        as a header shows it); `renamed_to`: a fallback's answer names the model asked for; `routed`: routing's
        attempt, whose body names the model of its entry (a fallback's)."""
        if routed and model is not None:
            call.plan.set_member("model", model)
        out = call.outcome
        out.deployment, out.served_model, out.renamed_to = served_by, model, renamed_to
        out.served_header = shown = header_safe(shown)
        return shown

    def attempt(self, call: Call, served_by: str, model: str, shown: str, renamed_to: str | None,
                again_from: bytes | None) -> Answer:
        """One routed attempt on this deployment (routing's, through Sends): the body as it was before an earlier
        attempt edited it (`again_from`: the client's bytes, or a front door's translation as JSON), the deployment
        named (`serving`: its body names the model of its entry, a fallback's), then `run`; its answer says who
        served (X-Served-Model, X-Served-By)."""
        if again_from is not None:
            plan = call.plan
            plan.body = loads(again_from)
            plan.body_changed = again_from is not plan.raw_body
            plan.touched = set()
        shown = self.serving(call, served_by, model, shown, renamed_to, routed=True)
        answer = self.run(call)
        headers = answer.headers
        headers[SERVED_MODEL] = shown
        headers[SERVED_BY] = served_by
        return answer

    def run(self, call: Call) -> Answer:
        """The request on this deployment (directly, or as routing's attempt), up to the client's first byte."""
        plan = call.plan
        if plan.kind not in self.backend.kinds:
            raise ProxyError(404, f"The {self.backend.name} backend serving {plan.model} does not serve "
                             f"/{call.client.path}.", code="unknown_route")
        self.plan(call)
        self.prepare(call)
        served_allowed(self.settings.allowed_models, call)
        if self.completes:  # a backend that answers some calls with several upstream requests
            whole = self.backend.complete(call, self.route_sender(call))
            if whole is not None:
                if self.answers.reads_facts:
                    self.answers.note_whole_facts(call, whole)
                return self.encoder(call).answer_object(call, whole)  # in the door's shape
        return self.finish(call, self.backend.encode(call))

    def encoder(self, call: Call) -> AnswerEncoder:
        """The door's answer encoder, chosen by what the door translated."""
        return self.chat if call.plan.exchange is None else self.fronts

    def finish(self, call: Call, req: UpstreamRequest) -> Answer:
        """Send a prepared call upstream and answer the client (streams: with keepalives while it waits)."""
        if call.plan.client_stream and self.settings.sse_keepalive > 0 and not call.plan.kept_alive:
            return self.kept_alive(call, lambda: self.answer(call, req))  # routed: around all attempts instead
        return self.answer(call, req)

    def kept_alive(self, call: Call, produce: Callable[[], Answer],
                   headers_of: Callable[[Call, AnswerEncoder], Any] | None = None) -> Answer:
        """A stream answered with SSE keepalives while `produce` waits on its upstream (edge/keepalive.py): one
        deployment's answer (finish), or routing's attempts over several; the one place this is wired.
        `headers_of(call, encoder)`: the headers read when the stream commits (default: the encoder's, with the
        deployment then in flight)."""
        call.plan.kept_alive = True  # routed: around all attempts, not each deployment's
        encoder = self.encoder(call)
        headers = (headers_of or CommitHeaders)(call, encoder)
        return keepalive.streamed(produce, self.settings.sse_keepalive, headers,
                                  lambda err: self.failed_stream(call, encoder, err),
                                  lambda: self.answers.abandon(call), encoder.keepalive_beat(call),
                                  call.server_write)

    def failed_stream(self, call: Call, encoder: AnswerEncoder, err: ProxyError) -> bytes:
        """The error event of a stream committed while its upstream had not answered yet, which failed before an
        answer: the call ends with it, recorded (journals, metrics, the request line) as an error answer is."""
        event = encoder.error_event(call, err)
        if not call.outcome.observed:
            body = err.body()
            named(body["error"], call.client.request_id, call.client.client_request_id)
            call.outcome.output = body
            self.answers.observe(call)
        return event

    def answer(self, call: Call, req: UpstreamRequest) -> Answer:
        """Send (exchange), decode, transform and encode one deployment's answer."""
        out = call.outcome
        resp = self.exchange(call, req)
        encoder = self.encoder(call)
        if call.plan.upstream_stream:
            try:
                items = self.decoded_stream(call, resp)
            except ProxyError as err:
                if err.code != "upstream_stream_incomplete" or out.asked_whole:
                    raise
                if not framed(resp) and not replayable(req):
                    raise unframed_end(err) from None
                if under_gevent():  # nothing else ran since its end put the connection back: nobody took it yet
                    resp.discard()
                if not self.calls(call).left:  # MAX_UPSTREAM_CALLS spent
                    raise
                return self.ask_whole(call)
            return encoder.encode_stream(call, resp, items)
        return encoder.encode_whole(call, resp, self.decoded_whole(call, resp))

    def ask_whole(self, call: Call) -> Answer:
        """The upstream ended its stream before its first event: asked once more without streaming, the whole
        answer then streamed to the client. llama.cpp's server does this whenever its model chooses a tool
        under `tool_choice: auto` ("Automatic streaming tool choice is not supported", raised after the
        stream's headers), so every agent's tool round trip would end there."""
        log.warning("the upstream ended its stream before its first event; asking again without streaming")
        call.outcome.asked_whole = True
        plan = call.plan
        plan.body["stream"] = False
        plan.body.pop("stream_options", None)
        plan.upstream_stream = False
        plan.body_changed = True
        # on a connection of its own: the stream's, closed a moment later by uvicorn, may still be in the pool;
        # read whole for a client that streams, so within a stream's bound, not MAX_RESPONSE_BYTES (a 59 MB
        # answer cost a worker +277 MB, four at once 1 GB)
        limit = min(self.settings.max_response_bytes, WHOLE_FOR_A_STREAM)
        try:
            return self.answer(call, dataclasses.replace(self.backend.encode(call), fresh_connection=True,
                                                         max_bytes=limit))
        except ProxyError as err:
            if err.code != "upstream_response_too_large":
                raise
            raise ProxyError(502, f"The upstream ended its stream before its first event, and its answer asked "
                                  f"again whole is larger than a stream's is read whole ({limit} bytes).",
                             code="upstream_response_too_large") from None

    # ---------------------------------------------------------------- request planning
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
            self.metered(call, body)
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

    def params(self, call: Call, body: dict[str, Any]) -> str | None:
        """LLM_PARAMS, the one place they are applied (plan; native relay): the rule for the name the body serves
        (routed: the deployment's rule), applied to the body; returns that name."""
        served = body.get("model")
        served = served if isinstance(served, str) else None
        rule = self.settings.llm_params.rule_for(served) if self.settings.llm_params else None
        if rule is not None:
            apply_rule(body, rule)
            call.plan.body_changed = True
        return served

    def charges(self, call: Call, body: dict[str, Any]) -> bool:
        """May this deployment's answer cost money (its model priced above 0, or unpriced)? Then its spend is
        counted whoever asks: a self-hosted model priced 0 is not (nothing asked or read for it)."""
        source = self.price_source
        if source.costs_nothing:
            return False
        served = body.get("model")
        names = tuple(dict.fromkeys(n for n in (served, call.plan.model) if isinstance(n, str) and n))
        return source.charges(names, time.time())

    def metered(self, call: Call, body: dict[str, Any]) -> None:
        """A chat-door stream under a token budget, or one whose answer costs money: ask the upstream for usage
        (taken out again for a client that did not ask) and count the stream should none come
        (pipeline/stream_usage.py)."""
        plan = call.plan
        plan.meter = Meter(strip=not plan.include_usage)
        if not plan.include_usage:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            plan.include_usage = True
            plan.touch("stream_options")

    def prepare(self, call: Call) -> None:
        """The backend's preparation (model name, images; its own state), then the request adapted to what that
        model accepts."""
        plan = call.plan
        model = plan.body.get("model")
        plan.upstream_model = model if isinstance(model, str) else None  # the backend's prepare may resolve it
        prepared = self.backend.prepare(call)
        if isinstance(prepared, Prepared):
            self.prepared(call, prepared)
        else:  # a provider of before Prepared: its state
            plan.backend_state = prepared
        if plan.kind in ADAPTED_KINDS:
            self.adapt(call, plan.body, CHAT, plan.upstream_model or plan.model)

    @staticmethod
    def prepared(call: Call, prepared: Prepared) -> None:
        """What the backend decided, kept in the plan (the sequence writes the plan; the backend returns)."""
        plan = call.plan
        plan.backend_state = prepared.state
        if prepared.upstream_model is not None:
            plan.upstream_model = prepared.upstream_model
        if prepared.timeout is not None:
            plan.timeout = prepared.timeout
        if prepared.changed:
            plan.touch(*prepared.changed)
        if prepared.body_changed:
            plan.body_changed = True
        if prepared.adapted:
            plan.adapted.extend(prepared.adapted)

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

    # ---------------------------------------------------------------- the upstream
    def exchange(self, call: Call, req: UpstreamRequest, sending: Sending | None = None,
                 error: Callable[[Call, UpstreamResponse], ProxyError] | None = None) -> UpstreamResponse:
        """Send and classify the upstream's status: the one step every route takes to its upstream (an API call's
        deployment, native relay, a forwarded path, a backend's own route). An answer under 300 is the caller's;
        a redirect or an error becomes the ProxyError the client gets (the backend's reading of it, or `error`'s),
        secrets removed. `sending` says how the route differs (API_SENDING by default)."""
        sending = sending or API_SENDING
        out = call.outcome
        out.upstream_request, out.price_source = req, self.price_source
        resp = self.send(call, req, sending.retries_refused)
        if sending.taps:
            self.answers.tap_upstream(call, resp)
        status = resp.status_code
        out.upstream_response, out.upstream_at, out.upstream_status = resp, time.perf_counter(), status
        if status < 300 or (sending.relays_status and (status < 400 or call.client.method == "HEAD")):
            return resp
        with resp:  # sanitized: an upstream's error text may quote a key or a host
            err = self.answers.sanitized((error or self.backend.error)(call, resp) if status >= 400
                                         else redirect_error(resp))
        out.upstream_output = err.body()
        raise err

    def route_sender(self, call: Call) -> RouteSend:
        """The exchange a backend's own route sends with: send(req, error=None) -> an answer under 300."""
        return RouteSend(self, call)

    def send(self, call: Call, req: UpstreamRequest, retries_refused: bool = True) -> UpstreamResponse:
        """Send upstream (the client's trace context goes with it: the upstream client's to add, per attempt);
        with `retries_refused`, a 400 naming an optional parameter the request holds is sent once more without
        it, and a JSON schema refused as a type the server does not know is sent once more in the shape it
        takes."""
        budget = self.calls(call)
        resp = self.upstream.send(req, budget, call, call.plan.headers)
        out = call.outcome
        if (not retries_refused or resp.status_code not in REFUSALS or req.body is None or out.param_retry
                or not budget.left):
            return resp
        retry = _refused_again(req, resp)
        if retry is None:
            return resp
        out.param_retry = True  # once per request, whichever deployment refused
        req, change, member, value = retry
        resp.close()
        body = call.plan.body  # later askings (a stream asked again whole, another deployment) start from it
        if value is None:
            body.pop(member, None)
        else:
            body[member] = value
        call.plan.touch(member)
        call.plan.adapted.append(change)
        log.info("%s: the upstream refused the request; sent again with %s", call.client.request_id, change)
        out.upstream_request = req
        return self.upstream.send(req, budget, call, call.plan.headers)

    def calls(self, call: Call) -> CallBudget:
        """The upstream calls this client request may still cost (MAX_UPSTREAM_CALLS), over every retry,
        deployment and fallback (routing starts it before its first attempt)."""
        budget = call.outcome.calls
        if budget is None:
            budget = call.outcome.calls = CallBudget(self.settings.max_upstream_calls)
        return budget

    def decoded_stream(self, call: Call, resp: UpstreamResponse) -> Iterator[StreamItem]:
        """The upstream's stream as OpenAI chunks (raw SSE events or dicts) through the think transform, its
        first item read now (an error the upstream reports at once is an HTTP error), kept for journals."""
        resp.bounded = not call.plan.client_stream  # aggregated into one answer: at most MAX_RESPONSE_BYTES
        try:
            items = _peeked(self.backend.decode_stream(call, resp))
        except BaseException:
            resp.close()
            raise
        for apply in self.item_filters:
            items = apply(call, items)
        return items

    def decoded_whole(self, call: Call, resp: UpstreamResponse) -> dict[str, Any] | bytes:
        """The upstream's whole answer, decoded (at most MAX_RESPONSE_BYTES) and kept for journals. The think
        transform is the encoder's: the chat path's skips parsing a body that cannot hold a tag."""
        resp.bounded = True
        try:
            payload = self.backend.decode(call, resp)
        except READ_ERRORS as exc:
            raise stream_error(exc, resp.url, self.upstream.read_timeout) from None
        finally:
            resp.close()
        if self.answers.journal_bytes:
            call.outcome.upstream_output = payload
        if self.answers.reads_facts:
            self.answers.note_whole_facts(call, payload)
        return payload

    # ---------------------------------------------------------------- answers relayed as they come
    def relay_native(self, call: Call, front: FrontDoor, body: dict[str, Any], count_only: bool,
                     args: DoorArgs | None) -> Answer:
        """The upstream serves this front's API itself (FRONTS_PASSTHROUGH; a backend's native endpoint for a
        door's API): the guards, LLM_PARAMS and adaptation apply, the answer is relayed as it comes (no think
        transform or stream-mode conversion: the proxy does not parse it). The limit its reservation sends, no
        field bounding its answer, goes in the door's own field."""
        supply = self.admit(call, body, front, count_only, args)
        plan = call.plan
        if count_only:
            plan.kind = "count_tokens"
        served_allowed(self.settings.allowed_models, call)
        self.params(call, body)  # plan: LLM_PARAMS (no stream modes or think: the answer is not parsed)
        plan.body = body
        if supply is not None:
            plan.touch(*supplied(body, supply))
        plan.client_stream = body.get("stream") is True and not count_only
        self.adapt(call, body, front.native_shape or CHAT, self.backend.front_model(front.name, plan.model),
                   supply_limit=not count_only)
        prepared = self.backend.prepare_front(call, front.name, body, count_only)
        if prepared is not None:
            self.prepared(call, prepared)
        req = self.backend.front_request(call, front.name, body, count_only)  # encode
        resp = self.exchange(call, req, error=self.relayed_error)
        out = call.outcome
        secrets = self.answers.secrets
        headers = secrets.headers(response_headers(resp.headers, drop_encoding=True))
        out.status = resp.status_code
        chunks = self.first_read(resp, read_chunks(resp))
        # its usage counts against the key, or its answer costs money: read from the bytes as they pass (a token
        # count is free: its answer's input_tokens are what was counted, not used)
        if not count_only and (plan.team_key is not None or self.charges(call, body)):
            chunks = native_usage(chunks, self.usage_noter(call), body)
        return Answer(self.answers.relay(call, resp, chunks), resp.status_code, headers, direct_passthrough=True)

    def relayed_error(self, call: Call, resp: UpstreamResponse) -> ProxyError:
        """An upstream's error on a relayed API (native relay): its text as it came (secrets removed), its
        status, and the headers clients back off by."""
        text = sanitize_message(resp.content[:1 << 20].decode("utf-8", "replace"), self.answers.secrets.texts)
        return ProxyError(resp.status_code, text[:2000], code=f"upstream_{resp.status_code}", raw=text.encode(),
                          headers=error_headers(resp))

    def passthrough(self, call: Call, url: str, headers: dict[str, str], body: dict[str, Any] | None = None,
                    charge: Worst | None = None) -> Answer:
        """A forwarded route (its body already read into plan.raw_body): bytes up, bytes down. Charged to a key
        (`charged`): the usage its answer carries, else the estimate of `body` (the request, parsed) and of the
        texts answered; `charge`: what batch work is charged when it is accepted (the proxy never sees its
        answers: its reservation)."""
        out, answers = call.outcome, self.answers
        resp = self.exchange(call, UpstreamRequest(call.client.method, url, headers, call.plan.raw_body or None),
                             FORWARD_SENDING)
        secrets = answers.secrets
        out_headers = secrets.headers(response_headers(resp.headers, drop_encoding=False))
        out.status = resp.status_code
        if charge is not None and resp.status_code < 300:  # accepted batch work: charged what it reserved
            answers.note_usage(call, {"input_tokens": charge.input, "output_tokens": charge.output}, True)
        length = resp.headers.get("Content-Length")
        # A compressed body cannot be scanned for secrets as it is: it goes out decoded instead.
        decode = bool(secrets) and _encoded(resp)
        if decode:
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-encoding"]
        if call.client.method == "HEAD" or resp.status_code in (204, 304):
            resp.close()
            answers.observe(call)
            if call.client.method == "HEAD":  # an iterator of no pieces: a body of bytes or a list is measured
                if length is not None and length.isdigit() and not decode:  # what a GET would get, HEAD's point
                    out_headers = [*out_headers, ("Content-Length", length)]
                return Answer(iter(()), resp.status_code, out_headers)  # else unknown (decoded, never said): none
            return Answer(b"", resp.status_code, out_headers)
        # In one piece only as sent: a small compressed body can inflate a thousandfold (it streams instead).
        if not decode and length is not None and length.isdigit() and int(length) <= SMALL_BODY:
            with resp:
                try:
                    data = resp.raw.read(decode_content=False)
                except READ_ERRORS as exc:  # shorter than its Content-Length, or cut: nothing was sent yet
                    raise self.cut_short(resp, exc) from None
                data = answers.finished(call, data)
            if charged(call) and charge is None:  # its usage counts against the key (a whole answer: one read)
                for _ in native_usage((data,), self.usage_noter(call), body):
                    pass
            answers.observe(call)
            return Answer(data, resp.status_code, out_headers)
        chunks = self.first_read(resp, read_chunks(resp, decode=decode))
        if charged(call) and charge is None and (decode or not _encoded(resp)):  # its usage, read as it passes
            chunks = native_usage(chunks, self.usage_noter(call), body)
        return Answer(answers.relay(call, resp, chunks), resp.status_code, out_headers, direct_passthrough=True)

    def usage_noter(self, call: Call) -> Callable[[dict[str, int], bool], None]:
        """Where native_usage hands the usage it read from relayed bytes: the answer side's record of it."""
        note = self.answers.note_usage
        return lambda usage, estimated: note(call, usage, estimated)

    def first_read(self, resp: UpstreamResponse, body: Iterator[bytes]) -> Iterator[bytes]:
        """A relayed body with its first piece read now: a body cut before its first byte is a 502 of the door's
        own (the servers send a head only with the first body bytes, so nothing has gone out yet; relayed, the
        client got an empty reply). Cut later, the relay drops the client's connection (Answers.relay)."""
        try:
            first = next(body, b"")
        except READ_ERRORS as exc:
            resp.close()
            raise self.cut_short(resp, exc) from None
        return itertools.chain((first,), body) if first else body

    def cut_short(self, resp: UpstreamResponse, exc: Exception) -> ProxyError:
        """A body the upstream broke off before any of it went to the client: a 502 of the door's own."""
        return stream_error(exc, resp.url, self.upstream.read_timeout)


@dataclass(frozen=True)
class Sending:
    """How a route's exchange with its upstream differs from an API call's (the differences as data)."""
    retries_refused: bool = True  # a 400 naming an optional parameter is sent once more without it
    taps: bool = True  # journals hash the upstream's answer bytes as they are read
    relays_status: bool = False  # redirects, and a HEAD's errors, go to the client as they came


API_SENDING = Sending()  # an API call on its deployment; native relay
FORWARD_SENDING = Sending(retries_refused=False, taps=False, relays_status=True)  # a forwarded path: bytes as sent
ROUTE_SENDING = Sending(retries_refused=False)  # a backend's own route (ARGO's /v1/chat...): its body as built




class RouteSend:
    """pipeline/backend.py's Send: a backend's own route sends through the sequence's exchange (ROUTE_SENDING) and
    names the model it serves, which the sequence keeps in the plan."""

    __slots__ = ("gateway", "call")

    def __init__(self, gateway: Gateway, call: Call) -> None:
        self.gateway, self.call = gateway, call

    def __call__(self, req: UpstreamRequest, error: Callable[[Call, UpstreamResponse], ProxyError] | None = None
                 ) -> UpstreamResponse:
        return self.gateway.exchange(self.call, req, ROUTE_SENDING, error)

    def serves(self, model: str | None, upstream_model: str | None) -> None:
        plan = self.call.plan
        plan.model, plan.upstream_model = model, upstream_model


class CommitHeaders:
    """The headers of a stream committed early (keepalives while the upstream is slow), read at that moment:
    they name the deployment then in flight. Should it fail after that (routed), the one that serves is in the
    journal and the metrics; a header already sent cannot change (docs/routing.md)."""

    def __init__(self, call: Call, encoder: AnswerEncoder) -> None:
        self.call, self.encoder = call, encoder

    def __iter__(self) -> Iterator[tuple[str, str]]:
        out = self.call.outcome
        headers = self.encoder.stream_headers(self.call)
        if out.deployment is not None and out.served_header is not None:
            headers = [*headers, (SERVED_MODEL, out.served_header), (SERVED_BY, out.deployment)]
        return iter(headers)


# ---------------------------------------------------------------- helpers on parsed data
def counts_tokens(call: Call) -> bool:
    """Is this call's usage counted (key_limits' tpm; any team key: its usage rows charge every answer, a stream
    whose upstream sends no usage with the estimate of what it relayed)?"""
    limit = call.plan.key_limit
    return bool(limit is not None and limit.tpm) or call.plan.team_key is not None


# The most of an answer asked again whole for a streaming client (Gateway.ask_whole) read at once: what llama.cpp
# answers that way is a tool call or a short text; a stream's memory stays bounded whatever the upstream sends.
WHOLE_FOR_A_STREAM = 8 * 1024 * 1024

REFUSALS = (400, 422, 500)  # statuses a refused request comes back with (llama-cpp-python's validation: 500)


def _refused_again(req: UpstreamRequest, resp: UpstreamResponse) -> tuple[UpstreamRequest, str, str, Any] | None:
    """The request to send once more, what changed, and the member and its new value (None: left out): without
    the optional parameter a 400 names, or with a JSON schema in the shape the server takes; None when the
    refusal names nothing the proxy can change."""
    text = resp.content[:8192].decode("utf-8", "replace")
    if resp.status_code != 400 and TYPES_TAKEN not in text:  # a 422 or 500 is read for one refusal only
        return None
    body = try_json(req.body)
    if not isinstance(body, dict):
        return None
    param = refused_param(body, text) if resp.status_code == 400 else None
    if param is not None:
        del body[param]
        change, member, value = f"{param}=dropped", param, None
    else:
        fmt = schema_as_json_object(body, text)
        if fmt is None:
            return None
        body["response_format"] = fmt
        change, member, value = "response_format=json_object", "response_format", fmt
    return dataclasses.replace(req, body=dumps(body)), change, member, value


def charged(call: Call) -> bool:
    """Does a forwarded answer's usage count against the key (a team key; key_limits' tpm)? For a POST (a
    generation: a local server's own route, an image or a transcription), not for reading back an object that
    reports the usage of work done before (polling a batch, a stored response, a file's lines)."""
    return call.client.method == "POST" and counts_tokens(call)


def _encoded(resp: UpstreamResponse) -> bool:
    return resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")


def _peeked(items: Iterator[StreamItem]) -> Iterator[StreamItem]:
    """Read the first item now, so an error the upstream reports at once is an HTTP error, not an SSE event."""
    try:
        first = next(items)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), items)
