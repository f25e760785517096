"""Prometheus metrics: what is counted per finished request, and GET /metrics.

Under Gunicorn every worker is its own process, so the numbers must be summed across processes when
/metrics is scraped (whichever worker answers the scrape). prometheus_client's multiprocess mode does that:
each worker writes its values to small mmap files in PROMETHEUS_MULTIPROC_DIR, and a scrape merges them.
The Gunicorn master prepares that directory before forking (argoproxy/serve/gunicorn_hooks.py); without it (a bare
`flask run`, unit tests) the metrics live in an ordinary per-process registry.

Series (all names start with cot_proxy_):
  requests_total{front,route,model,status,deployment} every answered API request, including 4xx from the
                                                proxy; deployment: host:port that served it ("none": no upstream)
  request_duration_seconds{front,route,model}   arrival -> last byte sent (whole stream for streams)
  upstream_latency_seconds{route,model}         arrival -> upstream response headers (includes retries)
  time_to_first_token_seconds{front,route,model} streamed answers: arrival -> first byte sent to the client
  streams_in_flight                             SSE answers being streamed now (summed over live workers)
  request_bytes_total{route}, response_bytes_total{route}
  tokens_total{model,type}                      type = prompt | completion, from the upstream's usage
  admission_waiting{model}, admission_in_flight{deployment}, admission_limit{deployment}
                                                admission (docs/admission.md): requests waiting for a slot of a
                                                pool, requests sent to a deployment now and its limit (0: none), read
                                                from the cells the workers share when /metrics is scraped
  admission_wait_seconds{key}                   seconds a request waited for its slot (key: "none" when no key)
  admission_refusals_total{key,code}            requests refused by admission (queue_full, queue_timeout)
  refusals_total{cause,model,key}               every error answer by cause (argoproxy/observe/refusals.py: rate,
                                                budget, auth, model, request, upstream, proxy); key: the team
                                                key's name ("none": no team key)
  cost_usd_total{key,model}                     US dollars the answers cost at their models' prices (argoproxy/
                                                prices/); key: the team key's name (env:VARIABLE for key_limits,
                                                "none" without a key)
  unpriced_requests_total{model}                answers with usage whose model has no price: not in the cost
  team_requests_total{team,status}, team_tokens_total{team,type}, team_cost_usd_total{team},
  team_refusals_total{team,cause}               the same for each team of keys (`cot-proxy teams`), summed over
                                                its keys (a key counts for the team it is in when it asks)
  tool_calls_total{server,tool,outcome}, tool_call_seconds{server}, tool_call_request_bytes_total{server},
  tool_call_response_bytes_total{server}        MCP tool calls, registered by argoproxy/mcp/recording.py in
                                                `family_registry` (docs/mcp.md)

`front` is the API the client spoke: openai (chat completions, completions, embeddings and the other
OpenAI routes), responses or messages (argoproxy/fronts/); `route` is what ran inside (a Responses or
Messages request runs as `chat`; Messages token counts are `count_tokens`).

Labels never hold secrets, paths or client-chosen strings that were not accepted: `route` is the call
kind (chat, completions, embeddings, models, passthrough, ...), `model` is the client's model name only
once that model has answered successfully (or is on the allow-list), at most MODEL_LABEL_CAP names per
worker, else "other"; requests without a model get "none".

Cost per request: one observer call doing about ten mmap value updates through cached label children
(measured with timeit: ~40 us per request in multiprocess mode, ~20 us single-process); usage is read
without parsing the answer (pipeline.usage_of); merging the workers' files happens only when /metrics is
scraped (~4 ms per scrape with a handful of worker files).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator


from argoproxy.pipeline.call_records import CallEnd, CallStart
from argoproxy.edge.http_objects import Answer
from argoproxy.config.settings import Settings
from argoproxy.upstream.wire import describe_host
from argoproxy.config.listener import KEY_PREFIX
from argoproxy.edge.validation import model_allowed
from argoproxy.observe.refusals import refusal_cause
from argoproxy.meter import Used
from argoproxy.per_process import pid as own_pid

if TYPE_CHECKING:  # prometheus_client is imported where metrics are on
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.metrics_core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
VALUE_FILE_HEADER = 8  # a value file's used-length word and its padding (prometheus_client's mmap_dict)
MODEL_LABEL_CAP = 100
MODEL_LABEL_MAX_LEN = 100
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _value_class_for_environment() -> None:
    """prometheus_client picks its value class when it is first imported: in files when PROMETHEUS_MULTIPROC_DIR
    is set then, in memory otherwise. The Gunicorn master sets the directory before any import of it
    (serve/gunicorn_hooks.py); metrics built against the other choice would silently miss or double counts.

    In files, a value asks for its process's id at every update, to learn of a fork (about ten getpid system calls
    a request); its `process_identifier` is the library's seam for that: given per_process.pid, the id read once and
    again after a fork. Replaced once per process, before this process's first value: two value classes would each
    keep their own view of the same file (Metrics makes the worker's first values; nothing else makes one)."""
    global _pid_values
    from prometheus_client import values
    in_memory = values.ValueClass is values.MutexValue
    if in_memory == (multiprocess_dir() is not None):
        raise RuntimeError(f"prometheus_client was imported before {MULTIPROC_ENV} was set or unset: "
                           "set it before starting the process")
    if not in_memory and values.ValueClass is not _pid_values:
        made = values.MultiProcessValue  # untyped in prometheus_client
        values.ValueClass = _pid_values = made(process_identifier=own_pid)  # type: ignore[no-untyped-call]


_pid_values: Any = None  # prometheus_client's file-backed value class, given the cached pid


class Series:
    """The label children of one (front, route, model, status, deployment): what every answer updates; the
    model's token counters once it has usage (a series appears in /metrics once made)."""

    __slots__ = ("requests", "duration", "upstream_latency", "ttft", "bytes_in", "bytes_out", "tokens")

    def __init__(self, requests: Any, duration: Any, upstream_latency: Any, ttft: Any, bytes_in: Any,
                 bytes_out: Any) -> None:
        self.requests, self.duration, self.upstream_latency, self.ttft = requests, duration, upstream_latency, ttft
        self.bytes_in, self.bytes_out = bytes_in, bytes_out  # by route
        self.tokens: tuple[Any, Any] | None = None  # by model: prompt, completion


class Metrics:
    """The metric objects of one worker process, and the observer that feeds them."""

    def __init__(self, settings: Settings, model_cap: int = MODEL_LABEL_CAP) -> None:
        _value_class_for_environment()
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        self.multiprocess = multiprocess_dir() is not None
        # Multiprocess values live in files; a private registry otherwise (so a second app in the process is fine).
        self.registry = CollectorRegistry(auto_describe=True)
        reg = None if self.multiprocess else self.registry
        self.allowed = settings.allowed_models
        self.model_cap = model_cap
        self._models: set[str] = set()
        self.requests = Counter("cot_proxy_requests", "Requests answered, by front door, route, model, HTTP status "
                                "and deployment.", ["front", "route", "model", "status", "deployment"], registry=reg)
        # Without `models` every upstream call goes to the one target; routed calls name their deployment.
        self.default_deployment = "none" if settings.models else describe_host(settings.target_base_url)
        self.duration = Histogram("cot_proxy_request_duration_seconds",
                                  "Seconds from a request's arrival to its last byte sent.",
                                  ["front", "route", "model"], buckets=LATENCY_BUCKETS, registry=reg)
        self.upstream_latency = Histogram("cot_proxy_upstream_latency_seconds",
                                          "Seconds from a request's arrival to the upstream's response headers.",
                                          ["route", "model"], buckets=LATENCY_BUCKETS, registry=reg)
        self.ttft = Histogram("cot_proxy_time_to_first_token_seconds",
                              "Streamed answers: seconds from a request's arrival to the first byte sent.",
                              ["front", "route", "model"], buckets=TTFT_BUCKETS, registry=reg)
        self.streams = Gauge("cot_proxy_streams_in_flight", "Streamed answers in progress.",
                             multiprocess_mode="livesum", registry=reg)
        self.bytes_in = Counter("cot_proxy_request_bytes", "Request body bytes received from clients.",
                                ["route"], registry=reg)
        self.bytes_out = Counter("cot_proxy_response_bytes", "Response body bytes sent to clients.",
                                 ["route"], registry=reg)
        self.tokens = Counter("cot_proxy_tokens", "Tokens reported by the upstream's usage, by model and type.",
                              ["model", "type"], registry=reg)
        self.refusals = Counter("cot_proxy_refusals", "Error answers by cause (rate, budget, auth, model, request: "
                                "the proxy refused; upstream, proxy: a failure), model and team key.",
                                ["cause", "model", "key"], registry=reg)
        # Team keys by name (never the key): how many there are is the operator's choice, not a client's.
        self.key_requests = Counter("cot_proxy_key_requests", "Requests admitted per team key, by model and HTTP "
                                    "status.", ["key", "model", "status"], registry=reg)
        self.key_tokens = Counter("cot_proxy_key_tokens", "Tokens used per team key, by type.", ["key", "type"],
                                  registry=reg)
        self.team_requests = Counter("cot_proxy_team_requests", "Requests of a team's keys, by team and HTTP status.",
                                     ["team", "status"], registry=reg)
        self.team_tokens = Counter("cot_proxy_team_tokens", "Tokens used by a team's keys, by type.", ["team", "type"],
                                   registry=reg)
        self.team_cost = Counter("cot_proxy_team_cost_usd", "US dollars a team's keys' answers cost at their models' "
                                 "prices.", ["team"], registry=reg)
        self.team_refusals = Counter("cot_proxy_team_refusals", "Error answers to a team's keys, by cause (as "
                                     "cot_proxy_refusals_total).", ["team", "cause"], registry=reg)
        self.key_usage_dropped = Counter("cot_proxy_key_usage_dropped", "Team keys' usage rows dropped: the key "
                                         "store refused them past the rows kept for its return.", registry=reg)
        self.collectors: list[Any] = []  # read when scraped (admission's shared counts)
        self.cost = Counter("cot_proxy_cost_usd", "US dollars the answers cost at their models' prices, by key name "
                            "and model.", ["key", "model"], registry=reg)
        self.unpriced = Counter("cot_proxy_unpriced_requests", "Answers with usage whose model has no price (not in "
                                "cot_proxy_cost_usd_total).", ["model"], registry=reg)
        self._costs: dict[tuple[str, str], Any] = {}
        self._unpriced: dict[str, Any] = {}  # model -> its child of `unpriced` (labels() takes a lock and a tuple)
        # (front, route, model, status, deployment) -> the label children every answer updates (labels() takes a
        # lock and builds a tuple: one look-up a request instead)
        self._series: dict[tuple[str, str, str, int, str], Series] = {}

    def family_registry(self) -> Any:
        """Where a capability registers series of its own (argoproxy/mcp/recording.py's tool calls): this worker's
        registry, or None in multiprocess mode (prometheus_client's files, which every scrape merges)."""
        return None if self.multiprocess else self.registry

    # ------------------------------------------------------------ labels
    def model_label(self, start: CallStart, end: CallEnd) -> str:
        model = start.model
        if not model:
            return "none"
        if model in self._models:
            return model
        if len(self._models) >= self.model_cap or len(model) > MODEL_LABEL_MAX_LEN or KEY_PREFIX in model:
            return "other"  # a proxy-made key in a name is never a label
        if self.allowed:
            admitted = model_allowed(self.allowed, model)
        else:
            # A name the client made up is admitted only once an upstream answered it successfully
            # (or failed on its side): junk names rejected with 4xx never become series.
            admitted = 0 < end.status < 400 or (end.upstream_status or 0) >= 500
        if not admitted:
            return "other"
        self._models.add(model)
        return model

    # ------------------------------------------------------------ hooks
    def stream_started(self, start: CallStart) -> None:
        """The pipeline starts sending an answer as it comes (handed the call's start)."""
        if start.client_stream:
            self.streams.inc()

    def observe(self, start: CallStart, end: CallEnd) -> None:
        """A request finished (its last byte was sent, or it failed): update every series."""
        now = time.perf_counter()
        if end.relayed and start.client_stream:  # counted in by stream_started
            self.streams.dec()
        model = self.model_label(start, end)
        status = end.status
        key = (start.client.front, start.kind, model, status, end.deployment or self.default_deployment)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self.series(*key)
        series.requests.inc()
        if status >= 400:
            self._refused(start, end, model)
        began = start.client.started  # the request's duration, the upstream's latency, a stream's first byte
        series.duration.observe(now - began)
        if end.upstream_at is not None:
            series.upstream_latency.observe(end.upstream_at - began)
        if start.client_stream and end.first_byte_at is not None:
            series.ttft.observe(end.first_byte_at - began)
        if start.raw_body:
            series.bytes_in.inc(len(start.raw_body))
        if end.bytes_out:
            series.bytes_out.inc(end.bytes_out)
        self._spend(start, end, model, status, series)

    def series(self, front: str, route: str, model: str, status: int, deployment: str) -> Series:
        return Series(self.requests.labels(front, route, model, str(status), deployment),
                      self.duration.labels(front, route, model), self.upstream_latency.labels(route, model),
                      self.ttft.labels(front, route, model), self.bytes_in.labels(route), self.bytes_out.labels(route))

    def _refused(self, start: CallStart, end: CallEnd, model: str) -> None:
        """refusals_total (and the team's) for an error answer."""
        cause = refusal_cause(end)
        if cause is not None:
            self.refusals.labels(cause, model, start.key_name or "none").inc()
            req = start.client.request  # the key auth accepted (start.team_key: only once admitted)
            if req is not None and req.team_key is not None and req.team_key.team:
                self.team_refusals.labels(req.team_key.team, cause).inc()

    def _spend(self, start: CallStart, end: CallEnd, model: str, status: int, series: Series) -> None:
        """Tokens and cost: the key's and team's series, the cost's and the model's tokens."""
        used = end.used  # the meter's reading of the answer (argoproxy/meter/used.py), as every record takes it
        team_key = start.team_key
        if team_key is not None:
            self.observe_key(team_key.name, model, status, used)
            if team_key.team:
                self.observe_team(team_key.team, status, used, end.cost)
        if end.cost is not None and (end.cost.nanos or not end.cost.priced):  # free (self-hosted): nothing to add
            self.observe_cost(start, end, model)
        if used is None:
            return
        tokens = series.tokens
        if tokens is None:
            tokens = series.tokens = (self.tokens.labels(model, "prompt"), self.tokens.labels(model, "completion"))
        if used.input:
            tokens[0].inc(used.input)
        if used.output:
            tokens[1].inc(used.output)

    def observe_cost(self, start: CallStart, end: CallEnd, model: str) -> None:
        cost = end.cost
        assert cost is not None
        if not cost.priced:
            unpriced = self._unpriced.get(model)
            if unpriced is None:
                unpriced = self._unpriced[model] = self.unpriced.labels(model)
            unpriced.inc()
            return
        key = start.team_key.name if start.team_key is not None else \
            f"env:{start.key_limit.key_env}" if start.key_limit is not None else "none"
        counter = self._costs.get((key, model))
        if counter is None:
            counter = self._costs[(key, model)] = self.cost.labels(key, model)
        counter.inc(cost.dollars)

    def observe_key(self, name: str, model: str, status: int, used: Used | None) -> None:
        self.key_requests.labels(name, model, str(status)).inc()
        if used is not None:
            for kind, value in (("prompt", used.input), ("completion", used.output)):
                if value:
                    self.key_tokens.labels(name, kind).inc(value)

    def observe_team(self, team: str, status: int, used: Used | None, cost: Any) -> None:
        self.team_requests.labels(team, str(status)).inc()
        if used is not None:
            for kind, value in (("prompt", used.input), ("completion", used.output)):
                if value:
                    self.team_tokens.labels(team, kind).inc(value)
        if cost is not None and cost.priced and cost.nanos:
            self.team_cost.labels(team).inc(cost.dollars)

    def watch_admission(self, seating: Any) -> None:
        """Admission's series: waits and refusals counted here, queue and slots read from the shared cells."""
        from prometheus_client import Counter, Histogram
        reg = None if self.multiprocess else self.registry
        waits = Histogram("cot_proxy_admission_wait_seconds", "Seconds a request waited for a deployment's slot, "
                          "by key.", ["key"], buckets=LATENCY_BUCKETS, registry=reg)
        refused = Counter("cot_proxy_admission_refusals", "Requests admission refused (queue_full: the wait would "
                          "pass its bound; queue_timeout: it did), by key.", ["key", "code"], registry=reg)
        seating.on_wait.append(lambda key, seconds: waits.labels(key).observe(seconds))
        seating.on_refused.append(lambda key, code: refused.labels(key, code).inc())
        self.collectors.append(AdmissionGauges(seating))

    # ------------------------------------------------------------ exposition
    def exposition(self) -> tuple[bytes, str]:
        """The text format, merged over every worker process in multiprocess mode."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        path = multiprocess_dir() if self.multiprocess else None
        if path is not None:
            registry = CollectorRegistry()
            registry.register(SettledFiles(path))
        else:
            registry = self.registry
        for collector in self.collectors:
            registry.register(collector)
        try:
            return generate_latest(registry), CONTENT_TYPE_LATEST
        finally:
            for collector in self.collectors:
                registry.unregister(collector)

    def view(self) -> Answer:
        data, content_type = self.exposition()
        return Answer(data, 200, {"Cache-Control": "no-store"}, content_type=content_type)


class AdmissionGauges:
    """Queue depth, requests in flight and limits, as the workers' shared cells hold them now."""

    def __init__(self, seating: Any) -> None:
        self.seating = seating

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily
        waiting = GaugeMetricFamily("cot_proxy_admission_waiting", "Requests waiting for a slot, by model.",
                                    labels=["model"])
        in_flight = GaugeMetricFamily("cot_proxy_admission_in_flight", "Requests sent to a deployment now.",
                                      labels=["deployment"])
        limit = GaugeMetricFamily("cot_proxy_admission_limit", "A deployment's concurrency limit (0: none, -1: "
                                  "asked of its server, not known yet).", labels=["deployment"])
        queues: dict[str, int] = {}
        sent: dict[str, int] = {}
        limits: dict[str, int] = {}
        for row in self.seating.rows():  # two entries at one host:port are one server: summed
            queues[row["model"]] = row["waiting"]
            sent[row["served_by"]] = sent.get(row["served_by"], 0) + row["in_flight"]
            limits[row["served_by"]] = limits.get(row["served_by"], 0) + max(row["limit"], 0) or row["limit"]
        for family, values in ((waiting, queues), (in_flight, sent), (limit, limits)):
            for name, value in values.items():
                family.add_metric([name], value)
        yield from (waiting, in_flight, limit)


class SettledFiles:
    """The workers' value files in `path`, merged as prometheus_client's MultiProcessCollector merges them, less
    the files another worker is creating this instant. A worker's first value of a series creates its file
    empty and then sizes it; read in between, prometheus_client fails on the empty header (struct.error) and
    the scrape was a 500 (seen when a worker started its first stream during a scrape). An empty file holds no
    value yet, so leaving it out loses nothing."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector
        merged: Iterable[Metric] = MultiProcessCollector.merge(settled_files(self.path), accumulate=True)
        return merged


def settled_files(path: str) -> list[str]:
    """The value files in `path` that have their header (a file removed meanwhile is simply not listed)."""
    files = []
    for entry in os.scandir(path):
        try:
            if entry.name.endswith(".db") and entry.stat().st_size >= VALUE_FILE_HEADER:
                files.append(entry.path)
        except FileNotFoundError:
            pass
    return files


def install_metrics(gateway) -> Metrics:
    """Count every request the gateway answers; the door serves GET /metrics with `view` (auth applies)."""
    metrics = Metrics(gateway.settings)
    seating = getattr(getattr(gateway, "routing", None), "seating", None)
    if seating is not None and seating.limited:
        metrics.watch_admission(seating)
    gateway.answers.observers.append(metrics.observe)
    gateway.answers.stream_hooks.append(metrics.stream_started)
    if getattr(gateway, "team_keys", None) is not None:
        gateway.team_keys.on_dropped = metrics.key_usage_dropped.inc
    return metrics
