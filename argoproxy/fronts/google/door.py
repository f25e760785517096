"""The Google door's Front: its routes, keys (`x-goog-api-key`, `?key=`), errors and stream framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from argoproxy.edge.classify import Route
from argoproxy.edge.paths import encode_path
from argoproxy.edge.request_models import query_values
from argoproxy.errors import ProxyError
from argoproxy.fronts.front import DoorArgs, Exchange, Front
from argoproxy.fronts.google.answer import GoogleExchange, chat_to_response, error_object
from argoproxy.fronts.google.embeddings import EMBED_METHODS, embed_request, embeddings_answer
from argoproxy.fronts.google.models import model_entry, model_list
from argoproxy.fronts.google.request import request_to_chat, thoughts_requested
from argoproxy.fronts.google.routes import (GOOGLE_ONLY, GOOGLE_UPLOADS, LOOKS_GOOGLE, google_route, split_method,
                                            sse_asked, unserved_method)
from argoproxy.fronts.google.stream import GoogleStream, framed


# Chat-completions parameter -> where the client set it (errors the chat request's checks raise name it).
RENAMED = {"temperature": "generationConfig.temperature", "top_p": "generationConfig.topP",
           "top_k": "generationConfig.topK", "max_tokens": "generationConfig.maxOutputTokens",
           "stop": "generationConfig.stopSequences", "seed": "generationConfig.seed",
           "presence_penalty": "generationConfig.presencePenalty",
           "frequency_penalty": "generationConfig.frequencyPenalty", "messages": "contents", "tools": "tools",
           "response_format": "generationConfig.responseMimeType",
           "reasoning_effort": "generationConfig.thinkingConfig"}
SSE_END = b"\r\n\r\n"  # Google ends its SSE events with CRLF pairs; every SSE reader takes them


@dataclass(frozen=True)
class GoogleArgs(DoorArgs):
    """The method the path names (a route kind: generate_content, embed_content...)."""
    method: str = "generate_content"


class GoogleFront(Front):
    name = "google"
    renamed = RENAMED
    key_headers = ("X-Goog-Api-Key",)
    key_params = frozenset({"key"})  # Google's `?key=`, read on this door's routes only
    key_hint = "`x-goog-api-key: <key>` or `?key=<key>`"
    joins_answer_pieces = True  # google-genai's chats replay a streamed answer as a model turn per chunk
    passes_through = False  # no backend serves Google's API
    # SSE comment lines break both Gemini SDKs' stream readers; a blank line is skipped by both (and is white
    # space between the elements of a JSON-array stream).
    keepalive_beat = b"\n"
    texts_in_events = False  # a chunk's text is encoded into its event as it is made (GoogleStream.emit)

    def route(self, parts: tuple[str, ...]) -> Route | None:
        key = tuple(p.lower() for p in parts[:2])
        if key[:1] in GOOGLE_ONLY:
            return google_route(parts)
        if key in GOOGLE_UPLOADS:  # google-genai's files.upload: not served, and never forwarded
            return Route("unknown", "unknown", encode_path(parts), front=self.name)
        if len(parts) > 2 and key == ("v1", "models") and split_method(parts[-1])[1] is not None:
            return google_route(parts)  # google-genai's default version is v1
        return None

    def claims_client(self, headers: Mapping[str, str], query: str) -> bool:
        """A Google SDK (x-goog-api-key or x-goog-api-client, or a `key` query parameter): OpenAI's and
        Anthropic's clients send none of them."""
        return "X-Goog-Api-Key" in headers or "X-Goog-Api-Client" in headers or \
            (bool(query) and bool(query_values(query, "key")))

    def looks_like_mine(self, target: str) -> bool:
        return LOOKS_GOOGLE.search(target) is not None

    def door_args(self, route: Route, query: str) -> DoorArgs | None:
        return GoogleArgs(model=route.model, stream=route.kind == "stream_generate_content", sse=sse_asked(query),
                          method=route.kind)

    def unserved(self, route: Route, method: str) -> ProxyError | None:
        if route.kind == "model" and method == "POST":
            return unserved_method(route.model or "")  # `x:embedContent` reads as a model named so
        return None

    def model_list(self, data: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        return model_list(data)

    def model_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return model_entry(entry)

    def to_chat(self, body: dict[str, Any], count_only: bool = False,
                args: DoorArgs | None = None) -> tuple[dict[str, Any], Exchange]:
        args = args or DoorArgs()
        method = args.method if isinstance(args, GoogleArgs) else "generate_content"
        if method in EMBED_METHODS:
            request = embed_request(body, args.model or "", batch=method == "batch_embed_contents")
            return request, GoogleExchange(model=args.model or "", stream=False, request=body, kind="embeddings",
                                           path="v1/embeddings", method=method)
        dropped: dict[str, None] = {}
        chat = request_to_chat(body, args, count_only=count_only, dropped=dropped)
        stops = tuple(chat.get("stop") or ())
        asked = thoughts_requested(body)
        ex = GoogleExchange(model=args.model or "", stream=chat.get("stream") is True, request=body, thinking=asked,
                            asks_reasoning=asked, stop_sequences=stops, dropped=tuple(dropped), sse=args.sse)
        return chat, ex

    def from_chat(self, completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
        if isinstance(ex, GoogleExchange) and ex.method in EMBED_METHODS:
            ex.output = embeddings_answer(completion, ex)
        else:
            ex.output = chat_to_response(completion, ex)
        return ex.output

    def stream(self, chunks: Iterable[dict[str, Any]], ex: Exchange) -> Iterator[dict[str, Any]]:
        return framed(GoogleStream(ex).run(chunks), isinstance(ex, GoogleExchange) and ex.sse is False)

    def encode_event(self, event: dict[str, Any]) -> bytes:
        """SSE (`data: {...}` + CRLF CRLF), or a piece of the JSON array (`[`, `,` before each element, `]`).
        An error that ends an SSE stream is the bare object, as Google writes one: google-genai's JavaScript
        reader (Gemini CLI's) raises only for a read that is such an object, and took `data: {"error": ...}`
        for a chunk with no candidates, so a stream cut short ended as a success; the Python one reads both."""
        frame: bytes | None = event.get("frame")
        if frame is not None and event["type"] == "end":
            return frame
        data: bytes = event["data"]
        if frame is None:
            return data + b"\r\n" if event["type"] == "error" else b"data: " + data + SSE_END
        return frame + data

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]:
        return error_object(status, err.get("message") or "", request_id)

    def client_key(self, headers: Mapping[str, str]) -> str | None:
        return None  # a Google API key is never an upstream's credential

    def upstream_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Google's own headers (x-goog-api-key, x-goog-api-client...) stay here."""
        return {k: v for k, v in headers.items() if not k.lower().startswith("x-goog-")}

    def stream_type(self, ex: Exchange) -> str:
        return "text/event-stream; charset=utf-8" if not isinstance(ex, GoogleExchange) or ex.sse \
            else "application/json; charset=utf-8"

    def count_answer(self, count: int) -> dict[str, Any]:
        return {"totalTokens": count, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": count}]}
