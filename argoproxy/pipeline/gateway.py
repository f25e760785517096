"""The one sequence for every request the proxy sends upstream, whichever door it came in by (its body read and
parsed by the door, serve/door.py, which picks the variant: `api`, or for a door `relay_native` or `count_tokens`,
or `forward` for a forwarded path):

    admit (the one guard, guard.py; what the limits read, request_reading.py) -> translate (a front door's
    request becomes the internal chat request; validate) -> dispatch (to this worker's one deployment, or
    through routing to one of several: the same `run`) -> plan (planning.py: LLM_PARAMS, stream modes, think;
    the backend's preparation; adaptation: a frozen Planned) -> send (exchange.py: encode, send, decode: an
    Exchanged) -> answer (answers.py: the door's answer encoder, chat_answers.py or fronts/serve.py, makes an
    Outgoing; filtered, relayed, observed). Each step is called once, handed the one before's value.

The variants take the same steps: native relay and a forwarded path are admitted, planned (LLM_PARAMS and
adaptation for the first, the limit its reservation sends for both), sent by the same exchange and answered by
the relay, unparsed. A Gateway is one deployment's view: its settings, backend and upstream. The worker's Gateway
also holds the routing (`models`), the key budgets and the team keys; a routed deployment's Gateway shares its
Answers."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from msgspec import structs

from argoproxy.config import provider_registry as providers
from argoproxy.config.routing_settings import ModelEntry, entry_url
from argoproxy.config.settings import Settings
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.meter import estimated_prompt, supplied
from argoproxy.pipeline import upstream_messages
from argoproxy.pipeline.answers import Answers
from argoproxy.pipeline.backend import Backend
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.capabilities import CapabilityTable
from argoproxy.pipeline.chat_answers import ChatAnswers
from argoproxy.pipeline.door_api import AnswerEncoder, DoorAnswers, DoorArgs, FrontDoor
from argoproxy.pipeline.exchange import FORWARD_SENDING, WHOLE_FOR_A_STREAM, DeploymentExchange, RouteSend
from argoproxy.pipeline.filters import item_filters
from argoproxy.pipeline.forwarded_body import forwarded_body
from argoproxy.pipeline.guard import Guard, plan_model, served_allowed
from argoproxy.pipeline.kept_alive import HeadersOf, streamed
from argoproxy.pipeline.planning import Planner
from argoproxy.pipeline.relay import Relay, charged
from argoproxy.pipeline.request_reading import RequestReading, listed_models
from argoproxy.pipeline.request_shape import validate
from argoproxy.pipeline.served import SERVED_BY, SERVED_MODEL, header_safe
from argoproxy.pipeline.upstream_count import UPSTREAM_COUNTS
from argoproxy.redaction import listing
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.local_server import asker
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, describe_host

if TYPE_CHECKING:
    from argoproxy.edge.model_readers import Reader
    from argoproxy.meter import Worst
    from argoproxy.pipeline.collaborators import Dispatcher, Limiter, ResponseKeeper, StoredResponses
    from argoproxy.teamkeys.service import TeamKeys

log = logging.getLogger("cot_proxy")

Supply = tuple[tuple[str, ...], int]  # the limit a reservation sends where no field bounds the answer
Listed = Callable[[Call, UpstreamResponse], Answer]  # the door's filter of an upstream's own model list
# How serve/build.py hands each deployment's sequence the doors' encoder (door_api.py's DoorAnswers): (the answer
# side, the upstream's read timeout, named in a stalled read's error) -> the encoder.
DoorAnswersFactory = Callable[[Answers, float], DoorAnswers]


class Gateway:
    def __init__(self, settings: Settings, backend: Backend, upstream: Upstream, door_answers: DoorAnswersFactory,
                 answers: Answers | None = None, *, routing: Callable[[Gateway], Dispatcher] | None = None,
                 limiter: Limiter | None = None, team_keys: TeamKeys | None = None,
                 stored: StoredResponses | None = None, guard: Guard | None = None,
                 spelled: tuple[tuple[str, Any], ...] = (), batches: tuple[tuple[str, Any], ...] = ()) -> None:
        """`guard`: the worker's (serve/build.py builds it with the doors' operator paths and auth's operator
        test; else one with none); `spelled`: how bodies in a door's own API say what they may generate, by path;
        `batches`: the doors' own batch routes (Front.batch_routes)."""
        self.settings, self.backend, self.upstream = settings, backend, upstream
        self.answers = answers = answers if answers is not None else Answers(settings)
        self.chat = ChatAnswers(answers, backend)  # the chat-completions door's encoder
        # the API doors' encoder (fronts/serve.py's FrontAnswers, handed by serve/build.py: no door imported here)
        self.door_answers = door_answers
        self.fronts = door_answers(answers, upstream.read_timeout)
        capabilities = CapabilityTable(settings.backend, settings.model_capabilities)
        # The worker's collaborators, handed by serve/build.py (None when not configured); a routed deployment's
        # view has none of them.
        self.limiter, self.team_keys, self.stored = limiter, team_keys, stored  # key_limits, team keys, state/
        self.guard = guard if guard is not None else Guard(settings, limiter, team_keys)  # the one guard
        base_url = entry_url(settings, ModelEntry("*", settings.backend))
        self.served_by = describe_host(base_url)  # X-Served-By
        # its models' prices (spend/pricer.py); a local server may say it is one (upstream/local_server.py)
        says_local = asker(base_url, settings.openai_api_key) if providers.get(settings.backend).local_servers else None
        self.price_source = answers.pricer.source(base_url, backend.priced_as if backend.names_vendor else None,
                                                  settings.self_hosted, says_local)
        self.planner = Planner(settings, backend, capabilities, self.price_source)
        filters = item_filters(answers.journal_bytes, answers.note_upstream_output,  # the stream's, in order
                               answers.note_facts if answers.reads_facts else None, answers.reads_content)
        whole_most = min(settings.max_response_bytes, WHOLE_FOR_A_STREAM)  # a stream's answer asked again whole
        self.exchange = DeploymentExchange(upstream, backend, answers, self.price_source, settings.max_upstream_calls,
                                           filters, whole_most)
        self.relay = Relay(answers, upstream.read_timeout)
        self.reading = RequestReading(settings, backend, upstream, capabilities,
                                      lambda: listed_models(self.routing, backend),
                                      routed=routing is not None, stored=stored, spelled=spelled,
                                      batches=batches, pricer=answers.pricer, serving=self.serving)
        # `models`: several deployments (argoproxy/routing/), built last: it makes a view of this Gateway for each
        self.routing: Dispatcher | None = routing(self) if routing is not None else None

    def for_deployment(self, backend: Backend, upstream: Upstream, settings: Settings) -> "Gateway":
        """One routed deployment's view: its own backend, upstream and settings; the same answer side."""
        return Gateway(settings, backend, upstream, self.door_answers, self.answers)

    def serving(self, model: str) -> list[tuple[Any, str]]:
        """Each deployment that may serve a model: its price source and its name for the model (routing: every
        one, so a budget holds the dearest)."""
        return self.routing.priced(model) if self.routing is not None else [(self.price_source, model)]

    def relays(self, front: FrontDoor, model: str | None) -> bool:
        """Does the upstream serve this door's API itself, its requests relayed as written (relay_native)?"""
        return self.routing is None and self.backend.native_front(front.name, model)

    def route_sender(self, call: Call) -> RouteSend:
        """The exchange a backend's own route sends with: send(req, error=None) -> an answer under 300."""
        return RouteSend(self.exchange, call)

    # ---------------------------------------------------------------- admit
    def api(self, call: Call, body: dict[str, Any], front: FrontDoor | None = None,
            args: DoorArgs | None = None) -> Answer:
        """Every API request the proxy serves by translating and sending it: chat/completions, completions,
        embeddings, and the API doors' (`front`: the door, argoproxy/fronts/; `args`: what its path says, such as a
        model and method named there), its body read and parsed by the door (serve/door.py)."""
        supply = self.admit(call, body, front, False, args)
        if front is None:
            return self.dispatch(call)
        if self.stored is not None and self.stored.serves(front):
            # stored responses: the history put before the input, the answer kept (argoproxy/state/)
            return self.stored.serve(call, body, lambda c, b, keeper: self.front_call(c, front, b, args, keeper,
                                                                                       supply))
        return self.front_call(call, front, body, args, supply=supply)

    def admit(self, call: Call, body: dict[str, Any], front: FrontDoor | None, count_only: bool,
              args: DoorArgs | None) -> Supply | None:
        """The one guard, its limits reading the request as its reservation does; returns the limit the
        reservation sends when no field bounds the answer (None: none)."""
        asked = self.guard.admit(call, plan_model, partial(self.reading.api, call, body, front, count_only, args),
                                 queued=self.routing is not None, supply_into=body if front is None else None,
                                 required=True, served_later=True)
        return asked.supply if asked is not None else None

    def front_call(self, call: Call, front: FrontDoor, body: dict[str, Any], args: DoorArgs | None,
                   keeper: ResponseKeeper | None = None, supply: Supply | None = None) -> Answer:
        """A front door's request translated, then served as the chat request it became (`supply`: the limit
        its reservation sends, no field bounding its answer)."""
        body = self.translate(call, front, body, False, args)
        if supply is not None:
            supplied(body, supply)
        if keeper is not None:
            if call.plan.exchange is not None:
                keeper.attach(call.plan.exchange)
            if keeper.quiet:  # no keepalive first: the upstream's context error stays an HTTP one, asked again
                call.outcome.kept_alive = True
        return self.dispatch(call)

    def translate(self, call: Call, front: FrontDoor, body: dict[str, Any], count_only: bool,
                  args: DoorArgs | None) -> dict[str, Any]:
        """A front door's request as the internal chat request; the call now serves the chat route (a new Plan:
        the route, the request it became, the headers its door lets go upstream, its exchange)."""
        chat, ex = front.to_chat(body, count_only, args)
        upstream_messages.join_turns(chat, answer_pieces=front.joins_answer_pieces)
        if ex.dropped:  # agents send tools only their own vendor runs (docs/decisions.md)
            log.warning("%s %s: left out what a chat backend cannot run: %s", front.name, call.client.request_id,
                        listing(ex.dropped))
        if count_only:
            call.plan = structs.replace(call.plan, kind="count_tokens")
            return chat
        if front.counts_prompt_first and ex.stream:
            ex.input_tokens = estimated_prompt(chat)  # its stream's start needs a count before usage arrives
        ex.chat = chat
        ex.keep = front.answer_budget(self.settings.max_sse_event_bytes, self.answers.journal_bytes)
        call.plan = structs.replace(call.plan, kind=ex.kind, path=ex.path, query="", body=chat, exchange=ex,
                                    headers=front.upstream_headers(call.plan.headers))
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
        served_allowed(self.settings.allowed_models, call.plan.model)
        if self.routing is not None:  # by a deployment that serves the model (a 404 for a model none serves)
            counted = self.routing.count(chat)
        else:
            counted = UPSTREAM_COUNTS.count(self.backend, chat)
        obj = front.count_answer(estimated_prompt(chat) if counted is None else counted)
        return self.answers.whole(call, obj, self.fronts.headers(call, [("Content-Type", "application/json")]))

    # ---------------------------------------------------------------- dispatch, plan
    def dispatch(self, call: Call) -> Answer:
        """To the deployment that serves: routing's choice among several (each answer names it), or this one, the
        shorthand for a one-entry list: its answers and errors name it the same way (X-Served-Model, the model
        asked for; X-Served-By, the upstream's host:port)."""
        if self.routing is not None:
            self.exchange.calls(call.outcome)  # MAX_UPSTREAM_CALLS over every attempt routing makes
            return self.routing.api(call)
        shown = serving(call, self.served_by, call.plan.model, call.plan.model or "")
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

    def attempt(self, call: Call, served_by: str, model: str, shown: str, renamed_to: str | None,
                request: dict[str, Any] | None) -> Answer:
        """One routed attempt on this deployment (routing's, through Sends), planned anew from the request
        (`request`: a retry's or fallback's, parsed again from the request's bytes), naming the model of its
        entry (a fallback's), then `run`; its answer says who served (X-Served-Model, X-Served-By)."""
        shown = serving(call, served_by, model, shown, renamed_to)
        answer = self.run(call, request, model)
        headers = answer.headers
        headers[SERVED_MODEL] = shown
        headers[SERVED_BY] = served_by
        return answer

    def run(self, call: Call, request: dict[str, Any] | None = None, model: str | None = None) -> Answer:
        """The request on this deployment (directly, or as routing's attempt), up to the client's first byte: its
        Planned (planning.py) on the call, for the backend's encoding, the exchange and the answer's encoder."""
        if call.plan.kind not in self.backend.kinds:
            raise ProxyError(404, f"The {self.backend.name} backend serving {call.plan.model} does not serve "
                             f"/{call.client.path}.", code="unknown_route")
        planned = call.planned = self.planner.plan(call, request, model)
        if planned.client_stream and self.settings.sse_keepalive > 0 and not call.outcome.kept_alive:
            return self.kept_alive(call, lambda: self.answer(call))  # routed: around all attempts instead
        return self.answer(call)

    # ---------------------------------------------------------------- send, answer
    def encoder(self, call: Call) -> AnswerEncoder:
        """The door's answer encoder, chosen by what the door translated."""
        return self.chat if call.plan.exchange is None else self.fronts

    def kept_alive(self, call: Call, produce: Callable[[], Answer], headers_of: HeadersOf | None = None) -> Answer:
        """A stream answered with SSE keepalives while `produce` waits on its upstream (pipeline/kept_alive.py):
        one deployment's answer, or routing's attempts over several; the one place this is wired."""
        call.outcome.kept_alive = True  # keepalives run for this stream now (routed: around all attempts)
        return streamed(call, produce, self.encoder(call), self.answers, self.settings.sse_keepalive, headers_of)

    def answer(self, call: Call) -> Answer:
        """Send (the exchange: encoded by the backend, sent, decoded), then answer (the door's encoder, the answer
        side's filters and observers): each step's result a value handed to the next."""
        exchanged = self.exchange.exchanged(call)
        return self.answers.delivered(call, self.encoder(call), exchanged)

    # ---------------------------------------------------------------- the variants answered as they come
    def relay_native(self, call: Call, front: FrontDoor, body: dict[str, Any], count_only: bool,
                     args: DoorArgs | None) -> Answer:
        """The upstream serves this front's API itself (FRONTS_PASSTHROUGH; a backend's native endpoint for a
        door's API): admitted and planned in the door's own shape (LLM_PARAMS, adaptation, the limit its
        reservation sends in the door's own field), sent, and relayed as it comes (the proxy does not parse it)."""
        supply = self.admit(call, body, front, count_only, args)
        if count_only:
            call.plan = structs.replace(call.plan, kind="count_tokens")
        served_allowed(self.settings.allowed_models, call.plan.model)
        call.planned = self.planner.native(call, front.name, body, count_only, front.native_shape, supply,
                                           front.withheld_params(call.plan.headers))
        req = self.backend.front_request(call, front.name, body, count_only)  # encode
        resp = self.exchange.response(call, req, error=self.relay.error)
        counted = not count_only and (call.plan.team_key is not None or self.planner.charges(call, body))
        return self.relay.native(call, resp, body, counted)

    def forward(self, call: Call, models: Reader, listed: Listed | None = None) -> Answer:
        """A forwarded path (its body read into plan.raw_body by the door), bytes up, bytes down: admitted (the
        models it names, `models`; its limits read its body or batch), the limit its reservation sends written
        into it, sent as it came, relayed; `listed`: the door's filter of the upstream's own model list."""
        asked = self.guard.admit(call, models, partial(self.reading.forwarded, call), forwarded=True)
        headers = self.backend.upstream_headers(call)
        url = self.backend.url(call.plan.path, call.plan.query)
        if listed is not None:
            req = UpstreamRequest("GET", url, headers, None, call.plan.timeout)
            return listed(call, self.exchange.response(call, req, FORWARD_SENDING))
        body: dict[str, Any] | None = None
        charge: Worst | None = None
        if charged(call):
            headers["Accept-Encoding"] = "identity"  # its usage is read from the answer's bytes
            body = forwarded_body(call)
            batch = self.reading.batches.lists_requests(call.client.method, call.plan.path)
            charge = asked.read_worst if batch and asked is not None else None
        req = UpstreamRequest(call.client.method, url, headers, call.plan.raw_body or None)
        return self.relay.forwarded(call, self.exchange.response(call, req, FORWARD_SENDING), body, charge)

    def passthrough(self, call: Call, url: str, headers: dict[str, str], body: dict[str, Any] | None = None,
                    charge: Worst | None = None) -> Answer:
        """A forwarded request the door has guarded itself (a model's detail), sent as it came (its body in
        plan.raw_body) and relayed (pipeline/relay.py); `body` and `charge` as `forward` reads them."""
        req = UpstreamRequest(call.client.method, url, headers, call.plan.raw_body or None)
        return self.relay.forwarded(call, self.exchange.response(call, req, FORWARD_SENDING), body, charge)


def serving(call: Call, served_by: str, model: str | None, shown: str, renamed_to: str | None = None) -> str:
    """The deployment about to serve, for journals, metrics and the X-Served-* headers (returned: the model as a
    header shows it); `renamed_to`: a fallback's answer names the model asked for."""
    out = call.outcome
    out.deployment, out.served_model, out.renamed_to = served_by, model, renamed_to
    out.served_header = shown = header_safe(shown)
    return shown
