"""A request's worst case, the meter's one answer to "what may this cost at most": what it reserves of a token
limit while it runs (team keys' --tpm and --budget, key_limits' tpm), what a dollar budget holds of it (priced:
dollars.py), its weight in the fair queue (routing/seating.py) and its trace's reservation. The most its upstream
may spend on it, read the way that upstream reads the request (docs/reservations.md):

- its input as count_tokens counts it: every prompt of /v1/completions, every input of /v1/embeddings, every
  request of a batch; and its parts that are not text (images, audio, files) by the rules of the model's family
  (media.py, families.py);
- plus, for each answer, the largest of the output-length fields the upstream honours (a backend kind's
  Reading: max_tokens, max_completion_tokens, llama.cpp's n_predict...; in a body relayed or forwarded in an API
  door's own shape, the fields its door declares: Spelled). Where no field bounds an answer: the
  limit the proxy supplies for the model itself (its capabilities), else the model's context as its server lists
  it, else DEFAULT_ANSWER_TOKENS, which the proxy then sends as the request's limit (`Worst.supply`) so that
  the upstream stops there;
- times every answer it asks for: n or best_of, each prompt of /v1/completions, a door's own multipliers.

A request whose worst case is more than a limit has left is refused before anything is sent (teamkeys/service.py,
admission/key_limits.py say so in the door's error shape).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, TypeGuard

from argoproxy.errors import ProxyError
from argoproxy.meter.families import DEFAULT_IMAGE_TOKENS, Family, family_of
from argoproxy.meter.media import Media, media_of
from argoproxy.meter.template_overhead import estimated_prompt
from argoproxy.meter.tokens import count_texts, request_texts

DEFAULT_ANSWER_TOKENS = 4096  # an answer no field bounds, of a model whose context is not known (docs/reservations.md)
MOST = 2**40  # any count past this is as good as unbounded (and keeps the arithmetic in int64 cells)
log = logging.getLogger("cot_proxy")


@dataclass(frozen=True)
class Reading:
    """How one backend kind reads an OpenAI chat or completions request: the output-length fields it honours, the
    fields that multiply its answers, and whether each prompt of /v1/completions is answered apart."""

    limits: tuple[str, ...]
    multipliers: tuple[str, ...]
    prompts_apart: bool


# Any OpenAI-compatible server: OpenAI (max_tokens, max_completion_tokens, n, best_of on completions), vLLM
# (max_completion_tokens before max_tokens, n, best_of), llama.cpp's server (n_predict before max_tokens), Ollama's
# and LM Studio's /v1: the proxy cannot tell them apart, so it reads every field any of them honours.
OPENAI = Reading(("max_tokens", "max_completion_tokens", "n_predict"), ("n", "best_of"), True)
# ARGO: max_tokens and max_completion_tokens go through; n other than 1 is refused; a list of prompts is one prompt.
ARGO = Reading(("max_tokens", "max_completion_tokens"), (), False)
# DashScope: max_tokens (max_completion_tokens is sent as it); n is not sent.
DASHSCOPE = Reading(("max_tokens", "max_completion_tokens"), (), False)


@dataclass(frozen=True)
class Spelled:
    """How an API's own body says what it may generate, as its door declares it (Front.spelled) for a body
    relayed or forwarded as it is: its output-length fields and multipliers, each a path in the body (where
    several are set, the largest counts), where the proxy sends a limit when none is set, whether the model's
    context stops its answers, whether it generates at all (an embedding does not). Its input is its texts."""

    limits: tuple[tuple[str, ...], ...] = ()
    multipliers: tuple[tuple[str, ...], ...] = ()
    supply: tuple[str, ...] | None = None
    context_bounds: bool = True
    generates: bool = True


class ModelBounds(Protocol):
    """What the proxy knows of a model's answers where no field bounds them (the Gateway)."""

    def supplied_limit(self, model: str | None) -> int | None:
        """The output limit the proxy sends for this model when a request sets none (its capabilities)."""

    def context(self, model: str | None) -> int | None:
        """The model's context in tokens as its server lists it; None: not known."""

    @property
    def image_tokens(self) -> int:
        """What an image counts for a model of no known family (METER_IMAGE_TOKENS)."""

    def most_cost(self, call: Any, input_tokens: int, output_tokens: int) -> int | None:
        """The most a call whose worst case is these tokens may cost, in nano-dollars, on whichever deployment may
        serve its model; None when one has no price for it (a dollar budget refuses it)."""


@dataclass(frozen=True)
class Worst:
    """A request's worst case: `input` tokens and at most `output` answered, read as `why` says."""

    input: int
    output: int
    why: str  # how the answers were read: "100 answers (n) of up to 10 tokens (max_tokens)"
    supply: tuple[tuple[str, ...], int] | None = None  # the limit the proxy sends: (path in the body, tokens)
    media: str = ""  # the parts that are not text, counted in `input`: "3 images, 1 document"
    media_tokens: int = 0

    @property
    def tokens(self) -> int:
        return max(1, min(self.input + self.output, MOST))

    def described(self) -> str:
        parts = f" ({self.media_tokens:,} of them for {self.media})" if self.media else ""
        return f"it may use up to {self.tokens:,} tokens: {self.input:,} of input{parts} and {self.why}"

    def with_media(self, media: Media) -> "Worst":
        if not media.kinds:
            return self
        return Worst(min(self.input + media.tokens, MOST), self.output, self.why, self.supply, media.described(),
                     media.tokens)


NOTHING = Worst(0, 0, "no answer")


class Asked:
    """A request as its reservation reads it, made by the route that serves it: `read()` gives (shape, body), the
    body as the upstream gets it (an API door's translation, a stored conversation's whole history, a forwarded
    body) and its shape (chat, completions, embeddings, forwarded, count, read, batch: its requests, or a door's
    Spelled). Read only when a token limit needs it, once (key_limits and a team key may both ask)."""

    __slots__ = ("read", "reading", "bounds", "model", "_worst", "_nanos")

    def __init__(self, read: Callable[[], tuple[Any, Any]], reading: Reading = OPENAI,
                 bounds: ModelBounds | None = None, model: str | None = None) -> None:
        self.read, self.reading, self.bounds, self.model = read, reading, bounds, model
        self._worst: Worst | None = None
        self._nanos: tuple[int | None] | None = None

    def worst(self) -> Worst:
        if self._worst is None:
            try:
                shape, body = self.read()
            except ProxyError:
                raise  # a body the door refuses: its error, as when it is served
            except Exception:  # noqa: BLE001 - a reservation never ends a request: the default is reserved
                log.exception("reservation: the request could not be read; the default is reserved")
                shape, body = "forwarded", None
            self._worst = worst_case(shape, body, self.reading, self.bounds, self.model)
        return self._worst

    def most_nanos(self, price: Callable[[Worst], "int | None"]) -> int | None:
        """The worst case in nano-dollars (None: unpriced), priced once (`price`: dollars.most_nanos on the
        deployments that may serve it): a team key's dollar budget and the trace read the same figure."""
        if self._nanos is None:
            self._nanos = (price(self.worst()),)
        return self._nanos[0]

    @property
    def read_nanos(self) -> int | None:
        """The worst case in nano-dollars, when a dollar budget priced it (None: not priced, or unpriced)."""
        return self._nanos[0] if self._nanos is not None else None

    @property
    def read_worst(self) -> Worst | None:
        """The worst case, when a limit read it (None: no limit needed it)."""
        return self._worst

    @property
    def supply(self) -> tuple[tuple[str, ...], int] | None:
        """The limit the proxy sends (no field bounded the answer), once a limit read the request; else None."""
        return self._worst.supply if self._worst is not None else None


def reservation(asked: Asked | dict[str, Any] | None) -> int:
    """What `asked` reserves, in tokens (a bare body is read as a chat request to an OpenAI-compatible server)."""
    return worst_of(asked).tokens


def worst_of(asked: Asked | dict[str, Any] | None) -> Worst:
    if isinstance(asked, Asked):
        return asked.worst()
    return worst_case("chat" if isinstance(asked, dict) else "forwarded", asked)


# ---------------------------------------------------------------- shapes
def worst_case(shape: "str | Spelled", body: Any, reading: Reading = OPENAI, bounds: ModelBounds | None = None,
               model: str | None = None) -> Worst:
    """The worst case of a body in one shape (see Asked); a batch's body: its requests, (shape, body) each."""
    if shape == "batch":
        return batch_worst(body, reading, bounds)
    if shape == "read":
        return Worst(0, 0, "nothing answered (a read, an upload or a cancel)")
    if not isinstance(body, dict):
        return Worst(0, DEFAULT_ANSWER_TOKENS, f"up to {DEFAULT_ANSWER_TOKENS:,} answered (a body the proxy does "
                                               "not read)")
    models = _Models(bounds, body.get("model") if isinstance(body.get("model"), str) else model)
    if isinstance(shape, Spelled):
        return _spelled(shape, body, models)
    return SHAPES.get(shape, _forwarded)(body, reading, models)


class _Models:
    """The bounds of the model a body names (asked once each, only where no field bounds the answer)."""

    __slots__ = ("bounds", "model")

    def __init__(self, bounds: ModelBounds | None, model: str | None) -> None:
        self.bounds, self.model = bounds, model

    def media(self, body: Any) -> Media:
        """The body's parts that are not text, by the rules of its model's family."""
        unknown = getattr(self.bounds, "image_tokens", DEFAULT_IMAGE_TOKENS) if self.bounds is not None \
            else DEFAULT_IMAGE_TOKENS
        return media_of(body, family_of(self.model, unknown))

    def unbounded(self, input_tokens: int, supply: tuple[str, ...] | None) -> tuple[int, str, Any]:
        """(each answer's most, what bounds it, the limit to send) for answers no field bounds: the limit the proxy
        supplies for the model, else its context less the input, else the default, sent as the limit."""
        if self.bounds is not None:
            supplied = self.bounds.supplied_limit(self.model)
            if supplied is not None:
                return supplied, "the limit the proxy sends for this model", None
            context = self.bounds.context(self.model)
            if context is not None:
                return max(context - input_tokens, 1), f"the model's context of {context:,}", None
        if supply is None:
            return DEFAULT_ANSWER_TOKENS, "no limit set", None
        return DEFAULT_ANSWER_TOKENS, "no limit set: the proxy sends " + ".".join(supply), \
            (supply, DEFAULT_ANSWER_TOKENS)


def _chat(body: dict[str, Any], reading: Reading, models: _Models) -> Worst:
    """An OpenAI chat request (also what an API door makes of its own)."""
    counted = estimated_prompt(body)
    return _answers(body, counted, reading, models, 1, "", ("max_tokens",)).with_media(models.media(body))


def _completions(body: dict[str, Any], reading: Reading, models: _Models) -> Worst:
    """/v1/completions (and llama.cpp's /completion): each prompt answered apart where the backend does."""
    prompts = _prompts(body.get("prompt"))
    counted = sum(_input_tokens(p) for p in prompts) + _input_tokens(body.get("suffix"))
    apart = len(prompts) if reading.prompts_apart and len(prompts) > 1 else 1
    return _answers(body, counted, reading, models, apart, f"{apart} prompts" if apart > 1 else "", ("max_tokens",))


def _embeddings(body: dict[str, Any], reading: Reading, models: _Models) -> Worst:
    """/v1/embeddings: every input's tokens, nothing answered."""
    return Worst(sum(_input_tokens(i) for i in _prompts(body.get("input"))), 0, "no answer (embeddings)")


def _answers(body: dict[str, Any], counted: int, reading: Reading, models: _Models, times: int, why_times: str,
             supply: tuple[str, ...] | None) -> Worst:
    """Answers of an OpenAI-shaped body: the largest limit field times the largest multiplier (and `times`)."""
    each, bound = _largest(body, reading.limits)
    many, by = _largest(body, reading.multipliers)
    answers = min(times * (many or 1), MOST)
    named = ", ".join(w for w in (why_times, f"{by}={many}" if many and many > 1 else "") if w)
    if "n_predict" in reading.limits and no_limit(body.get("n_predict")):
        return _unlimited(counted, each, bound, answers, named, models, supply)
    return _worst(counted, each, bound, answers, named, models, supply)


def _unlimited(counted: int, each: int | None, bound: str, answers: int, named: str, models: _Models,
               supply: tuple[str, ...] | None) -> Worst:
    """A negative n_predict: llama.cpp's server reads it before max_tokens and stops only at the end of its
    context, so the answer is read as if no field bounded it (the model's bound, else the default) unless another
    field is larger, and that most is always sent, n_predict included (`supplied`)."""
    fallback, why, sent = models.unbounded(counted, supply)
    if each is None or fallback > each:
        each, bound = fallback, "n_predict below 0 is no limit: " + ("the proxy sends n_predict" if sent else why)
    else:
        bound = f"{bound}={each:,}"
    worst = _described(counted, each, bound, answers, named, None)
    return worst if supply is None else Worst(worst.input, worst.output, worst.why, (supply, each))


def _worst(counted: int, each: int | None, bound: str, answers: int, named: str, models: _Models,
           supply: tuple[str, ...] | None) -> Worst:
    extra = None
    if each is None:
        each, bound, extra = models.unbounded(counted, supply)
    else:
        bound = f"{bound}={each:,}"
    return _described(counted, each, bound, answers, named, extra)


def _described(counted: int, each: int, bound: str, answers: int, named: str,
               extra: tuple[tuple[str, ...], int] | None) -> Worst:
    output = min(each * answers, MOST)
    if answers > 1:
        why = f"{answers:,} answers ({named}) of up to {each:,} tokens ({bound})"
    else:
        why = f"up to {each:,} answered ({bound})"
    return Worst(counted, output, why, extra)


def _spelled(spelled: "Spelled", body: dict[str, Any], models: _Models) -> Worst:
    """A body in an API door's own shape, relayed or forwarded as it is: read as its door says (Spelled)."""
    counted = count_texts(request_texts(body))
    if not spelled.generates:
        return Worst(counted, 0, "no answer (embeddings)")
    each, bound = _largest_at(body, spelled.limits)
    many, by = _largest_at(body, spelled.multipliers)
    answers = many or 1
    return _worst(counted, each, bound, answers, f"{by}={many}" if answers > 1 else "",
                  models if spelled.context_bounds else _Models(None, None),
                  spelled.supply).with_media(models.media(body))


def _forwarded(body: dict[str, Any], reading: Reading, models: _Models) -> Worst:
    """A forwarded body the proxy knows no shape of: every string counted, any OpenAI-compatible limit read
    (unbounded: the default, which the proxy cannot send in a shape it does not know)."""
    each, bound = _largest(body, reading.limits)
    many, by = _largest(body, reading.multipliers)
    answers = many or 1
    if each is None:
        each, bound = DEFAULT_ANSWER_TOKENS, "no limit the proxy reads"
    else:
        bound = f"{bound}={each:,}"
    why = (f"{answers:,} answers ({by}={many}) of up to {each:,} tokens ({bound})" if answers > 1
           else f"up to {each:,} answered ({bound})")
    return Worst(count_texts(_strings(body)), min(each * answers, MOST), why).with_media(models.media(body))


def batch_worst(requests: Iterable[tuple["str | Spelled", Any]], reading: Reading = OPENAI,
                bounds: ModelBounds | None = None) -> Worst:
    """A batch: the sum of its requests' worst cases, each (shape, body) as its line's url says."""
    inputs = outputs = lines = 0
    supplied = False
    for shape, body in requests:
        one = worst_case(shape, body, reading, bounds)
        inputs, outputs, lines = inputs + one.input, min(outputs + one.output, MOST), lines + 1
        supplied |= one.supply is not None
    why = f"up to {outputs:,} answered by its {lines:,} requests"
    if supplied:
        why += f" (the default {DEFAULT_ANSWER_TOKENS:,} for each that sets no limit)"
    return Worst(inputs, outputs, why)


def _count_only(body: dict[str, Any], reading: Reading, models: _Models) -> Worst:
    """count_tokens and countTokens: nothing is generated."""
    return Worst(0, 0, "nothing answered (a count)")


SHAPES: dict[str, Callable[[dict[str, Any], Reading, _Models], Worst]] = {
    "chat": _chat, "completions": _completions, "embeddings": _embeddings, "forwarded": _forwarded,
    "count": _count_only}
# The shape of an API's path (after /v1/ or a server's own prefix), as a batch line or a forwarded path names it.
PATH_SHAPES = {"chat/completions": "chat", "completions": "completions", "completion": "completions",
               "infill": "completions", "embeddings": "embeddings"}


# POSTs that store or stop and generate nothing: an upload (a batch file's lines are reserved when the batch is
# made of it), Ollama's blob, the cancel of work already admitted. Only these, spelled exactly as the APIs spell
# them (servers route by exact path): a path an operator adds to MODEL_FREE_PATHS may still make the upstream's
# default model generate.
STORED_NOT_GENERATED = re.compile(r"(?:openai/)?(?:v1/)?(?:files|uploads(?:/[^/]+(?:/parts|/complete|/cancel)?)?"
                                  r"|(?:batches|responses|fine_tuning/jobs|messages/batches|threads/[^/]+/runs)"
                                  r"/[^/]+/cancel)|api/blobs/[^/]+")


def shape_of(path: str) -> str:
    """The shape of a body sent to `path` ("v1/chat/completions", "/api/chat", an Azure OpenAI path...)."""
    if STORED_NOT_GENERATED.fullmatch(path.strip("/")):
        return "read"
    lowered = path.strip("/").lower()
    for prefix in ("openai/v1/", "openai/", "v1/"):
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix):]
            break
    if lowered.startswith("deployments/") and lowered.count("/") >= 2:  # Azure OpenAI's, after openai/
        lowered = lowered.split("/", 2)[2]
    return PATH_SHAPES.get(lowered, "forwarded")


# ---------------------------------------------------------------- fields
def no_limit(value: Any) -> bool:
    """llama.cpp's n_predict for no limit at all: -1, or any negative number."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value < 0


def _count(value: Any) -> TypeGuard[float]:
    """A positive count as a server reads one: an int, or a whole float (JSON's 100.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 1 and (isinstance(value, int) or value.is_integer())


def _largest(body: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[int | None, str]:
    """The largest positive count among `fields` (where fields conflict, the largest counts) and its field."""
    best: int | None = None
    named = ""
    for name in fields:
        value = body.get(name)
        if _count(value) and (best is None or value > best):
            best, named = min(int(value), MOST), name
    return best, named


def _largest_at(body: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> tuple[int | None, str]:
    """`_largest` over fields that may sit inside members (Ollama's options.num_predict)."""
    found: dict[str, Any] = {}
    for path in paths:
        holder: Any = body
        for name in path[:-1]:
            holder = holder.get(name) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            found[".".join(path)] = holder.get(path[-1])
    return _largest(found, tuple(found))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _prompts(value: Any) -> list[Any]:
    """The prompts of a `prompt` or `input`: a string, one list of token ids, or a list of either."""
    if value is None or value == "":
        return []
    if isinstance(value, list) and value and not all(isinstance(t, int) for t in value):
        return value
    return [value]


def _input_tokens(prompt: Any) -> int:
    """One prompt's tokens: a string counted, a list of token ids by its length."""
    if isinstance(prompt, str):
        return count_texts([prompt])
    if isinstance(prompt, list):
        return len(prompt)
    return 0


def _strings(body: dict[str, Any]) -> list[str]:
    """Every string in a parsed body (its size already bounded at the edge: MAX_VALUES)."""
    found: list[str] = []
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def supplied(body: dict[str, Any], supply: tuple[tuple[str, ...], int]) -> tuple[str, ...]:
    """Set the limit the proxy sends where a body sets none (`supply`: its path and tokens); the top-level members
    it changed (none: nothing set). A negative n_predict beside max_tokens takes the limit too: llama.cpp's
    server reads n_predict first, and a negative one there is no limit at all."""
    path, tokens = supply
    changed: tuple[str, ...] = (path[0],) if _set_limit(body, path, tokens) else ()
    if path == ("max_tokens",) and no_limit(body.get("n_predict")):
        body["n_predict"] = tokens
        changed += ("n_predict",)
    return changed


def _set_limit(body: dict[str, Any], path: tuple[str, ...], tokens: int) -> bool:
    holder = body
    for name in path[:-1]:
        inner = holder.get(name)
        if inner is None:
            inner = holder[name] = {}
        if not isinstance(inner, dict):
            return False
        holder = inner
    if holder.get(path[-1]) is not None and _count(holder.get(path[-1])):
        return False
    holder[path[-1]] = tokens
    return True
