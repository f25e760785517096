"""Settings: one typed object, built once at start-up from defaults < config.yaml < environment < flags.

Every setting is one dataclass field: the core fields of `Settings` below, plus each provider's fragment
(declared in argoproxy/providers/<name>/settings.py with config/setting_fields.py alone, registered in the
registry, config/provider_registry.py, and composed here into `ComposedSettings`, the class the loader
builds). The type checker knows `Settings` field by field, so a setting read that is not one is an error; a
provider reads its own through its typed view (ArgoConfig). Its metadata names its YAML key (the field name,
plus aliases), its environment variables and its command-line flags.
docs/reference/settings.md is generated from this list (tools/settings_reference.py).
A bad value raises SettingsError with one line naming the key; callers print it and exit non-zero.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import yaml

from argoproxy.config import listener
from argoproxy.config import provider_registry as providers
from argoproxy.config.backend_choice import DEFAULT_BACKEND, BackendConflict, Given, choose_backend
from argoproxy.config.model_families import Overrides, parse_overrides
from argoproxy.config.llm_params import LlmParams, parse_llm_params
from argoproxy.config.model_free_paths import DEFAULT_MODEL_FREE, route_globs
from argoproxy.config.price_settings import PriceSettings, parse_prices
from argoproxy.config.env_mistakes import misspelled
from argoproxy.config.mcp_servers import McpServers, missing_tokens, parse_mcp_servers, per_person_problem
from argoproxy.config.redis_url import check_redis_url
from argoproxy.redaction import mask_url
from argoproxy.config.routing_settings import (KeyLimit, ModelEntry, as_concurrency, check_routing, parse_fallbacks,
                                              parse_key_limits, parse_models, parse_weights)
from argoproxy.config.tracing_settings import as_tracing, tracing_problem, tracing_warnings
from argoproxy.config.yaml_text import RepeatedKey, UniqueKeyLoader, yaml_mistake
from argoproxy.config.signin_settings import as_claim_name, as_issuer, as_public_url, as_session_max, signin_problem
from argoproxy.config.setting_fields import (as_base_url, as_bool, as_csv, as_on_off, as_optional_dir, as_str, as_tag, as_url,  # noqa: F401
                                      as_duration, file_text,
                                      choice as _choice, number as _number, positive as _positive,
                                      setting as _setting)

providers.discover()


class SettingsError(ValueError):
    """A bad setting: the message is one line naming the setting."""


class BadValue(SettingsError):
    """A value given for a setting that cannot be read (not a missing one a first-run question could fill)."""


def as_fronts(value: Any) -> tuple[str, ...]:
    """API door names (argoproxy/fronts/; which doors there are is checked against their registry by
    serve/gunicorn_app.py `checked` and the door, where the doors are known)."""
    names = tuple(name.lower() for name in as_csv(value))
    for name in names:
        if not name.isidentifier():
            raise ValueError(f"must list front doors by name, got {name!r}")
    return names


def as_redis_url(value: Any) -> str:
    url = as_str(value)
    if url:
        try:  # read as redis-py reads it (port, database, query options), without connecting or importing it
            check_redis_url(url)
        except ValueError as exc:
            raise ValueError(f"{mask_url(url)!r} is not a URL Redis can use: {exc}") from None
    return url


def as_llm_params(value: Any) -> LlmParams:
    return parse_llm_params(as_str(value))


_port = _number(int, 1, 65535)


def as_backend(value: Any) -> str:
    """A registered provider's name (the registry is read when the value is parsed)."""
    return _choice(*providers.names())(value)


def _target_defaults() -> str:
    """TARGET_BASE_URL's defaults for its help: "https://api.openai.com/v1/ (dashscope: https://...)"."""
    urls = {p.name: p.default_target_url for p in providers.all_providers() if p.uses_target_url and p.default_target_url}
    first = urls.pop(DEFAULT_BACKEND, "")
    others = ", ".join(f"{name}: {url}" for name, url in urls.items())
    return f"{first} ({others})" if first and others else first or others


@dataclass(frozen=True)
class Settings:
    """The one typed settings object as the proxy reads it: the settings every backend shares, each a field
    the type checker knows (a setting read that is not one is an error). What the loader builds is an instance
    of `ComposedSettings`, this class with every registered provider's fragment added; a provider reads its
    own fields through its fragment's typed view (argoproxy/providers/argo/settings.py: ArgoConfig)."""
    # --- where requests go
    backend: str = _setting("openai", as_backend,
                            "Kind of upstream server: "
                            + ", ".join(f"{p.name} ({p.summary})" if p.summary else p.name
                                        for p in map(providers.get, providers.names())) + ".",
                            env=("BACKEND",), flags=("--backend",))
    target_base_url: str = _setting("", as_base_url,
                                    "Upstream base URL (a full endpoint URL is reduced to its base). Default "
                                    + _target_defaults() + ".",
                                    env=("TARGET_BASE_URL", "OPENAI_BASE_URL"), flags=("--target-base-url", "--url"),
                                    by_backend=providers.DEFAULT_TARGET_URLS)
    openai_api_key: str = _setting("", as_str, "Upstream API key; when set it replaces the client's Authorization upstream.",
                                   env=("OPENAI_API_KEY",), secret=True)
    # --- many upstreams (docs/many-upstreams.md); empty models = the settings above as the one deployment
    models: tuple[ModelEntry, ...] = _setting((), parse_models,
                             "Deployments: a list of {name, backend, base_url, api_key_env, upstream_model, params, "
                             "weight}; entries sharing a name form a pool (MODELS: the same as JSON). See docs/many-upstreams.md.",
                             env=("MODELS",))
    fallbacks: tuple[tuple[str, tuple[str, ...]], ...] = _setting((), parse_fallbacks,
                               "Model -> models to try, in order, when its pool fails "
                               "(FALLBACKS: JSON).", env=("FALLBACKS",))
    key_limits: tuple[KeyLimit, ...] = _setting((), parse_key_limits,
                                "Client key budgets: name of the environment variable "
                                "holding a key -> {rpm, tpm, max_parallel} (KEY_LIMITS: JSON); in Redis with "
                                "REDIS_URL.", env=("KEY_LIMITS",))
    cooldown_seconds: float = _setting(5.0, _number(float, 0), "Seconds a deployment that failed is avoided "
                                       "(a 429's Retry-After when longer).", env=("COOLDOWN_SECONDS",))
    health_probe_seconds: float = _setting(0.0, _number(float, 0), "Probe every deployment this often and bring "
                                           "failed ones back early; 0: off.", env=("HEALTH_PROBE_SECONDS",))
    routing_strategy: str = _setting("least_busy", _choice("least_busy", "cache_aware"),
                                     "How a pool picks a deployment: least_busy (fewest requests in flight) or "
                                     "cache_aware (a conversation's turns to the deployment that holds its prompt "
                                     "in cache; see docs/admission.md).", env=("ROUTING_STRATEGY",),
                                     flags=("--routing-strategy",))
    max_concurrency: int = _setting(0, as_concurrency, "Requests sent to each deployment at once, for entries of "
                                    "`models` that set no max_concurrency: a number, auto (asked of the server) or 0 "
                                    "(no limit: admission off). Beyond it requests wait in the proxy, in fair order "
                                    "(docs/admission.md).", env=("MAX_CONCURRENCY",), flags=("--max-concurrency",))
    admission_max_wait: float = _setting(60.0, _number(float, 0), "Seconds a request may wait for a deployment's "
                                         "slot: one that would wait longer is answered 429 with Retry-After at once.",
                                         env=("ADMISSION_MAX_WAIT",))
    admission_key_share: float = _setting(1.0, _number(float, 0.01, 1.0), "The most of a pool's slots one key "
                                          "holds while another key is active (1: all of them).",
                                          env=("ADMISSION_KEY_SHARE",))
    admission_weights: tuple[tuple[str, float], ...] = _setting((), parse_weights,
                                        "Key name -> weight in the admission queue (a key of "
                                        "weight 2 gets twice the share of one of weight 1); ADMISSION_WEIGHTS: "
                                        "JSON.", env=("ADMISSION_WEIGHTS",))
    admission_queue_size: int = _setting(1024, _number(int, 1, 100_000), "Requests that may wait in this instance's "
                                         "admission queue at once, every model's together: when all wait, a key "
                                         "under its share takes the place of the newest request of the key furthest "
                                         "over its share (docs/admission.md).", env=("ADMISSION_QUEUE_SIZE",))
    meter_image_tokens: int = _setting(4096, _number(int, 1, 1_000_000), "Tokens an image counts in a request's "
                                       "worst case when its model's family has no rule of its own (docs/"
                                       "reservations.md: the meter's table).", env=("METER_IMAGE_TOKENS",))
    # --- server
    host: str = _setting("127.0.0.1", listener.as_host, "Address to listen on: an IP address (IPv6 bare or in brackets, ::1 or [::1]; not a "
                         "link-local fe80::, which Gunicorn cannot bind) or a host name (this machine only by "
                         "default; 0.0.0.0: every interface, as the Docker image and deploy/ files set).",
                         env=("HOST",), flags=("--host", "--expose_host", "-H"))
    socket: str = _setting("", as_str, "Listen on this Unix socket instead of HOST:PORT (created mode 0600, in a "
                           "directory only you can enter): private on a shared machine.",
                           env=("SOCKET",), flags=("--socket",))
    port: int = _setting(5000, _port, "Port to listen on.", env=("PORT",), flags=("--port", "--expose_port", "-p"))
    workers: int = _setting(2, _number(int, 1, 256), "Gunicorn worker processes.", env=("WORKERS",),
                            flags=("--workers", "--num-workers", "-n"), yaml_aliases=("num_workers",))
    worker_class: str = _setting("gevent", _choice("gevent", "gthread", "sync"),
                                 "How a worker process serves connections: gevent (thousands of simultaneous "
                                 "streams), gthread (a thread per connection) or sync (one request at a time).",
                                 env=("WORKER_CLASS",), flags=("--worker-class",))
    threads: int = _setting(64, _number(int, 1, 4096), "Threads per worker (gthread worker class).",
                            env=("THREADS",), flags=("--threads",))
    worker_connections: int = _setting(2000, _number(int, 1, 100000),
                                       "Simultaneous connections per worker (gevent worker class).",
                                       env=("WORKER_CONNECTIONS",), flags=("--worker-connections",))
    gunicorn_timeout: int = _setting(3000, _number(int, 1), "Seconds a worker may stay silent before it is restarted.",
                                     env=("GUNICORN_TIMEOUT",), flags=("--gunicorn-timeout",))
    graceful_timeout: int = _setting(30, _number(int, 0), "Seconds in-flight requests get to finish on SIGTERM.",
                                     env=("GRACEFUL_TIMEOUT",), flags=("--graceful-timeout",))
    fast_path: str = _setting("on", as_on_off,
                              "Speed-ups that rely on the internals of Gunicorn, gevent, requests and urllib3 "
                              "(fewer system calls per request, connections spread evenly over workers): on, or off "
                              "for their stock behaviour (see docs/performance.md).",
                              env=("FAST_PATH",), flags=("--fast-path",))
    # --- upstream behaviour
    timeout: float = _setting(600.0, _positive, "Upstream read timeout in seconds (the --timeout flag takes milliseconds).",
                              env=("TIMEOUT", "API_REQUEST_TIMEOUT"), flags=("--request-timeout",))
    connect_timeout: float = _setting(10.0, _positive, "Upstream connect timeout in seconds.",
                                      env=("CONNECT_TIMEOUT",), flags=("--connect-timeout",))
    max_retries: int = _setting(2, _number(int, 0, 10), "Retries of an upstream call that failed before any answer "
                                "reached the client (connection refused, 502/503/504, 429 with a short Retry-After). "
                                "Besides these, a GET (or a request with an Idempotency-Key) met by a connection the "
                                "server closed before answering is sent once more at once, on another "
                                "(docs/decisions.md).",
                                env=("MAX_RETRIES",), flags=("--max-retries",))
    max_upstream_calls: int = _setting(3, _number(int, 1, 30),
                                       "The most upstream calls one client request costs in all: its first call, "
                                       "every retry, every other deployment and fallback model routing tries, a "
                                       "call sent again without a refused parameter (docs/routing.md).",
                                       env=("MAX_UPSTREAM_CALLS",), flags=("--max-upstream-calls",))
    max_body_bytes: int = _setting(32 * 1024 * 1024, _number(int, 1), "Largest request body accepted (413 above it).",
                                   env=("MAX_BODY_BYTES",), flags=("--max-body-bytes",))
    max_response_bytes: int = _setting(64 * 1024 * 1024, _number(int, 1),
                                       "Largest upstream answer read whole (non-streamed answers, stream aggregation, "
                                       "model lists); 502 above it.",
                                       env=("MAX_RESPONSE_BYTES",), flags=("--max-response-bytes",))
    max_sse_event_bytes: int = _setting(16 * 1024 * 1024, _number(int, 1),
                                        "Largest single upstream stream event; a bigger one ends the stream with an error event.",
                                        env=("MAX_SSE_EVENT_BYTES",), flags=("--max-sse-event-bytes",))
    client_timeout: float = _setting(60.0, _positive,
                                     "Seconds a client gets to send its whole request body (408 and the connection "
                                     "closed after that).", env=("CLIENT_TIMEOUT",), flags=("--client-timeout",))
    health_cache_seconds: float = _setting(5.0, _number(float, 0), "How long a /health probe result is reused.",
                                           env=("HEALTH_CACHE_SECONDS",))
    # --- transforms
    llm_params: LlmParams = _setting(LlmParams(), as_llm_params, "Per-model parameter overrides (see docs/llm-params.md).",
                                     env=("LLM_PARAMS",), flags=("--llm-params",))
    model_capabilities: Overrides = _setting(Overrides(), parse_overrides,
                                             "What models accept, over the shipped table (docs/capabilities.md): "
                                             "model name or glob -> capability fields; requests are adapted to it "
                                             "(MODEL_CAPABILITIES: JSON).", env=("MODEL_CAPABILITIES",))
    prices: PriceSettings = _setting(PriceSettings(), parse_prices,
                                     "What requests cost (docs/spend.md): `table`, a price table file (`cot-proxy "
                                     "prices refresh --output`; none: only `models`), and `models`, model name or "
                                     "glob -> USD per million tokens (input_mtok, output_mtok, cache_read_mtok, "
                                     "cache_write_mtok...), over the shipped table (PRICES: JSON).",
                                     env=("PRICES",))
    self_hosted: bool = _setting(False, as_bool, "TARGET_BASE_URL is a server of your own: its models cost nothing "
                                 "unless `prices` names them (for one that does not say it is llama.cpp, vLLM or "
                                 "Ollama: LM Studio, SGLang, TGI, llamafile...). A `models` entry says it with its "
                                 "own `self_hosted: true` (docs/spend.md).", env=("SELF_HOSTED",),
                                 flags=("--self-hosted",))
    think_mode: str = _setting("strip", _choice("strip", "reasoning", "keep"),
                               "What to do with <think> text in answers: strip (given as reasoning only to clients "
                               "that asked for it), reasoning (move to reasoning_content), keep.",
                               env=("THINK_MODE",), flags=("--think-mode",))
    think_tag: str = _setting("<think>", as_tag, "Reasoning start tag.", env=("THINK_TAG",), flags=("--think-tag",))
    think_end_tag: str = _setting("</think>", as_tag, "Reasoning end tag.", env=("THINK_END_TAG",), flags=("--think-end-tag",))
    upstream_mode: str = _setting("off", _choice("off", "stream", "non_stream"),
                                  "Ask the upstream for a stream (stream) or a whole answer "
                                  "(non_stream) whatever the client asked, converting on the way back; off: as asked.",
                                  env=("UPSTREAM_MODE",), flags=("--mode",))
    fronts_passthrough: tuple[str, ...] = _setting((), as_fronts,
                                         "APIs the upstream serves itself (API doors by name, docs/fronts.md: "
                                         "responses, messages...; openai backend): passed through instead of "
                                         "translated to chat completions.",
                                         env=("FRONTS_PASSTHROUGH",), flags=("--fronts-passthrough",))
    developer_role: str = _setting("auto", _choice("auto", "keep", "system"),
                                   "What `developer` messages are sent upstream as: auto (kept for OpenAI's own "
                                   "API, api.openai.com; `system` for every other server), keep, or system. A `models` entry "
                                   "may set its own `developer_role`.",
                                   env=("DEVELOPER_ROLE",), flags=("--developer-role",))
    sse_keepalive: float = _setting(15.0, _number(float, 0), "Seconds of silence after which a streamed answer "
                                    "gets an SSE comment line (keeps load balancers from cutting it); 0 = off.",
                                    env=("SSE_KEEPALIVE",), flags=("--sse-keepalive",))
    websocket_lifetime: float = _setting(3600.0, _positive, "Seconds a Responses WebSocket connection lasts at most "
                                         "(OpenAI's limit: 60 minutes); then an error event "
                                         "(websocket_connection_limit_reached) and a normal close "
                                         "(docs/responses-websocket.md).", env=("WEBSOCKET_LIFETIME",))
    websocket_idle: float = _setting(600.0, _positive, "Seconds a Responses WebSocket connection may wait for the "
                                     "client's next event between responses before it is closed (1000).",
                                     env=("WEBSOCKET_IDLE",))
    websocket_threads: int = _setting(8, _number(int, 0, 4096), "Responses WebSocket connections a gthread worker "
                                      "holds at once, each on one of its THREADS (never all of them: at most "
                                      "THREADS - 1); past it the upgrade is answered 426 and clients use HTTP. "
                                      "0: none.", env=("WEBSOCKET_THREADS",))
    websocket_connections: int = _setting(512, _number(int, 1, 100000), "Responses WebSocket connections the "
                                          "instance holds at once (every worker's together); past it the upgrade "
                                          "is answered 426 and clients use HTTP.", env=("WEBSOCKET_CONNECTIONS",))
    websocket_connections_per_key: int = _setting(16, _number(int, 1, 100000), "Of those, one key's at most (auth "
                                                  "off: all of them count as one key's).",
                                                  env=("WEBSOCKET_CONNECTIONS_PER_KEY",))
    compatible: bool = _setting(False, as_bool, "Return every error as HTTP 200 with the error JSON (legacy clients).",
                                env=("COMPATIBLE_MODE",), flags=("--compatible",))
    # --- guard
    enable_auth: bool = _setting(False, as_bool, "Require a client API key.", env=("ENABLE_AUTH",), flags=("--enable-auth",))
    api_key_secret: tuple[str, ...] = _setting((), as_csv,
                                     "Accepted client keys, comma-separated (random when auth is on and none set).",
                                     env=("API_KEY_SECRET",), secret=True)
    api_key_file: str = _setting("", as_str, "File holding accepted client keys, one a line (a per-user key: "
                                 "./run_app.sh's first run offers ~/.config/argoproxy/api_key, mode 0600).",
                                 env=("API_KEY_FILE",), flags=("--api-key-file",))
    keys_db: str = _setting("", as_str, "Team keys' SQLite file (`cot-proxy keys ...`); default keys.db next to the "
                            "config file in force (else in the working directory).", env=("KEYS_DB",),
                            flags=("--keys-db",), derived=lambda s: default_keys_db(s.config_path))
    redis_url: str = _setting("", as_redis_url, "Redis for what replicas share: team keys, their rate windows, "
                              "budgets and usage, routing cooldowns, stored responses and conversations (e.g. "
                              "redis://redis:6379/0).",
                              env=("REDIS_URL",), flags=("--redis-url",))
    redis_outage: str = _setting("local", _choice("local", "refuse"),
                                 "When Redis does not answer: local (each worker counts a key from the last state "
                                 "it saw of it, warns, and writes usage to Redis once it is back) or refuse (503 for "
                                 "team-key requests until Redis answers).",
                                 env=("REDIS_OUTAGE",), flags=("--redis-outage",))
    key_cache_seconds: float = _setting(30.0, _number(float, 0), "Seconds a team key looked up before is still "
                                        "served while its store (Redis, keys.db) cannot be reached; then it is "
                                        "refused (503) until the store answers.", env=("KEY_CACHE_SECONDS",),
                                        flags=("--key-cache-seconds",))
    # --- stored Responses (argoproxy/state/, docs/responses-state.md)
    responses_store: bool = _setting(True, as_bool, "Keep Responses API state (store, previous_response_id, "
                                     "conversations, background) for chat upstreams; off: the door is stateless.",
                                     env=("RESPONSES_STORE",), flags=("--responses-store",),
                                     negative_flags=("--no-responses-store",))
    responses_db: str = _setting("", as_str, "SQLite file of stored responses and conversations (without REDIS_URL); "
                                 "default responses.db beside KEYS_DB.", env=("RESPONSES_DB",),
                                 flags=("--responses-db",), derived=lambda s: default_responses_db(s.keys_db, s.config_path))
    responses_retention: float = _setting(30 * 86400.0, as_duration, "How long a stored response or conversation "
                                          "is kept (seconds, or 30d, 12h, 90m).", env=("RESPONSES_RETENTION",),
                                          flags=("--responses-retention",))
    responses_max_bytes_per_key: int = _setting(256 * 1024 * 1024, _number(int, 1024),
                                                "Bytes of stored responses and conversations one key may hold "
                                                "(a 400 past it).", env=("RESPONSES_MAX_BYTES_PER_KEY",),
                                                flags=("--responses-max-bytes-per-key",))
    responses_max_bytes: int = _setting(2 * 1024 * 1024 * 1024, _number(int, 1024),
                                        "Bytes of stored responses and conversations the whole store may hold.",
                                        env=("RESPONSES_MAX_BYTES",), flags=("--responses-max-bytes",))
    responses_admin_reads: bool = _setting(False, as_bool, "The admin key (API_KEY_SECRET) may read and delete "
                                           "every key's stored responses and conversations.",
                                           env=("RESPONSES_ADMIN_READS",), flags=("--responses-admin-reads",))
    responses_background_max: int = _setting(32, _number(int, 0, 100000), "Background responses in flight on "
                                             "one instance (0: background off).", env=("RESPONSES_BACKGROUND_MAX",),
                                             flags=("--responses-background-max",))
    responses_background_per_key: int = _setting(4, _number(int, 0, 100000), "Background responses in flight "
                                                 "per key.", env=("RESPONSES_BACKGROUND_PER_KEY",),
                                                 flags=("--responses-background-per-key",))
    allowed_models: tuple[str, ...] = _setting((), as_csv, "Comma-separated model allow-list; * wildcards.",
                                     env=("ALLOWED_MODELS",), flags=("--allowed-models",))
    model_free_paths: tuple[str, ...] = _setting(DEFAULT_MODEL_FREE, route_globs,
                                       "Forwarded paths that name no model, let through while ALLOWED_MODELS or a "
                                       "team key's globs are in force (any other forwarded request must name an "
                                       "allowed model): comma-separated `METHOD /glob` or `/glob`; the default "
                                       "lists file, batch and stored-object reads (docs/edge.md).",
                                       env=("MODEL_FREE_PATHS",), flags=("--model-free-paths",))
    allowed_origins: tuple[str, ...] = _setting((), as_csv,
                                      "Web pages (origins, e.g. http://localhost:3000) that may send "
                                      "requests besides the proxy's own; * any. Others get 403.",
                                      env=("ALLOWED_ORIGINS",), flags=("--allowed-origins",))
    allowed_hosts: tuple[str, ...] = _setting((), as_csv,
                                    "Host names besides loopback ones that requests may name while "
                                    "the proxy listens on a loopback address (a reverse proxy that keeps the "
                                    "browser's Host, such as jupyter-server-proxy); * any.",
                                    env=("ALLOWED_HOSTS",), flags=("--allowed-hosts",))
    forward_paths: tuple[str, ...] = _setting(("*",), as_csv,
                                    "Paths forwarded to the upstream as they are: comma-separated globs (e.g. "
                                    "/v1/files*,/v1/audio/*); other unknown paths get 404. Empty: none.",
                                    env=("FORWARD_PATHS",), flags=("--forward-paths",))
    status_page: bool = _setting(True, as_bool, "Serve the status page at /ui (its data: the admin key only when "
                                 "auth is on).", env=("STATUS_PAGE",), flags=("--status-page",),
                                 negative_flags=("--no-status-page",))
    metrics_public: bool = _setting(False, as_bool, "Serve /metrics without a key when auth is on.",
                                    env=("METRICS_PUBLIC",), flags=("--metrics-public",))
    # --- sign-in with an OpenID Connect provider (argoproxy/signin/, docs/signin.md)
    oidc_issuer: str = _setting("", as_issuer, "The OpenID provider's issuer: sign-in on (docs/signin.md).", env=("OIDC_ISSUER",))
    oidc_client_id: str = _setting("", as_str, "The proxy's client id at the provider.", env=("OIDC_CLIENT_ID",))
    oidc_client_secret: str = _setting("", as_str, "Its client secret.",
                                       env=("OIDC_CLIENT_SECRET",), secret=True)
    oidc_client_secret_file: str = _setting("", as_str, "A file holding it instead.", env=("OIDC_CLIENT_SECRET_FILE",))
    oidc_scopes: str = _setting("openid email profile", as_str, "Scopes asked at sign-in.", env=("OIDC_SCOPES",))
    oidc_groups_claim: str = _setting("groups", as_str, "The ID token's claim of groups.", env=("OIDC_GROUPS_CLAIM",))
    oidc_admin_groups: tuple[str, ...] = _setting((), as_csv, "Groups whose members are admins.",
                                                  env=("OIDC_ADMIN_GROUPS",))
    oidc_argo_user_claim: str = _setting("", as_claim_name, "The ID token's claim of a person's ARGO username; "
                                         "empty: none read.", env=("OIDC_ARGO_USER_CLAIM",))
    admin_emails: tuple[str, ...] = _setting((), as_csv, "Emails of admins (verified ones only).", env=("ADMIN_EMAILS",))
    public_url: str = _setting("", as_public_url, "The address people reach the proxy at.", env=("PUBLIC_URL",))
    oidc_default_team: str = _setting("", as_str, "The team of a person whose groups name none.", env=("OIDC_DEFAULT_TEAM",))
    # /mcp as an OAuth protected resource for MCP clients that sign in (signin/access_tokens.py, docs/mcp-auth.md)
    mcp_oauth_scopes: str = _setting("mcp", as_str, "Scopes an access token at /mcp must carry.", env=("MCP_OAUTH_SCOPES",))
    mcp_oauth_server: str = _setting("auto", _choice("auto", "proxy", "issuer"), "Who issues /mcp's tokens: proxy, issuer, or auto (proxy unless OIDC_ISSUER offers DCR or CIMD).", env=("MCP_OAUTH_SERVER",))
    oidc_inactive_days: float = _setting(90.0, _number(float, 0, 36500), "Days without sign-in after which a person "
                                         "is refused as disabled (0: never).", env=("OIDC_INACTIVE_DAYS",))
    console_session_idle: float = _setting(8 * 3600.0, as_duration, "A console session unused this long ends.", env=("CONSOLE_SESSION_IDLE",))
    console_session_max: float = _setting(7 * 86400.0, as_session_max, "A console session ends this "
                                          "long after sign-in (at most 30d).", env=("CONSOLE_SESSION_MAX",))
    # --- MCP servers behind /mcp (argoproxy/mcp/, docs/mcp.md)
    mcp_servers: McpServers = _setting(McpServers(), parse_mcp_servers,
                              "MCP servers at /mcp: name -> {command, args, env, per_session} or {url, headers, "
                              "bearer_token_env, transport, auth}; MCP_SERVERS: JSON (docs/mcp.md, "
                              "docs/mcp-credentials.md).",
                              env=("MCP_SERVERS",))
    mcp_session_processes: int = _setting(16, _number(int, 1, 10000), "Processes a per_session MCP server runs at "
                                          "once at most (docs/mcp.md).", env=("MCP_SESSION_PROCESSES",),
                                          flags=("--mcp-session-processes",))
    mcp_session_processes_per_key: int = _setting(4, _number(int, 1, 10000), "Of those, one key's at most.",
                                                  env=("MCP_SESSION_PROCESSES_PER_KEY",),
                                                  flags=("--mcp-session-processes-per-key",))
    mcp_user_sessions_per_server: int = _setting(64, _number(int, 1, 100000), "A per_user MCP server's upstream "
                                                 "sessions at once, one per person (least recently used out).",
                                                 env=("MCP_USER_SESSIONS_PER_SERVER",))
    credentials_key_file: str = _setting("", as_str, "The key people's MCP server tokens are encrypted with (AES-GCM); "
                                         "default credentials.key beside keys.db, made 0600 when absent "
                                         "(docs/mcp-credentials.md).", env=("CREDENTIALS_KEY_FILE",),
                                         derived=lambda s: str(Path(s.keys_db or default_keys_db(s.config_path))
                                                              .expanduser().with_name("credentials.key")))
    mcp_streams: int = _setting(512, _number(int, 1, 100000), "Notification streams (a session's GET, "
                                "subscriptions/listen) the instance holds at once at most (docs/mcp.md).",
                                env=("MCP_STREAMS",), flags=("--mcp-streams",))
    mcp_streams_per_key: int = _setting(16, _number(int, 1, 100000), "Of those, one key's at most.",
                                        env=("MCP_STREAMS_PER_KEY",), flags=("--mcp-streams-per-key",))
    mcp_tool_search: str = _setting("auto", _choice("auto", "on", "off"), "auto, on, off: /mcp lists a search tool "
                                     "instead (docs/mcp.md).", env=("MCP_TOOL_SEARCH",))
    mcp_tool_search_share: float = _setting(0.1, _number(float, 0, 1), "auto: past this share of the window.",
                                            env=("MCP_TOOL_SEARCH_SHARE",))
    mcp_tool_search_tools: int = _setting(40, _number(int, 0), "auto: past this many tools.",
                                          env=("MCP_TOOL_SEARCH_TOOLS",))
    mcp_tool_search_window: int = _setting(32768, _number(int, 1), "Tokens the tools must fit in (the smallest "
                                           "window MCP clients use).", env=("MCP_TOOL_SEARCH_WINDOW",))
    # --- observe
    debug: bool = _setting(False, as_bool, "One log line per request and upstream details (secrets redacted).",
                           env=("DEBUG", "VERBOSE"), flags=("--debug", "--verbose", "-v"), negative_flags=("--quiet", "-q"),
                           yaml_aliases=("verbose",))
    log_dir: str = _setting("", as_optional_dir, "Directory for JSONL journals and log.log; off when empty. Created mode 700, its "
                            "files 600 (they hold every prompt and answer). One the server cannot write stops "
                            "serving with one line (`keys` and `--show` do not need it).",
                            env=("LOG_DIR",), flags=("--output_path", "--log-dir"))
    journal_body_bytes: int = _setting(1024 * 1024, _number(int, 1),
                                       "Largest body a journal records whole; a longer one (a request, an answer, "
                                       "a stream) is recorded as its first this-many bytes, its length and sha256.",
                                       env=("JOURNAL_BODY_BYTES",), flags=("--journal-body-bytes",))
    request_log_rows: int = _setting(100_000, _number(int, 0),
                                     "Rows the request log keeps in the key store (an index of the journal's lines, "
                                     "with LOG_DIR and ENABLE_AUTH; the oldest go first); 0: no request log.",
                                     env=("REQUEST_LOG_ROWS",), flags=("--request-log-rows",))
    journal_tool_arguments: bool = _setting(False, as_bool, "Each MCP tool call's journal line holds its arguments "
                                            "too (docs/mcp.md).",
                                            env=("JOURNAL_TOOL_ARGUMENTS",), flags=("--journal-tool-arguments",))
    tracing: str = _setting("auto", as_tracing, "OpenTelemetry traces of every request, sent over OTLP/HTTP: on, off, "
                            "or auto (on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is "
                            "set). The OTEL_* variables configure the rest (docs/tracing.md).",
                            env=("TRACING",), flags=("--tracing",))
    tracing_content: bool = _setting(False, as_bool, "Record prompts and answers on the spans (gen_ai.input.messages, "
                                     "gen_ai.output.messages, configured secrets replaced); off: never.",
                                     env=("TRACING_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
                                     flags=("--tracing-content",))
    # --- where settings come from (not read from YAML)
    config_path: str = _setting("", as_str, "config.yaml to read (default ./config.yaml, then ~/.config/argoproxy/config.yaml).",
                                env=("CONFIG_PATH",), flags=("--config",))

    def public_items(self) -> list[tuple[str, Any]]:
        """(name, value) pairs with secrets and URL credentials masked, for start-up banners and --show."""
        from argoproxy.redaction import mask_url
        return [(f.name, "***" if f.metadata["secret"] and getattr(self, f.name)
                 else mask_url(value) if isinstance(value := getattr(self, f.name), str) else value)
                for f in dataclasses.fields(self)]


CoreSettings = Settings  # the core settings, as the providers' fragments and their tests name them

# The class the loader builds: the core fields, then every registered provider's fragment (found at run time:
# a provider package outside argoproxy/ adds its own). Only its instances carry the providers' fields; the
# type checker sees a `Settings`, and a provider its own view.
ComposedSettings: type[Settings] = dataclass(frozen=True)(
    type("Settings", (*providers.settings_fragments(), Settings), {"__module__": __name__, "__doc__": Settings.__doc__}))

SETTING_FIELDS = {f.name: f for f in dataclasses.fields(ComposedSettings)}


SQLITE_HEADER = b"SQLite format 3\x00"


def admission_on(settings: Settings) -> bool:
    """Does any deployment have a concurrency limit (docs/admission.md)?"""
    return bool(settings.models) and (settings.max_concurrency != 0
                                      or any(e.max_concurrency for e in settings.models))


def keys_db_problem(settings: Settings) -> str | None:
    """KEYS_DB, where team keys are read from: absent (no key made yet), or an SQLite file this process can read.
    A directory or another kind of file made every request with a team key a 500."""
    if not settings.enable_auth or settings.redis_url or not settings.keys_db:
        return None
    path = Path(settings.keys_db).expanduser()
    if not path.exists():
        return None
    if not path.is_file():
        return f"KEYS_DB: {path} is not a file (team keys are kept in an SQLite file)"
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"KEYS_DB: cannot read {path}: {exc.strerror}"
    if head and head != SQLITE_HEADER:
        return f"KEYS_DB: {path} is not an SQLite database (`cot-proxy keys create` makes one)"
    return None


def responses_db_problem(settings: Settings) -> str | None:
    """RESPONSES_DB: absent (made at the first stored response, with its directory), or an SQLite file; a
    directory or another kind of file would make every stored response a 503."""
    if not settings.responses_store or settings.redis_url or not settings.responses_db:
        return None
    path = Path(settings.responses_db).expanduser()
    if not path.exists():
        return None
    if not path.is_file():
        return f"RESPONSES_DB: {path} is not a file (stored responses are kept in an SQLite file)"
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"RESPONSES_DB: cannot read {path}: {exc.strerror}"
    if head and head != SQLITE_HEADER:
        return f"RESPONSES_DB: {path} is not an SQLite database"
    return None


def default_responses_db(keys_db: str, config_path: str) -> str:
    """responses.db in the proxy's data directory: beside the team keys' file."""
    return str(Path(keys_db or default_keys_db(config_path)).expanduser().with_name("responses.db"))


def default_keys_db(config_path: str) -> str:
    return str((Path(config_path).parent if config_path else Path.cwd()).absolute() / "keys.db")
CONFIG_SEARCH_PATH = ("./config.yaml", "~/.config/argoproxy/config.yaml")
_NOT_FROM_YAML = {"config_path"}


def _yaml_names(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    aliases: tuple[str, ...] = f.metadata["yaml_aliases"]
    return (f.name, *aliases)


def find_config(explicit: str, label: str = "CONFIG_PATH",
                search: tuple[str, ...] = CONFIG_SEARCH_PATH) -> Path | None:
    """The config file to read: the explicit path (which must exist), else the first of the search path.
    `label`: how the user gave the path (CONFIG_PATH, or the command line's config argument); `search`: `cot-proxy
    run` leaves out ./config.yaml in a directory the user has not trusted (argoproxy/launch/sources.py)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise SettingsError(f"{label}: config file {explicit} does not exist")
        if path.is_dir():
            raise SettingsError(f"{label}: {explicit} is a directory, not a config file")
        return path  # a file, or what reads as one (/dev/null: an empty config; a pipe)
    for candidate in search:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


MAX_CONFIG_BYTES = 8 * 1024 * 1024  # a config file is read whole; CONFIG_PATH=/dev/zero must not be


def read_yaml(path: Path, label: str = "CONFIG_PATH") -> dict[str, Any]:
    try:
        data = yaml.load(file_text(path, MAX_CONFIG_BYTES, "config file"), Loader=UniqueKeyLoader) or {}
    except RepeatedKey as rep:
        raise SettingsError(f"{rep.key}: given twice in {path} (again on line {rep.line})") from None
    except ValueError as exc:  # too long, or not UTF-8
        raise SettingsError(f"{label}: {path} {exc}") from None
    except yaml.MarkedYAMLError as exc:
        raise SettingsError(yaml_mistake(path, exc)) from None
    except (OSError, yaml.YAMLError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SettingsError(f"{label}: cannot read {path}: {first_line}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{label}: {path} must hold a YAML mapping of keys to values")
    known = {name for f in SETTING_FIELDS.values() for name in _yaml_names(f)}
    unknown = sorted(set(data) - known)
    if unknown:
        key = unknown[0]
        written = str(key).lower()  # as for a mistyped environment variable (misspelled below)
        close = difflib.get_close_matches(written, sorted(known), n=1, cutoff=0.75) or \
            [name for name in sorted(known, key=len, reverse=True) if len(name) >= 8 and written.startswith(name)]
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SettingsError(f"{key}: unknown key in {path}{hint}")
    return data


@dataclass(frozen=True)
class Loaded:
    """What the loader built: the Settings, why their backend was chosen when nobody named it, warnings
    (settings given that the backend will not use) for the start-up output, and the settings given a value
    anywhere (config file, environment, .env, flags), by field name: a default nobody chose is not one of them."""

    settings: Settings
    backend_reason: str = ""
    warnings: tuple[str, ...] = ()
    given: frozenset[str] = frozenset()


def load_settings(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the Settings: defaults < config.yaml < environment < flags (flags already parsed, by field name)."""
    return load(flags, environ).settings


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
         search: tuple[str, ...] = CONFIG_SEARCH_PATH) -> Loaded:
    """The one loader of every entry point: file, environment and flags read the same way, the backend
    chosen by argoproxy/config/backend_choice.py's rules, a bad or contradictory setting a SettingsError."""
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    path, given = _given(flags, environ, search)
    raw = {g.name: (g.label, g.value) for g in given}  # the last source of each setting wins
    values = {name: _parse(SETTING_FIELDS[name], label, value) for name, (label, value) in raw.items()}
    try:
        choice = choose_backend(given, str(path) if path else "config.yaml", as_bool)
    except BackendConflict as exc:
        raise SettingsError(str(exc)) from None
    values["backend"] = choice.backend
    values["config_path"] = str(path) if path else ""
    settings = _checked(_with_backend_defaults(ComposedSettings(**values)), environ)
    _not_itself(settings, raw.get("target_base_url", ("TARGET_BASE_URL", None))[0])
    return Loaded(settings, choice.reason, choice.warnings + _load_warnings(settings, given, environ),
                  frozenset(name for name, (_, value) in raw.items() if value is not None and str(value).strip()))


def _given(flags: dict[str, Any], environ: Mapping[str, str],
           search: tuple[str, ...]) -> tuple[Path | None, list[Given]]:
    """The config file found, and every value given, in precedence order: the file's, the environment's, the
    flags'."""
    config_path = flags.get("config_path") or _first_env(SETTING_FIELDS["config_path"], environ)[1] or ""
    label = "config (the command line's config file)" if flags.get("config_path") else "CONFIG_PATH"
    path = find_config(config_path, label, search)
    given = _from_file(path, label) if path is not None else []
    for f in SETTING_FIELDS.values():
        label, value = _first_env(f, environ)
        if label:
            given.append(Given(f.name, label, "env", value))
    for name, value in flags.items():
        if value is not None and name != "config_path":
            given.append(Given(name, _flag_label(name), "flag", value))
    return path, given


def _from_file(path: Path, label: str) -> list[Given]:
    given = []
    for key, value in read_yaml(path, label).items():
        name = next(f.name for f in SETTING_FIELDS.values() if key in _yaml_names(f))
        if name not in _NOT_FROM_YAML:
            given.append(Given(name, key, "file", value))
    return given


def _load_warnings(settings: Settings, given: list[Given], environ: Mapping[str, str]) -> tuple[str, ...]:
    """Settings given that will not be used, and what else start-up warns of (after the backend choice's)."""
    return (_unused_with_models(settings, given) + _unused_by_other_settings(settings, given)
            + _fallbacks_past_calls(settings) + listener.exposure_warnings(settings, environ)
            + tracing_warnings(settings.tracing, settings.tracing_content, {g.name for g in given}, environ)
            + misspelled(environ, ENV_NAMES))


ENV_NAMES = frozenset(e for f in SETTING_FIELDS.values() for e in (f.metadata.get("env") or ()))


# Settings read only when another setting allows it: field -> (whether it is read, why not). Providers add
# the rules of their own settings (Provider.used_only_when).
_USED_ONLY_WHEN: dict[str, tuple[Callable[[Settings], bool], str]] = {
    **{field: rule for p in providers.all_providers() for field, rule in p.used_only_when.items()},
    # Keys without ENABLE_AUTH: the user expects a guarded proxy and would get an open one.
    "api_key_secret": (lambda s: s.enable_auth, "enable_auth is off"),
    "api_key_file": (lambda s: s.enable_auth, "enable_auth is off"),
    "threads": (lambda s: s.worker_class == "gthread", "the worker class is {worker_class}, not gthread"),
    "worker_connections": (lambda s: s.worker_class == "gevent", "the worker class is {worker_class}, not gevent"),
    "websocket_threads": (lambda s: s.worker_class == "gthread", "the worker class is {worker_class}, not gthread"),
    **{name: (lambda s: s.worker_class != "sync", "the sync worker class holds no WebSocket (the upgrade is "
                                                  "answered 426)") for name in ("websocket_lifetime", "websocket_idle",
                                                                               "websocket_connections",
                                                                               "websocket_connections_per_key")},
    # Host names are checked only where a browser could be made to reach the proxy by DNS rebinding.
    "allowed_hosts": (lambda s: not s.socket and listener.is_loopback(s.host),
                      "the proxy does not listen on a loopback TCP address (only there are host names checked)"),
    "keys_db": (lambda s: s.enable_auth and not s.redis_url, "team keys are read from it only with ENABLE_AUTH on "
                                                             "and no REDIS_URL"),
    "key_cache_seconds": (lambda s: s.enable_auth, "enable_auth is off (there are no team keys)"),
    "redis_outage": (lambda s: s.enable_auth and bool(s.redis_url), "it applies to team keys kept in Redis "
                                                                    "(ENABLE_AUTH and REDIS_URL)"),
    "redis_url": (lambda s: s.enable_auth or bool(s.models) or s.responses_store,
                  "neither team keys (ENABLE_AUTH), routing (models) nor stored responses (RESPONSES_STORE) use it"),
    # Stored responses' own (argoproxy/state/).
    "responses_db": (lambda s: s.responses_store and not s.redis_url,
                     "stored responses are kept in it only with RESPONSES_STORE on and no REDIS_URL"),
    **{name: (lambda s: s.responses_store, "RESPONSES_STORE is off (no responses are stored)")
       for name in ("responses_retention", "responses_max_bytes_per_key", "responses_max_bytes",
                    "responses_background_max", "responses_background_per_key")},
    "responses_admin_reads": (lambda s: s.responses_store and s.enable_auth,
                              "there is no admin key to allow (ENABLE_AUTH off) or nothing is stored"),
    # Routing's own: fallbacks that look configured and do nothing were the misleading case.
    **{name: (lambda s: bool(s.models), "MODELS is not set (they apply to its deployments)")
       for name in ("fallbacks", "cooldown_seconds", "health_probe_seconds", "routing_strategy", "max_concurrency")},
    **{name: (lambda s: admission_on(s), "no deployment has a concurrency limit (MAX_CONCURRENCY or an entry's "
                                         "max_concurrency): admission is off")
       for name in ("admission_max_wait", "admission_key_share", "admission_weights", "admission_queue_size")},
    "self_hosted": (lambda s: not s.models or any(not e.base_url and e.backend == s.backend for e in s.models),
                    "every `models` entry names its own upstream (an entry says `self_hosted: true` itself)"),
    "meter_image_tokens": (lambda s: s.enable_auth or bool(s.key_limits) or admission_on(s),
                           "no limit reads a request's worst case (ENABLE_AUTH off, no key_limits, admission off)"),
    "journal_body_bytes": (lambda s: bool(s.log_dir), "LOG_DIR is not set (no journals are written)"),
    "request_log_rows": (lambda s: bool(s.log_dir and s.enable_auth),
                         "LOG_DIR or ENABLE_AUTH is not set (no request log is kept)"),
    "journal_tool_arguments": (lambda s: bool(s.log_dir and s.mcp_servers),
                               "LOG_DIR is not set or no mcp_servers are (no tool call is journaled)"),
    **{name: (lambda s: any(server.per_session for server in s.mcp_servers),
              "no mcp_servers entry sets per_session (every session shares its server's process)")
       for name in ("mcp_session_processes", "mcp_session_processes_per_key")},
    **{name: (lambda s: bool(s.mcp_servers), "no mcp_servers are configured (/mcp is forwarded)")
       for name in ("mcp_streams", "mcp_streams_per_key", "mcp_tool_search", "mcp_tool_search_share",
                    "mcp_tool_search_tools", "mcp_tool_search_window")},
    "metrics_public": (lambda s: s.enable_auth, "enable_auth is off (/metrics is open to every client anyway)"),
    **{name: (lambda s: bool(s.oidc_issuer and s.mcp_servers), "OIDC_ISSUER or mcp_servers is not set (/mcp is no "
                                                                 "OAuth protected resource)")
       for name in ("mcp_oauth_server", "mcp_oauth_scopes")},
    **{name: (lambda s: any(server.auth in ("per_user", "token_exchange") for server in s.mcp_servers),
              "no mcp_servers entry sets auth: per_user or token_exchange")
       for name in ("credentials_key_file", "mcp_user_sessions_per_server")},
    "fronts_passthrough": (lambda s: s.backend == "openai" or bool(s.models), "only the openai backend passes "
                                                                            "fronts through"),
}
_CONSEQUENCE = {"api_key_secret": ": clients need no key (ENABLE_AUTH=true requires one)",
                "api_key_file": ": clients need no key (ENABLE_AUTH=true requires one)"}


def _unused_by_other_settings(settings: Settings, given: Sequence[Given]) -> tuple[str, ...]:
    warnings = []
    for g in given:
        rule = _USED_ONLY_WHEN.get(g.name)
        if rule is None or rule[0](settings) or not str(g.value if g.value is not None else "").strip():
            continue
        why = rule[1].format(worker_class=settings.worker_class)
        warnings.append(f"{g.label} is set, but {why}, so it is not used{_CONSEQUENCE.get(g.name, '')}")
    return tuple(dict.fromkeys(warnings))  # a key given in the file and again in the environment: once


_THIS_HOST = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"})


def _not_itself(settings: Settings, label: str) -> None:
    """An upstream that is this proxy (a loopback address, its own port) would forward every request to
    itself until its connections run out. OPENAI_BASE_URL is the usual way in: the openai SDK reads it as
    where to send requests, so users export it to point clients at the proxy."""
    if not providers.get(settings.backend).uses_target_url or settings.models or not settings.target_base_url \
            or settings.socket:  # on a Unix socket the proxy has no port to loop to
        return
    parts = urlsplit(settings.target_base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if (parts.hostname or "").lower() in _THIS_HOST and port == settings.port:
        raise BadValue(f"{label}: {mask_url(settings.target_base_url)} is this proxy itself (port {port}): "
                            "requests would loop; set the upstream server's URL (an SDK's OPENAI_BASE_URL "
                            "pointing at the proxy belongs to the client's environment, not the proxy's)")


def _unused_with_models(settings: Settings, given: Sequence[Given]) -> tuple[str, ...]:
    """With a `models` list, TARGET_BASE_URL serves only entries of the top-level backend that name no
    base_url, when that backend sends to it (ARGO entries use ARGO's URLs); when no entry is such, it is a
    setting that will not be used.
    FRONTS_PASSTHROUGH is not used either: routed front-door requests are translated, so they can fail over."""
    if not settings.models:
        return ()
    passthrough = tuple(f"{g.label} is set, but with `models` the front doors translate for every deployment, "
                        "so it is not used" for g in given if g.name == "fronts_passthrough" and settings.fronts_passthrough)
    if any(not e.base_url and e.backend == settings.backend for e in settings.models) \
            and providers.get(settings.backend).uses_target_url:
        return passthrough
    return passthrough + tuple(f"{g.label} is set, but every `models` entry names its own upstream, so it is not used"
                               for g in given if g.name == "target_base_url")


def _fallbacks_past_calls(settings: Settings) -> tuple[str, ...]:
    """A fallback chain longer than MAX_UPSTREAM_CALLS: its last models are never asked (each model of a chain
    takes at least one call of the request's budget)."""
    return tuple(f"FALLBACKS: `{name}` and its fallbacks are {1 + len(targets)} models, and MAX_UPSTREAM_CALLS is "
                 f"{settings.max_upstream_calls}: {', '.join(targets[settings.max_upstream_calls - 1:])} never asked"
                 for name, targets in settings.fallbacks if 1 + len(targets) > settings.max_upstream_calls)


def _flag_label(name: str) -> str:
    """How a flag setting is named in messages: its first command-line flag."""
    f = SETTING_FIELDS.get(name)
    flags = f.metadata["flags"] if f is not None else ()
    return flags[0] if flags else "--" + name.replace("_", "-")


def _checked(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """Rules that involve more than one setting. Those about values given are BadValue (no first-run question
    fixes them: run_app.sh --socket /tmp/x.sock asked the whole first run, then named SOCKET); a backend's own
    rules may name a setting missing."""
    try:
        check_routing(settings.models, settings.fallbacks, settings.key_limits, providers.names(), environ)
    except ValueError as exc:
        raise BadValue(str(exc)) from None
    problem = listener.socket_problem(settings.socket) or listener.key_file_problem(settings) \
        or listener.own_key_problem(settings) or keys_db_problem(settings) or responses_db_problem(settings) \
        or tracing_problem(settings.tracing, environ) or missing_tokens(settings.mcp_servers, environ) \
        or signin_problem(settings) or per_person_problem(settings.mcp_servers, bool(settings.oidc_issuer))
    if problem:
        raise BadValue(problem)
    # Each provider's own rules: for the top-level backend when it serves (no `models`), and for every
    # backend a `models` entry uses.
    if not settings.models:
        problem = providers.get(settings.backend).check_settings(settings)
        if problem:
            raise SettingsError(problem)
    for i, entry in enumerate(settings.models):
        problem = providers.get(entry.backend).check_settings(dataclasses.replace(settings, backend=entry.backend))
        if problem:
            raise SettingsError(f"{problem} (for models[{i}])")
    return settings


def _first_env(f: dataclasses.Field[Any], environ: Mapping[str, str]) -> tuple[str, str | None]:
    for var in f.metadata["env"]:
        if var in environ:
            return var, environ[var]
    return "", None


def _parse(f: dataclasses.Field[Any], label: str, value: Any) -> Any:
    try:
        return f.metadata["parse"](value)
    except (ValueError, TypeError) as exc:
        text = str(exc)  # "[2].base_url: ..." from a list or mapping setting reads "models[2].base_url: ..."
        raise BadValue(f"{label}{text}" if text[:1] in "[." and text[:1] else f"{label}: {text}") from None


def _with_backend_defaults(settings: Settings) -> Settings:
    """Fill settings whose default depends on the backend (the target URL) or on other settings when nothing
    set them."""
    changes = {}
    for f in SETTING_FIELDS.values():
        by_backend = f.metadata["by_backend"]
        if by_backend and getattr(settings, f.name) == f.default:
            changes[f.name] = by_backend.get(settings.backend, f.default)
    settings = dataclasses.replace(settings, **changes) if changes else settings
    derived = {f.name: f.metadata["derived"](settings) for f in SETTING_FIELDS.values()
               if f.metadata["derived"] and getattr(settings, f.name) == f.default}
    return dataclasses.replace(settings, **derived) if derived else settings
