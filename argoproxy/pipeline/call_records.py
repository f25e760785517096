"""What observers see of a call: two frozen records, never the live Plan and Outcome (as agentgateway's LLMInfo
holds an LLMRequest and an LLMResponse).

- CallStart: the call as it was asked, admitted and sent: the client's request, the route and model asked for,
  the model and stream mode sent, the key and team, the reservation, what admission holds. The sequence makes it
  as it sends (exchange.py: made again for a routed fallback or a stream asked again whole, so it is always the
  plan as sent) and hands it to the stream observers when the answer starts; a call answered without being sent
  has it made as it ends.
- CallEnd: what happened: statuses, usage and its one reading, cost, the answer (for the journals), bytes,
  timings, the deployment that served. Made once, when the call ends (answers.py's Answers.observe), and handed
  with the start to every observer.

Observers (argoproxy/observe/, tracing/, admission/, teamkeys/) take these records and keep what they need in
their own state; tests/unit/test_call_records.py holds that none of them reads the live call. The records are
msgspec Structs: made in C (a dataclass with as many fields cost 40 times as much to make, twice a request). Their
values are the call's own objects, not copies: the body as sent and the answer are read, never written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from argoproxy.meter import Used
    from argoproxy.spend import Cost
    from argoproxy.config.routing_settings import KeyLimit
    from argoproxy.meter import Asked
    from argoproxy.pipeline.answer_facts import AnswerFacts
    from argoproxy.pipeline.call import Call, ClientRequest, Held
    from argoproxy.teamkeys.records import KeyRecord
    from argoproxy.upstream.body_tap import BodyTap
    from argoproxy.upstream.wire import UpstreamRequest


class CallStart(msgspec.Struct, frozen=True):
    """The call as asked, admitted and sent."""
    client: ClientRequest  # the client's request as the door saw it (id, method, path, API, arrival, trace)
    kind: str  # the route served (a front door's request: chat)
    model: str | None  # as the client named it
    upstream_model: str | None  # as sent upstream
    client_stream: bool
    upstream_stream: bool
    raw_body: bytes  # the client's bytes
    body: dict[str, Any]  # parsed and planned: the request as sent (its parameters), on the API routes
    adapted: tuple[str, ...]  # X-Adapted-Params: what was changed to fit the model
    key_name: str | None  # the team key recognised, admitted or refused
    team_key: KeyRecord | None  # the team key admitted
    key_limit: KeyLimit | None  # the key_limits budget it counts against
    asked: Asked | None  # the request as the meter read it: the reservation
    limit_lease: Held | None  # what key_limits' admission holds until the call ends
    key_lease: object  # what the team key's admission holds until the call ends
    session: str = ""  # the agent session the request belongs to (edge/agent_sessions.py; "" for none)

    @property
    def request_id(self) -> str:
        return self.client.request_id

    @property
    def send_mode(self) -> str:
        return "stream" if self.upstream_stream else "non_stream"

    @property
    def return_mode(self) -> str:
        return "stream" if self.client_stream else "non_stream"


class CallEnd(msgspec.Struct, frozen=True):
    """What happened, as the call ended."""
    status: int
    upstream_request: UpstreamRequest | None  # the last request sent (its URL and body: journals, the DEBUG line)
    upstream_status: int | None
    upstream_at: float | None  # when the upstream's headers arrived (time.perf_counter)
    first_byte_at: float | None  # when the answer's first byte went to the client
    bytes_out: int
    usage: Any  # as the answer reported it (or the proxy's estimate)
    usage_estimated: bool  # no usage came: counted by the proxy
    used: Used | None  # the meter's one reading of the answer (tokens, cost) that every record takes
    cost: Cost | None  # what the call cost (None: no usage to price)
    output: Any  # the answer as the client got it (journals)
    output_tap: BodyTap | None  # journals: the answer bytes sent to the client
    upstream_output: Any  # the upstream's answer before the proxy's transforms (journals)
    upstream_tap: BodyTap | None  # journals: the upstream's answer bytes
    deployment: str | None  # the deployment that served, and the model it served
    served_model: str | None
    asked_whole: bool  # a stream that ended before its first event, asked again whole
    client_left: bool  # the client closed its connection before the answer's end
    refused: str | None  # an error the proxy answered: why (observe/refusals.py)
    facts: AnswerFacts | None  # TRACING on: what the upstream's answer said of itself
    upstream_calls: int | None  # the upstream calls it made (MAX_UPSTREAM_CALLS' count), once it made one
    relayed: bool  # its answer was relayed as it came: the stream observers were handed its start


def started(call: Call) -> CallStart:
    """The call's start record as its plan stands now, kept on the call (the sequence makes it as it sends)."""
    plan, planned = call.plan, call.planned
    record = call.start = CallStart(
        call.client, plan.kind, plan.model, planned.upstream_model, planned.client_stream, planned.upstream_stream,
        plan.raw_body, planned.body, planned.adapted, plan.key_name, plan.team_key,
        plan.key_limit, plan.asked, plan.limit_lease, plan.key_lease, call.client.session)
    return record


def start_of(call: Call) -> CallStart:
    """The call's start record: the one the sequence made as it sent, else one made now (a call not sent yet)."""
    record = call.start
    return record if isinstance(record, CallStart) else started(call)


def records(call: Call) -> tuple[CallStart, CallEnd]:
    """The call's two records as it ends, what every observer is handed (Answers.observe): its start, and its end."""
    return start_of(call), ended(call)


def ended(call: Call) -> CallEnd:
    """The call's end record, made once as it ends (Answers.observe)."""
    out = call.outcome
    calls = out.calls
    return CallEnd(
        out.status, out.upstream_request, out.upstream_status, out.upstream_at, out.first_byte_at, out.bytes_out,
        out.usage, out.usage_estimated, out.used, out.cost, out.output, out.output_tap, out.upstream_output,
        out.upstream_tap, out.deployment, out.served_model, out.asked_whole, out.client_left, out.refused, out.facts,
        calls.used if calls is not None else None, out.relayed)
