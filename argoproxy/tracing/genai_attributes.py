"""A call in the names of OpenTelemetry's GenAI semantic conventions (gen_ai.*), for tracing's spans
(tracing/tracer.py): what was asked (the operation, the model, the request's parameters), what answered (the
provider, the model, the answer's id and finish reasons, the tokens used) and, only when TRACING_CONTENT is on, the
messages themselves. Pure: a call's parts in, a dict of attributes out; imports no OpenTelemetry.
"""

from __future__ import annotations

from typing import Any

from argoproxy.jsonfast import dumps
from argoproxy.meter import Used
from argoproxy.pipeline.answer_facts import CONTENT_CHARS, TEXT_MOST, AnswerFacts

# gen_ai.operation.name by the kind of call served (a front door's request is a chat request by then).
OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}

# gen_ai.provider.name by backend: the conventions' well-known value where one fits (every server the openai
# backend talks to speaks OpenAI's API), the backend's own name where none does (ARGO; DashScope, Alibaba Cloud's).
PROVIDERS = {"openai": "openai"}

# Request members -> (attribute, whether a value of the member is one of the attribute's type). The answer's
# limit has a spelling per server: max_completion_tokens wins over max_tokens (the upstreams' own rule).
_NUMBER = (int, float)
_INT64 = (-2 ** 63, 2 ** 63 - 1)  # what an OTLP int attribute holds
REQUEST = {"temperature": ("gen_ai.request.temperature", _NUMBER), "top_p": ("gen_ai.request.top_p", _NUMBER),
           "top_k": ("gen_ai.request.top_k", _NUMBER),
           "frequency_penalty": ("gen_ai.request.frequency_penalty", _NUMBER),
           "presence_penalty": ("gen_ai.request.presence_penalty", _NUMBER),
           "max_tokens": ("gen_ai.request.max_tokens", (int,)), "max_output_tokens": ("gen_ai.request.max_tokens", (int,)),
           "n_predict": ("gen_ai.request.max_tokens", (int,)), "seed": ("gen_ai.request.seed", (int,)),
           "stream": ("gen_ai.request.stream", (bool,)),
           "dimensions": ("gen_ai.embeddings.dimension.count", (int,))}
# A client's strings (a model's name, stop sequences) reached a span as they came: a request of megabytes made spans
# of megabytes, held until exported and then refused whole by a collector, other requests' spans with them. A span
# keeps TEXT_MOST characters of each (answer_facts: of an answer's id and model too), and this many stop sequences.
STOPS_MOST = 16


def provider_name(backend: str) -> str:
    return PROVIDERS.get(backend, backend)


def operation(kind: str) -> str | None:
    return OPERATIONS.get(kind)


def span_name(kind: str, model: str | None, method: str, path: str) -> str:
    """`{operation} {model}` as the conventions name a GenAI span; else the HTTP method and the route served."""
    op = OPERATIONS.get(kind)
    if op is not None:
        return f"{op} {bounded(model)}" if model else op
    return f"{method} {kind}"


def bounded(text: str) -> str:
    """A client's string as a span keeps it: its first TEXT_MOST characters."""
    return text if len(text) <= TEXT_MOST else text[:TEXT_MOST]


def request_attributes(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    add_request_attributes(body, out)
    return out


def request_parameters(body: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The request's parameters as (attribute, value) pairs: a few values, met again and again, which the fast
    path's encoder writes once per set (each attribute has one type: a pair equal to another is written alike)."""
    out: dict[str, Any] = {}
    add_request_attributes(body, out)
    return tuple(out.items()) if out else ()


def add_request_attributes(body: dict[str, Any], out: dict[str, Any]) -> None:
    """The request's parameters (what was sent upstream: after LLM_PARAMS and adaptation), read member by member
    of the body (a few), not attribute by attribute, into `out`. The conventions' doubles (temperature, top_p,
    top_k, the penalties) are floats whether the client wrote 1 or 1.0 (and 0.0 for -0.0); an int past int64,
    which OTLP cannot carry, is left out (the fast path's encoder wrapped it round; the SDK's drops it with a
    traceback in the log)."""
    for member, value in body.items():
        known = READ.get(member)
        if known is None:
            continue
        if known.__class__ is not tuple:
            known(value, out)  # a member with a rule of its own
            continue
        attribute, types = known
        kind = type(value)
        if kind in types:
            if kind is int:
                if not _INT64[0] <= value <= _INT64[1]:
                    continue
                if types is _NUMBER:
                    value = float(value)
            elif kind is float:
                value += 0.0  # -0.0 as 0.0: equal to it, so the fast path's encoder writes their sets as one
            out[attribute] = value
    limit = body.get("max_completion_tokens")
    if type(limit) is int and _INT64[0] <= limit <= _INT64[1]:
        out["gen_ai.request.max_tokens"] = limit


def _stop_sequences(value: Any, out: dict[str, Any]) -> None:
    stops = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if stops and all(isinstance(s, str) for s in stops):
        out["gen_ai.request.stop_sequences"] = tuple(bounded(s) for s in stops[:STOPS_MOST])


def _choice_count(value: Any, out: dict[str, Any]) -> None:
    if type(value) is int and value != 1 and _INT64[0] <= value <= _INT64[1]:
        out["gen_ai.request.choice.count"] = value


def _encoding_formats(value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, str):
        out["gen_ai.request.encoding_formats"] = (bounded(value),)


# Every member read: (attribute, types) or, for a member with a rule of its own, the function that reads it; one
# look-up for a member that is not read (the messages...).
READ: dict[str, Any] = {**REQUEST, "stop": _stop_sequences, "n": _choice_count, "encoding_format": _encoding_formats}


class Answered:
    """What answered a call, on its SERVER span and its last CLIENT span: the answer's id (its own), what repeats
    from answer to answer (the model, the finish reasons, the flag of counts the proxy estimated: pairs the fast
    path's encoder writes once per set) and the token counts (pairs of ints, written as they come)."""

    __slots__ = ("id", "described", "counts")

    def __init__(self, id: str | None, described: tuple[tuple[str, Any], ...],
                 counts: tuple[tuple[str, int], ...]) -> None:
        self.id, self.described, self.counts = id, described, counts

    def attributes(self) -> dict[str, Any]:
        """As the SDK's span holds them: in the order the fast path's encoder writes them."""
        out: dict[str, Any] = {} if self.id is None else {"gen_ai.response.id": self.id}
        out.update(self.described)
        out.update(self.counts)
        return out


def answered(facts: AnswerFacts | None, usage: Any, estimated: bool = False, used: Used | None = None) -> Answered:
    """What answered: the answer's id, model and finish reasons, and the tokens used (`estimated`: counted by the
    proxy, none came): the meter's reading of the answer (`used`, argoproxy/meter/used.py) where there is one, as
    the usage rows, /metrics and the status page take it; else read from `usage`."""
    answer_id, pairs = (None, ()) if facts is None else (facts.id, described(facts.model, facts.finish_reasons))
    if estimated:
        pairs += _ESTIMATED
    if used is not None:
        return Answered(answer_id, pairs, used_counts(used))
    if usage.__class__ is dict:
        common = common_counts(usage)
        if common is not None:
            return Answered(answer_id, pairs, ((_INPUT, common[0]), (_OUTPUT, common[1])))
        return Answered(answer_id, pairs, tuple(usage_attributes(usage).items()))
    return Answered(answer_id, pairs, ())


def described(model: str | None, reasons: list[str]) -> tuple[tuple[str, Any], ...]:
    """The answering model and its finish reasons (a tuple: the pair's set is kept), as pairs."""
    if reasons:
        if model is not None:
            return (_MODEL, model), (_REASONS, tuple(reasons))
        return ((_REASONS, tuple(reasons)),)
    return () if model is None else ((_MODEL, model),)


def common_counts(usage: dict[str, Any]) -> tuple[int, int] | None:
    """The tokens in and out of usage in its common shape (OpenAI's three counts, no details), else None."""
    if len(usage) == 3 and "total_tokens" in usage:
        prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if prompt.__class__ is int and output.__class__ is int and 0 <= prompt <= _INT64[1] \
                and 0 <= output <= _INT64[1]:
            return prompt, output
    return None


def used_counts(used: Used) -> tuple[tuple[str, int], ...]:
    """The meter's reading as the GenAI conventions' usage attributes (a part only where it is not 0)."""
    counts: tuple[tuple[str, int], ...] = ((_INPUT, used.input), (_OUTPUT, used.output))
    if used.cached or used.cache_written or used.reasoning:
        counts += tuple((name, value) for name, value in (
            ("gen_ai.usage.cache_read.input_tokens", used.cached),
            ("gen_ai.usage.cache_creation.input_tokens", used.cache_written),
            ("gen_ai.usage.reasoning.output_tokens", used.reasoning)) if value)
    return counts


_MODEL, _REASONS = "gen_ai.response.model", "gen_ai.response.finish_reasons"
_INPUT, _OUTPUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
_ESTIMATED = (("cot_proxy.usage.estimated", True),)


def usage_attributes(usage: Any) -> dict[str, Any]:
    """Tokens in and out, in OpenAI's names or Anthropic's and the Responses API's. Input counts every prompt token,
    cached ones included (Anthropic reports cache reads and writes beside its input_tokens)."""
    if not isinstance(usage, dict):
        return {}
    out: dict[str, Any] = {}
    openai = "prompt_tokens" in usage  # OpenAI's names (chat, completions, embeddings), else the others'
    prompt = _count(usage["prompt_tokens"] if openai else usage.get("input_tokens"))
    output = _count(usage["completion_tokens"] if "completion_tokens" in usage else usage.get("output_tokens"))
    cache_read = _count(usage.get("cache_read_input_tokens"))
    cache_write = _count(usage.get("cache_creation_input_tokens"))
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = _count(details.get("cached_tokens")) if details.__class__ is dict else None
    if prompt is not None:
        whole = prompt if openai else prompt + (cache_read or 0) + (cache_write or 0)
        if whole <= _INT64[1]:
            out["gen_ai.usage.input_tokens"] = whole
    if output is not None:
        out["gen_ai.usage.output_tokens"] = output
    if cached is not None or cache_read is not None:
        out["gen_ai.usage.cache_read.input_tokens"] = cached if cached is not None else cache_read
    if cache_write is not None:
        out["gen_ai.usage.cache_creation.input_tokens"] = cache_write
    done = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    reasoning = _count(done.get("reasoning_tokens")) if done.__class__ is dict else None
    if reasoning is not None:
        out["gen_ai.usage.reasoning.output_tokens"] = reasoning
    return out


def error_type(status: int, output: Any, client_left: bool = False) -> str | None:
    """error.type of a call that ended in an error: the error's code (or type) as the client got it, else the
    HTTP status; None for an answer."""
    if client_left:
        return "client_left"
    if status < 400:
        return None
    err = output.get("error") if isinstance(output, dict) else None
    if isinstance(err, dict):
        for key in ("code", "type"):
            if isinstance(err.get(key), str) and err[key]:
                return str(err[key])
    return str(status)


# ---------------------------------------------------------------- content (TRACING_CONTENT on)
def input_messages(body: dict[str, Any], kind: str) -> str | None:
    """gen_ai.input.messages: the request's messages in the conventions' shape (role, parts), JSON, at most
    CONTENT_CHARS of text; images and files named by their type only, never their data."""
    budget = [CONTENT_CHARS]
    if kind == "chat" and isinstance(body.get("messages"), list):
        messages = [_message(m, budget) for m in body["messages"] if isinstance(m, dict)]
    elif kind in ("completions", "embeddings"):
        given = body.get("prompt" if kind == "completions" else "input")
        texts = [given] if isinstance(given, str) else given if isinstance(given, list) else []
        messages = [{"role": "user", "parts": [_text_part(t, budget)]} for t in texts if isinstance(t, str)]
    else:
        return None
    return dumps(messages).decode()


def output_messages(facts: AnswerFacts | None) -> str | None:
    if facts is None or facts.output is None:
        return None
    return dumps(facts.output).decode()


def _message(message: dict[str, Any], budget: list[int]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append(_text_part(content, budget))
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(_text_part(part["text"], budget))
            elif isinstance(part, dict):
                parts.append({"type": str(part.get("type") or "unknown")})  # an image, audio or a file: its kind
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                          "arguments": _cut(function.get("arguments"), budget)})
    role = message.get("role") if isinstance(message.get("role"), str) else "user"
    if role == "tool":
        response = parts[0].get("content") if parts and "content" in parts[0] else None
        parts = [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": response}]
    return {"role": role, "parts": parts}


def _text_part(text: str, budget: list[int]) -> dict[str, Any]:
    return {"type": "text", "content": _cut(text, budget)}


def _cut(text: Any, budget: list[int]) -> Any:
    if not isinstance(text, str):
        return text
    kept = text[:max(0, budget[0])]
    budget[0] -= len(kept)
    return kept


def _count(value: Any) -> int | None:
    return value if type(value) is int and 0 <= value <= _INT64[1] else None
