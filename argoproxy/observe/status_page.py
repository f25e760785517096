"""The status page for the people who run the gateway: GET /ui (a page served by the proxy itself: HTML, CSS
and a small script, no build step, no CDN) and GET /ui/data (what it shows, as JSON, polled every second).

It shows requests, tokens and spend per model and per team key, models without a price, latency, failures and
refusals by cause (from the same
counters as /metrics, summed over every worker: argoproxy/observe/refusals.py says what each cause means), each
deployment's health and cooldown, and the last requests (method, path, model, status, duration: never a body, a
key or a query string). A model's errors are its failures (the upstream's or the proxy's); a request the proxy
refused (a key's rate or budget, auth, a model not allowed, a bad request) is counted apart, never as the
model's error. For a team lead: requests, tokens and spend (per key and per model) per minute over the last hour
(argoproxy/observe/load_history.py, spend_history.py, drawn by the page itself), and each team key's limits beside
what is left of them (rpm and tpm in the last minute counted as admission counts them: refused requests apart, by
cause; the budgets in tokens and dollars in their periods; requests in flight where the key store counts them),
revoked and expired keys marked. With
admission on (admission/queue.py): its queue, each deployment's requests in flight against its limit and the
requests waiting for its model, and per key the p50 and p95 of its recent waits (admission/waits.py) beside
its queue refusals by code (queue_full, queue_timeout: the counter /metrics shows). When
auth is on, only the admin key (API_KEY_SECRET, API_KEY_FILE or the generated one) reads the data; client and
team keys get a 403.

The last requests are kept in a ring of fixed-size records in a file the workers share (like the cells of
argoproxy/shared_cells.py), so every worker's page shows the same list.
"""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from typing import Any, Callable

from argoproxy.observe.load_history import LoadHistory
from argoproxy.admission import RECENT_SECONDS, QueueWaits
from argoproxy.spend import SpendHistory
from argoproxy.jsonfast import dumps
from argoproxy.observe.refusals import CAUSES, DECIDED, FAILED, refusal_cause
from argoproxy.pipeline.call_records import CallEnd, CallStart
from argoproxy.redaction import without_proxy_keys
from argoproxy.shared_cells import SharedCells

RECENT = 100
RECORD = 256  # bytes per recent request (JSON, cut to fit)


class RecentRequests:
    """A ring of the last RECENT requests, shared by the workers of one instance."""

    def __init__(self, cells: SharedCells | None = None, guard: SharedCells | None = None) -> None:
        # One cell for the count written so far, then RECENT records of RECORD bytes. v2: written under the status
        # page's one lock (`guard`, the load history's), not a lock of its own.
        self.cells = cells or SharedCells("recent-requests-v2.cells", 1 + RECENT * RECORD // 8, guard=guard)
        self.raw = self.cells.cells.cast("B")

    def add(self, entry: dict[str, Any]) -> None:
        data = fitted(entry)
        with self.cells.lock():
            self.put(data)

    def put(self, data: bytes) -> None:
        """A record (fitted()) into the ring, for a caller that holds the cells' lock."""
        c = self.cells.cells
        start = 8 + c[0] % RECENT * RECORD
        self.raw[start:start + RECORD] = data.ljust(RECORD, b" ")
        c[0] += 1

    def last(self) -> list[dict[str, Any]]:
        with self.cells.lock() as c:
            count = c[0]
            raw = bytes(self.raw[8:8 + RECENT * RECORD])
        found = []
        for n in range(count - 1, max(-1, count - 1 - RECENT), -1):
            index = n % RECENT
            try:
                found.append(json.loads(raw[index * RECORD:(index + 1) * RECORD]))
            except ValueError:
                continue
        return found


def fitted(entry: dict[str, Any]) -> bytes:
    """The entry as JSON in at most RECORD bytes: its texts (path, model, key: all client-chosen, any length)
    cut shorter until it fits, each cut one ending in "…". A record cut anywhere else would be invalid JSON,
    and the request would vanish from the list (a 300-character model name did)."""
    data = dumps(entry)
    for limit in (80, 40, 16, 4):
        if len(data) <= RECORD:
            break
        cut = {k: v[:limit] + "…" if isinstance(v, str) and len(v) > limit else v for k, v in entry.items()}
        data = dumps(cut)
    return data if len(data) <= RECORD else dumps({"at": entry.get("at"), "cut": True})


# What the page says of the two model labels that are not a model (argoproxy/observe/metrics.py makes them).
LABELS = {"none": "requests that name no model (model lists, health checks, refused requests without one)",
          "other": "models not counted under their own name: names never answered successfully nor allowed, "
                   "names past the per-worker cap (MODEL_LABEL_CAP), too long, or holding a key"}
KEYS_CACHE_SECONDS = 5.0  # the key list is read from the store at most this often (the page polls every second)


class StatusPage:
    def __init__(self, exposition: Callable[[], tuple[bytes, str]] | None,
                 deployments: Callable[[], list[dict[str, Any]]], team_keys: Callable[[], Any] | None = None,
                 history: LoadHistory | None = None, queue: Callable[[], list[dict[str, Any]]] | None = None,
                 waits: QueueWaits | None = None) -> None:
        self.exposition = exposition
        self.deployments = deployments
        # What a request writes is written under one lock, the load history's: one flock a request, not three.
        self.history = history or LoadHistory()
        self.recent = RecentRequests(guard=self.history.cells)
        self.spend = SpendHistory(guard=self.history.cells)
        self.team_keys = team_keys or (lambda: None)
        self.queue = queue  # admission's deployments (routing/seating.py rows); None: admission is off
        self.waits = waits
        self.started = time.time()
        self._records: tuple[float, list[Any]] = (0.0, [])
        self._teams: tuple[float, list[Any]] = (0.0, [])

    def observe(self, start: CallStart, end: CallEnd) -> None:
        """Observer: one line per finished request, without anything secret."""
        if start.kind in ("ui", "ui_data", "ui_console", "signin_me"):
            return  # the page's own polling (its script, who is signed in) would push everything else out
        # The path the client asked for (a front door's request is served on the chat path).
        model = without_proxy_keys(start.model) if isinstance(start.model, str) else None
        client, now = start.client, time.time()
        record = fitted({"at": round(now, 3), "method": client.method, "path": without_proxy_keys("/" + client.path),
                         "model": model, "status": end.status,
                         "ms": round((time.perf_counter() - client.started) * 1000, 1), "key": start.key_name})
        used = end.used  # the meter's reading of the answer, as the usage rows and /metrics take it
        tokens = used.tokens if used is not None else 0
        cause, cost = refusal_cause(end), end.cost
        with self.history.cells.lock():  # the ring's and the spend's cells take this lock too
            self.recent.put(record)
            self.history.count(start.key_name, tokens, cause, start.team_key is not None, now)
            if cost is not None and cost.nanos > 0:
                self.spend.count(start.key_name or "none", model or "none", cost.nanos, now)

    def page(self) -> bytes:
        return resources.files("argoproxy.observe").joinpath("status_page.html").read_bytes()

    def data(self) -> dict[str, Any]:
        models, keys, queued, servers = self._counters()
        now = time.time()
        return {"now": now, "pid": os.getpid(), "models": models, "keys": keys,
                "deployments": self.deployments(), "recent": self.recent.last(),
                "minutes": self.history.minutes(now), "limits": self.limits(now), "teams": self.teams(now),
                "labels": LABELS,
                "refusals": refusals(models), "causes": CAUSE_TEXT, "queue": self.queue_data(queued, now),
                "spend": {"keys": self.spend.series("key", now), "models": self.spend.series("model", now)},
                "tools": {"servers": servers, "keys": self.tool_keys(now)}}

    def tool_keys(self, now: float) -> list[dict[str, Any]]:
        """Each key's MCP tool calls today (UTC), from the store's usage rows (every worker's and replica's, as
        they are written: within a few seconds)."""
        service = self.team_keys()
        if service is None:
            return []
        store = getattr(service.store, "primary", service.store)
        try:
            rows = store.tool_usage(time.strftime("%Y-%m-%d", time.gmtime(now)))
        except Exception:  # noqa: BLE001 - a store that cannot answer now: the page shows no rows
            return []
        keys: dict[str, dict[str, Any]] = {}
        for name, server, _tool, _day, calls, errors, millis, _in, _out, cost in rows:
            row = keys.setdefault(name, {"key": name, "servers": [], "calls": 0, "errors": 0, "millis": 0, "cost_usd": 0})
            if server not in row["servers"]:
                row["servers"].append(server)
            row["calls"] += calls
            row["errors"] += errors
            row["millis"] += millis
            row["cost_usd"] += cost / 1e9
        return list(keys.values())

    def queue_data(self, queued: dict[str, dict[str, int]], now: float) -> dict[str, Any] | None:
        """Admission's queue: each deployment's load and its model's waiting requests; each key's recent waits
        and its queue refusals by code (None: admission is off)."""
        if self.queue is None:
            return None
        waits = self.waits.recent(now) if self.waits is not None else {}
        keys = []
        for key in sorted(set(waits) | set(queued)):
            seen = waits.get(key, {})
            keys.append({"key": key, "waits": seen.get("waits", 0), "p50": seen.get("p50"), "p95": seen.get("p95"),
                         "queue_full": queued.get(key, {}).get("queue_full", 0),
                         "queue_timeout": queued.get(key, {}).get("queue_timeout", 0)})
        return {"deployments": self.queue(), "keys": keys, "recent_seconds": RECENT_SECONDS}

    def limits(self, now: float) -> list[dict[str, Any]]:
        """Each team key's limits and what is left of them (0 in a limit: none)."""
        service = self.team_keys()
        if service is None:
            return []
        store = getattr(service.store, "primary", service.store)  # a Redis store behind its outage policy
        read_at, records = self._records
        if now - read_at > KEYS_CACHE_SECONDS:
            try:
                records = list(store.records())
            except Exception:  # a store that cannot answer now: the page shows the last list it read
                records = self._records[1]
            self._records = (now, records)
        return [self._limit_row(store, r, now) for r in records]

    def teams(self, now: float) -> list[dict[str, Any]]:
        """Each team of keys: its limits and what is left of them, as a key's row (limits() read its keys first)."""
        service = self.team_keys()
        store = getattr(service.store, "primary", service.store) if service is not None else None
        if store is None or not hasattr(store, "teams"):
            return []
        read_at, teams = self._teams
        if now - read_at > KEYS_CACHE_SECONDS:
            try:
                teams = list(store.teams())
            except Exception:  # a store that cannot answer now: the last list it read
                teams = self._teams[1]
            self._teams = (now, teams)
        rows = []
        for team in teams:
            keys = [r.name for r in self._records[1] if getattr(r, "team", "") == team.name and not r.revoked]
            row = self._limit_row(store, team.windows, now)
            minutes = [self.history.last_minute(name, now) for name in keys]
            row.update(key=team.name, team=team.name, keys=keys, priority=team.priority, models=list(team.models),
                       rpm_used=sum(m[0] for m in minutes), tpm_used=sum(m[1] for m in minutes))
            rows.append(row)
        return rows

    def _limit_row(self, store: Any, record: Any, now: float) -> dict[str, Any]:
        requests, tokens, refused = self.history.last_minute(record.name, now)
        row: dict[str, Any] = {
            "key": record.name, "prefix": record.prefix, "models": list(record.models),
            "rpm": record.rpm, "rpm_used": requests, "tpm": record.tpm, "tpm_used": tokens, "refused": refused,
            "budget": record.budget.tokens if record.budget else 0,
            "period": record.budget.period if record.budget else None, "budget_used": None,
            "max_parallel": getattr(record, "max_parallel", 0), "in_flight": None,
            "budget_usd": record.budget_usd.nanos if getattr(record, "budget_usd", None) else 0,
            "period_usd": record.budget_usd.period if getattr(record, "budget_usd", None) else None, "spent_usd": None,
            "revoked": bool(record.revoked), "expired": bool(record.expires and now >= record.expires),
            "expires": record.expires or None}
        if record.budget is not None and record.budget.period != "hour" and hasattr(store, "used_in_period"):
            try:  # the daily usage rows (an hour's budget is counted only in the admission windows)
                row["budget_used"] = store.used_in_period(record, now)
            except Exception:
                pass
        if getattr(record, "budget_usd", None) is not None and hasattr(store, "spent"):
            try:  # nano-dollars spent in the dollar budget's period, as admission counts them
                row["spent_usd"] = store.spent(record, now)
            except Exception:
                pass
        counted = getattr(store, "in_flight", None)  # the key store's count, where it keeps one
        if callable(counted):
            try:
                row["in_flight"] = counted(record.name)
            except Exception:
                pass
        return row

    def _counters(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, int]],
                                 list[dict[str, Any]]]:
        """Per model: requests, failures, refusals by cause, tokens, mean latency; per key: admitted requests,
        their failures, its refusals by cause, tokens, and admission's refusals by code; per MCP server: tool
        calls, errors, mean time and bytes (summed over workers, from the /metrics counters)."""
        if self.exposition is None:
            return [], [], {}, []
        from prometheus_client.parser import text_string_to_metric_families
        models: dict[str, dict[str, Any]] = {}
        keys: dict[str, dict[str, Any]] = {}
        queued: dict[str, dict[str, int]] = {}
        servers: dict[str, dict[str, Any]] = {}
        text = self.exposition()[0].decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "cot_proxy_admission_refusals_total":
                    by_code = queued.setdefault(s.labels.get("key", "none"), {})
                    by_code[s.labels.get("code", "")] = by_code.get(s.labels.get("code", ""), 0) + int(s.value)
                    continue
                if s.name.startswith("cot_proxy_tool_call"):
                    _tool_count(s.name, s.labels, s.value, servers)
                    continue
                _count(s.name, s.labels, s.value, models, keys)
        by_model = [{"model": m, **_finished(row, model=True)} for m, row in sorted(models.items())]
        for row in by_model:
            row["mean_ms"] = round(1000 * row.pop("seconds", 0) / row["timed"], 1) if row.get("timed") else None
            row.pop("timed", None)
        tools = [{"server": name, **row, "mean_ms": round(1000 * row["seconds"] / row["timed"], 1) if row["timed"]
                  else None} for name, row in sorted(servers.items())]
        return by_model, [{"key": k, **_finished(row)} for k, row in sorted(keys.items())], queued, tools


# cot_proxy_tool_call* samples (mcp/recording.py) -> what each adds to its server's row.
_TOOL_SERIES = {"cot_proxy_tool_calls_total": "calls", "cot_proxy_tool_call_seconds_sum": "seconds",
                "cot_proxy_tool_call_seconds_count": "timed", "cot_proxy_tool_call_request_bytes_total": "bytes_in",
                "cot_proxy_tool_call_response_bytes_total": "bytes_out"}


def _tool_count(name: str, labels: dict[str, str], value: float, servers: dict[str, dict[str, Any]]) -> None:
    field = _TOOL_SERIES.get(name)
    if field is None or not labels.get("server"):
        return
    row = servers.setdefault(labels["server"], {"calls": 0, "errors": 0, "seconds": 0.0, "timed": 0,
                                                "bytes_in": 0, "bytes_out": 0})
    row[field] += value
    if field == "calls" and labels.get("outcome") != "ok":  # a tool_error too, as the usage rows count it
        row["errors"] += value


def _row(table: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return table.setdefault(name, {"requests": 0, "errors": 0, "refused": 0, "causes": {}, "prompt_tokens": 0,
                                   "completion_tokens": 0, "cost_usd": 0, "unpriced": 0})


def _finished(row: dict[str, Any], model: bool = False) -> dict[str, Any]:
    """The row as the page shows it: refusals from the causes, and a model's errors from them too (its
    failures, never what the proxy refused; a key's errors are its admitted requests' error statuses)."""
    causes = {cause: int(row["causes"][cause]) for cause in CAUSES if row["causes"].get(cause)}
    done = {k: v if isinstance(v, dict) else round(v, 9 if k == "cost_usd" else 4) for k, v in row.items()}
    done["causes"] = causes
    done["refused"] = sum(n for cause, n in causes.items() if cause in DECIDED)
    if model:
        done["errors"] = sum(n for cause, n in causes.items() if cause in FAILED)
    return done


def refusals(models: list[dict[str, Any]]) -> dict[str, int]:
    """Every error answer by cause, summed over the models (every cause, in CAUSES' order)."""
    total = dict.fromkeys(CAUSES, 0)
    for row in models:
        for cause, count in row["causes"].items():
            total[cause] += count
    return total


# What the page says of each cause (argoproxy/observe/refusals.py decides them).
CAUSE_TEXT = {
    "rate": "over a key's requests or tokens per minute, or its requests at once (429)",
    "budget": "over a team key's budget in tokens or dollars for its period, or a model its dollar budget cannot price (429, 403)",
    "queue": "every server of the model was busy and the wait in the proxy's queue would pass, or passed, the "
             "request's bound (429 queue_full, 503 queue_timeout)",
    "auth": "no key, a wrong, revoked or expired key, or not the admin key (401, 403)",
    "model": "a model the key or the allow-list does not allow, or that nothing serves (403, 404)",
    "request": "a request the proxy cannot take: bad JSON, a missing or wrong field, no such route (4xx)",
    "upstream": "the upstream answered an error, could not be reached or answered nonsense (its status, 502, 504)",
    "proxy": "the proxy's own failure: a store it cannot reach, a bug (500, 503)"}


# Series -> each (the label naming the row, the table: "models" or "keys", what the sample adds to).
_SERIES = {"cot_proxy_requests_total": (("model", "models", "requests"),),
           "cot_proxy_refusals_total": (("model", "models", "causes"),),
           "cot_proxy_tokens_total": (("model", "models", "tokens"),),
           "cot_proxy_request_duration_seconds_sum": (("model", "models", "seconds"),),
           "cot_proxy_request_duration_seconds_count": (("model", "models", "timed"),),
           "cot_proxy_key_requests_total": (("key", "keys", "requests"),),
           "cot_proxy_key_tokens_total": (("key", "keys", "tokens"),),
           "cot_proxy_cost_usd_total": (("model", "models", "cost_usd"), ("key", "keys", "cost_usd")),
           "cot_proxy_unpriced_requests_total": (("model", "models", "unpriced"),)}


def _count(name: str, labels: dict[str, str], value: float, models: dict[str, Any], keys: dict[str, Any]) -> None:
    for label, table, field in _SERIES.get(name, ()):
        if labels.get(label) and not (table == "keys" and labels[label] == "none"):  # keyless spend: models' rows
            _add(field, table, labels, value, _row(models if table == "models" else keys, labels[label]), keys)


def _add(field: str, table: str, labels: dict[str, str], value: float, row: dict[str, Any], keys: dict[str, Any]) -> None:
    if field == "causes":
        cause = labels.get("cause", "")
        row["causes"][cause] = row["causes"].get(cause, 0) + value
        key = labels.get("key", "none")
        if key != "none" and cause in DECIDED:  # a team key's refusals, beside its admitted requests
            refused = _row(keys, key)["causes"]
            refused[cause] = refused.get(cause, 0) + value
    elif field == "requests":
        row["requests"] += value
        if table == "keys":  # a key's admitted requests that failed
            row["errors"] += value if labels.get("status", "200") >= "400" else 0
    elif field == "tokens":
        if labels.get("type") in ("prompt", "completion"):
            row[f"{labels['type']}_tokens"] += value
    else:
        row[field] = row.get(field, 0) + value
