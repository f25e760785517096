"""The Ollama door's Front: its routes, its model list's shapes, its errors (`{"error": "..."}` with the HTTP
status) and its NDJSON stream. What every door gets from the pipeline (auth, the allow-list and a key's globs,
key limits, LLM_PARAMS, capability adaptation, routing, think tags, journals, metrics with `front="ollama"`) it
gets by being a Front (argoproxy/fronts/front.py).

FRONTS_PASSTHROUGH=ollama (openai backend, an upstream that is itself Ollama): the door steps aside and `/api/*` is
forwarded byte for byte, as before the door existed (docs/ollama.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

from argoproxy.edge.classify import Route
from argoproxy.edge.model_readers import members
from argoproxy.pipeline.reservation import Spelled
from argoproxy.errors import ProxyError
from argoproxy.fronts.front import DoorArgs, DoorRoute, Exchange, Front
from argoproxy.fronts.ollama import models
from argoproxy.fronts.ollama.answer import OllamaExchange, OllamaStream, keepalive_line, whole
from argoproxy.fronts.ollama.request import (bad, chat_request, embed_request, embeddings_request, generate_request,
                                             thinks)
from argoproxy.jsonfast import dumps

# The Ollama API version the door speaks (GET /api/version): the one whose docs/api.md it was built from.
VERSION = "0.13.0"
# Translated routes: the route kind -> (its name in the exchange, the request translator, the internal kind).
TRANSLATED = {"ollama_chat": ("chat", chat_request, "chat"), "ollama_generate": ("generate", generate_request, "chat"),
              "ollama_embed": ("embed", embed_request, "embeddings"),
              "ollama_embeddings": ("embeddings", embeddings_request, "embeddings")}
INTERNAL_PATHS = {"chat": "v1/chat/completions", "embeddings": "v1/embeddings"}
LOOKS_OLLAMA = re.compile(r"(?i)^/api(?:/|$)")
NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class OllamaArgs(DoorArgs):
    """Which of the door's routes the request came by (the body alone does not say)."""
    route: str = "ollama_chat"


GENERATES = Spelled(limits=(("options", "num_predict"),), supply=("options", "num_predict"), context_bounds=False)
EMBEDS = Spelled(generates=False)


class OllamaFront(Front):
    name = "ollama"
    routes = (DoorRoute("api/chat", "ollama_chat"), DoorRoute("api/generate", "ollama_generate"),
              DoorRoute("api/embed", "ollama_embed"), DoorRoute("api/embeddings", "ollama_embeddings"),
              DoorRoute("api/tags", "ollama_tags", "models", ("GET", "HEAD")),
              DoorRoute("api/ps", "ollama_ps", "models", ("GET", "HEAD")),
              DoorRoute("api/show", "model", "models", ("POST",)),
              DoorRoute("api/version", "ollama_version", "own", ("GET", "HEAD")))
    forwarded_prefixes = (("api",),)  # Ollama's other routes (pull, delete...), forwarded: errors in its shape
    forwarded_when_passed_through = True
    # Its API names models under other keys than `model`: /api/pull, /api/push, /api/delete, /api/show take `model`
    # or the older `name`; /api/create also the model it starts `from`; /api/copy `source` and `destination`.
    model_readers = (("/api/copy", members("source", "destination", "model", "name")),
                     ("/api/create", members("model", "name", "from")),
                     ("/api/*", members("model", "name")))
    # What changes the models everyone is served, and Ollama's account routes (who the server is signed in to
    # ollama.com as, and signing it out: /api/me, /api/signout, the older DELETE /api/user/keys/{key}).
    operator_paths = ("POST /api/pull", "POST /api/push", "POST /api/copy", "POST /api/create", "DELETE /api/delete",
                      "* /api/blobs/*", "* /api/me", "* /api/signout", "* /api/signin", "* /api/user", "* /api/user/*")
    forwarded_lists = ("GET /api/tags", "GET /api/ps")
    # Under FRONTS_PASSTHROUGH, what its forwarded bodies may generate: options.num_predict; a negative or absent
    # one generates until the model stops (Ollama shifts the context and goes on), so a limit is sent.
    spelled_paths = (("/api/chat", GENERATES), ("/api/generate", GENERATES), ("/api/embed", EMBEDS),
                     ("/api/embeddings", EMBEDS))
    texts_in_events = False  # a line's text is one JSON value, written once
    renamed = {"temperature": "options.temperature", "top_p": "options.top_p", "top_k": "options.top_k",
               "seed": "options.seed", "stop": "options.stop", "max_tokens": "options.num_predict",
               "presence_penalty": "options.presence_penalty", "frequency_penalty": "options.frequency_penalty",
               "response_format": "format", "reasoning_effort": "think"}

    # ------------------------------------------------------------ routes
    def looks_like_mine(self, target: str) -> bool:
        return LOOKS_OLLAMA.search(target) is not None

    def door_args(self, route: Route, query: str) -> DoorArgs | None:
        return OllamaArgs(route=route.kind)

    # ------------------------------------------------------------ translation
    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        kind = args.route if isinstance(args, OllamaArgs) else "ollama_chat"
        route, translate, internal = TRANSLATED[kind]
        request = translate(body)
        stops = tuple(request.get("stop") or ())
        ex = OllamaExchange(model=request["model"], stream=request.get("stream") is True, request=body,
                            thinking=thinks(body), asks_reasoning=body.get("think") not in (None, False),
                            stop_sequences=stops, kind=internal, path=INTERNAL_PATHS[internal],
                            route=route)
        return request, ex

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        ex.output = whole(completion, ollama(ex))
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        return OllamaStream(ollama(ex)).run(chunks)

    def encode_event(self, event: dict[str, Any]) -> bytes:
        return dumps(event["data"]) + b"\n"

    def stream_type(self, ex: Exchange) -> str:
        return NDJSON

    def keepalive_for(self, ex: Exchange) -> bytes:
        return keepalive_line(ollama(ex))

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        return {"error": err.get("message") or ""}

    # ------------------------------------------------------------ models and the door's own answers
    def model_list(self, data: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        return models.running(data) if kind == "ollama_ps" else models.tags(data)

    def model_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return models.show(entry)

    def listed(self, answer: Any, keep: Callable[[Any], bool]) -> Any:
        return models.kept(answer, keep)

    def model_named(self, body: Any) -> str | None:
        """/api/show names its model as `model` (older clients: `name`)."""
        if not isinstance(body, dict):
            raise bad("must be a JSON object.", "body")
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise bad("Field required: a string.", "model")
        return name

    def own_answer(self, kind: str) -> dict[str, Any]:
        if kind == "ollama_version":
            return {"version": VERSION}
        raise ProxyError(404, f"No route of kind {kind} on the Ollama door.", code="unknown_route")


def ollama(ex: Exchange) -> OllamaExchange:
    assert isinstance(ex, OllamaExchange), "an Ollama answer comes from an Ollama request"
    return ex
