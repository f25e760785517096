"""The argo backends' shared part: Argonne's ARGO gateway behind an OpenAI API. Two backends share it, chosen
by use_native_openai (the Provider record's backend_for): standard mode (standard.py) translates chat, legacy
completions and embeddings to ARGO's own JSON; native mode (native.py) sends the OpenAI requests untransformed
to ARGO's OpenAI-compatible API. Both map model aliases, set the user and inline images, and both serve the
raw routes /v1/chat and /v1/embed (ARGO's JSON) and /v1/status (a hello through ARGO's chat endpoint).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from urllib.parse import parse_qs
from typing import TYPE_CHECKING, Any, Callable, Iterator

import requests

from argoproxy.upstream import images
from argoproxy.pipeline.call import Call
from argoproxy.meter import ARGO, count_text
from argoproxy.redaction import mask_url
from argoproxy.errors import ProxyError
from argoproxy.edge.http_objects import Answer
from argoproxy.upstream.probe import probe
from argoproxy.jsonfast import dumps
from argoproxy.providers.argo import convert, models, normalize, stream, text_call_answers
from argoproxy.providers.argo.live_models import LiveModels
from argoproxy.providers.argo.settings import model_list_url, own_url
from argoproxy.providers.argo.text_calls import DEFAULT_LIMIT as TEXT_CALL_LIMIT
from argoproxy.providers.base import Backend, Prepared, Send
from argoproxy.edge.request_body import parse_object
from argoproxy.upstream.client import READ_ERRORS
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, read_chunks

if TYPE_CHECKING:
    from argoproxy.providers.argo.settings import ArgoConfig
    from argoproxy.upstream.client import Upstream

STATUS_PROMPT = "Say hello"
KEY_HEADERS = ("Authorization", "X-Api-Key", "Api-Key")


@dataclass
class ArgoState:
    """What an ARGO backend decided while preparing one request, for its encode and decode."""
    user: str
    model_id: str  # the ARGO model id sent
    family: str = ""  # standard mode: the model family (openai, anthropic, google), for its tool encoding
    prompt_tools: bool = False  # standard mode: tools described in the prompt, calls parsed from the text
    text_calls: frozenset[str] | None = None  # tool names a Claude answer may write as text calls


class ArgoBackend(Backend):
    """What standard and native mode share; each mode's backend prepares the body in its own way."""

    name = "argo"
    mode = ""  # "standard" or "native", as /health says
    tool_turn_content = None  # argo-proxy, the gateway's reference client, sends null beside tool calls
    completion_routes = frozenset({"argo_status"})  # its "Say hello" answer: think text stripped as on chat
    reading = ARGO  # n other than 1 refused, a list of prompts asked as one
    names_vendor = True  # ARGO serves OpenAI's, Anthropic's and Google's models: priced at the vendor's prices
    settings: ArgoConfig  # the core settings and ARGO's own, typed

    def __init__(self, settings: ArgoConfig, upstream: Upstream) -> None:
        super().__init__(settings, upstream)
        self.fallback = settings.model_fallback or None
        if self.fallback:
            models.resolve_model(self.fallback)  # a bad fallback fails at start-up, not per request
        url = model_list_url(settings)
        self.live_models = LiveModels(url, self.upstream.send) if url else None
        self.image_options = images.ImageOptions(
            enable_payload_control=settings.enable_payload_control, max_payload_size=settings.max_payload_size,
            image_timeout=settings.image_timeout, concurrent_downloads=settings.concurrent_downloads,
            allow_private=settings.image_allow_private, max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels)
        self._image_session: requests.Session | None = None

    def priced_as(self, model: str) -> tuple[str, tuple[str, ...]] | None:
        """The vendor of an ARGO model (its family: openai, anthropic, google) and the vendor's names for it: its
        aliases without `argo:` (claude-opus-4.1, o1-preview), dots also as dashes (claude-opus-4-1)."""
        for kind in ("chat", "embed"):
            table = self.models_table(model, kind)
            model_id = table.lookup(model, kind)
            if model_id is None:
                continue
            family = models.model_family(model_id)
            if family == "unknown":
                return None
            bare = [alias.split(":", 1)[-1] for alias in table.models(kind).get(model_id, ())]
            latest = [f"chat{name}" for name in bare if name.startswith("gpt-") and name.endswith("-latest")]
            return family, tuple(dict.fromkeys([*bare, *(name.replace(".", "-") for name in bare), *latest, model_id]))
        return None

    def user_for(self, call: Call) -> str:
        """The ARGO user: the team key's own ARGO username, else its owner's (KeyRecord.argo_name, read with the
        key by auth: docs/backends/argo-per-person.md); else the client's key with username passthrough; else the
        configured user. With auth on, the proxy's own key is never a username: auth removed it, and kept only
        values it did not accept."""
        request = call.client.request
        record = request.team_key if request is not None else None
        if record is not None and record.argo_name:
            return record.argo_name
        if self.settings.username_passthrough:
            withheld = request.withheld if request is not None else {}
            for name in KEY_HEADERS:
                value = (call.plan.headers.get(name) or withheld.get(name) or "").strip()
                if value[:7].lower() == "bearer ":
                    value = value[7:].strip()
                if value:
                    return value
        return self.settings.user

    # ------------------------------------------------------------------ request side
    # ------------------------------------------------------------------ request side
    def prepare(self, call: Call) -> Prepared:
        body = call.planned.body
        timed = "timeout" in body
        timeout = pop_timeout(body) if timed else None  # the proxy's, never sent upstream
        prepared = self.prepare_body(call, self.user_for(call), "embed" if call.plan.kind == "embeddings" else "chat")
        if not timed:
            return prepared
        return replace(prepared, timeout=timeout, changed=prepared.changed + ("timeout",))

    @staticmethod
    def served_name(call: Call) -> str | None:
        """The model this call is served as: the body's (a routed fallback's name, LLM_PARAMS' upstream name),
        else the name asked for."""
        model = call.planned.body.get("model")
        return model if isinstance(model, str) and model else call.plan.model

    @staticmethod
    def state(call: Call) -> ArgoState:
        state = call.planned.backend_state
        assert isinstance(state, ArgoState), "prepare runs before encode and decode"
        return state

    def prepare_body(self, call: Call, user: str, kind: models.Kind) -> Prepared:
        """The mode's own preparation of call.planned.body (in place), for this ARGO user and model kind; its state
        an ArgoState."""
        raise NotImplementedError

    @staticmethod
    def text_calls(call: Call) -> frozenset[str] | None:
        """Claude on ARGO may write a tool call into its text (docs/text-tool-calls.md): the answer to a chat
        request that declares tools is scanned for calls naming them (None: nothing to scan for)."""
        if call.plan.kind == "chat" and call.planned.body.get("tools"):
            return text_call_answers.declared_names(call.planned.body) or None
        return None

    def inline_images(self, body: dict[str, Any]) -> bool:
        """Remote images as data URLs, in place; True when there were any (the body changed)."""
        if not _has_remote_images(body):
            return False
        if self._image_session is None:
            self._image_session = images.image_session(self.settings.concurrent_downloads)
        inlined = images.inline_images(body, self.image_options, self._image_session)
        if inlined is not body:
            body.clear()
            body.update(inlined)
        return True

    def front_model(self, front: str, model: str | None) -> str | None:
        return native_model(model, "chat", self.models_table(model)) if model else model

    @property
    def text_call_limit(self) -> int:
        """The largest text-written call taken (characters): 1 MiB, or MAX_SSE_EVENT_BYTES when smaller."""
        return min(TEXT_CALL_LIMIT, self.settings.max_sse_event_bytes)

    # ------------------------------------------------------------------ other routes
    def models_table(self, name: str | None = None, kind: models.Kind = "chat") -> models.ModelTable:
        """The table to resolve `name` with (every model's, for a listing): the built-in one, with ARGO's own
        list once read (live_models.py)."""
        return self.live_models.table(name, kind) if self.live_models is not None else models.BUILTIN

    def resolve(self, name: Any, kind: models.Kind, fallback: str | None = None) -> str:
        return models.resolve_model(name, kind, fallback=fallback, table=self.models_table(name, kind))

    def list_models(self, call: Call) -> dict[str, Any]:
        return models.list_models(table=self.models_table())

    def model_entry(self, name: str, listing: list[Any]) -> dict[str, Any] | None:
        """Any name a request may use (an alias in any accepted spelling, the internal id `gpt4o`) is
        retrievable: the listed entry it resolves to, under the name asked, as OpenAI answers."""
        exact = super().model_entry(name, listing)
        if exact is not None:
            return exact
        for kind in ("chat", "embed"):
            model_id = self.models_table(name, kind).lookup(name, kind)
            entry = next((e for e in listing if isinstance(e, dict) and model_id
                          and e.get("internal_name") == model_id), None)
            if entry is not None:
                return {**entry, "id": name}
        return None

    def extra_routes(self) -> list[tuple[Any, ...]]:
        return [("v1/chat", "argo_chat", ("POST",), self.raw_chat, self.chat_models),
                ("v1/embed", "argo_embed", ("POST",), self.raw_embed, self.embed_models),
                ("v1/status", "argo_status", ("GET", "HEAD"), self.status)]  # the proxy's own probe: names none

    def chat_models(self, call: Call, named: Callable[..., None]) -> None:
        """The guard's reader for /v1/chat: the model asked for, as the ARGO id it resolves to."""
        self._raw_models(call, named, "chat", None)

    def embed_models(self, call: Call, named: Callable[..., None]) -> None:
        self._raw_models(call, named, "embed", "v3small")

    def _raw_models(self, call: Call, named: Callable[..., None], kind: models.Kind, default: str | None) -> None:
        """The model asked for and the ARGO id it resolves to, which passes for it (ALLOWED_MODELS and a team key's
        globs take either, as on the /v1 routes)."""
        asked = parse_object(call.plan.raw_body).get("model") or default
        named(asked, self.resolve(asked, kind, fallback=self.fallback))

    def raw_chat(self, call: Call, send: Send) -> Answer:
        """ARGO's own chat JSON in and out (raw text when streaming), after user and model preparation."""
        body, timeout = self._raw_body(call)
        model_id = self._admitted(send, body.get("model"), "chat")
        streaming = body.get("stream") is True
        argo_body = normalize.normalize_chat({k: v for k, v in body.items() if k != "stream"}, model_id=model_id,
                                             user=self.user_for(call), upstream_stream=streaming)
        if streaming and self.settings.real_stream:
            argo_body["stream"] = True
            req = UpstreamRequest("POST", self.settings.argo_stream_url,
                                  {"Content-Type": "application/json", "Accept-Encoding": "identity"}, dumps(argo_body),
                                  timeout)
            resp = send(req, raw_error)
            return Answer(_closing(resp, read_chunks(resp)), 200, content_type="text/plain; charset=utf-8")
        req = UpstreamRequest("POST", self.settings.argo_url, {"Content-Type": "application/json"}, dumps(argo_body),
                              timeout)
        with send(req, raw_error) as resp:
            data = resp.content
        if streaming:  # pseudo-stream: the text, in slices, as plain text
            text, _ = convert.text_and_tool_calls(convert.response_payload(convert.parse_argo_json(data)))
            return Answer(_slices(text), 200, content_type="text/plain; charset=utf-8")
        return Answer(data, 200, content_type="application/json")

    def raw_embed(self, call: Call, send: Send) -> Answer:
        body, timeout = self._raw_body(call)
        body["model"] = self._admitted(send, body.get("model") or "v3small", "embed")
        body["user"] = self.user_for(call)
        if "prompt" not in body and "input" in body:
            value = body.pop("input")
            body["prompt"] = value if isinstance(value, list) else [value]
        req = UpstreamRequest("POST", self.settings.argo_embedding_url, {"Content-Type": "application/json"},
                              dumps(body), timeout)
        with send(req, raw_error) as resp:
            return Answer(resp.content, resp.status_code, content_type="application/json")

    def status(self, call: Call, send: Send) -> Answer:
        """A real "Say hello" chat through the configured (or default) model, as a chat.completion."""
        model = self.fallback or "gpt4o"
        send.serves(model, model)
        argo_body = convert.chat_request_to_argo({"messages": [{"role": "user", "content": STATUS_PROMPT}]},
                                                 model_id=model, user=self.settings.user)
        req = UpstreamRequest("POST", self.settings.argo_url, {"Content-Type": "application/json"}, dumps(argo_body))
        with send(req, raw_error) as resp:
            parsed = convert.parse_argo_json(resp.content)
        obj = convert.chat_response_to_openai(parsed, model=model, prompt_tokens=count_text(STATUS_PROMPT))
        return Answer(dumps(obj), 200, content_type="application/json")

    def _raw_body(self, call: Call) -> tuple[dict[str, Any], float | None]:
        body = parse_object(call.plan.raw_body)
        return body, pop_timeout(body)

    def _admitted(self, send: Send, model: Any, kind: models.Kind) -> str:
        """The ARGO model id for a raw route (the guard held it to the allow-list: chat_models, embed_models),
        named to the sequence as the model served."""
        model_id = self.resolve(model, kind, fallback=self.fallback)
        send.serves(model if isinstance(model, str) else None, model_id)
        return model_id

    def health(self, query: str = "") -> dict[str, Any]:
        """No upstream call unless asked (?deep=1): then ARGO's chat URL (native: its OpenAI base) must answer."""
        if parse_qs(query).get("deep", [""])[-1] not in ("1", "true", "yes"):
            return {"status": "healthy", "backend": "argo", "mode": self.mode}
        url = own_url(self.settings)
        error = probe(self.upstream.session, url)
        if error:
            raise ProxyError(503, f"Health check failed: {error}", code="unhealthy")
        return {"status": "healthy", "backend": "argo", "target_url": mask_url(url), "deep": True}




def raw_error(call: Call, resp: UpstreamResponse) -> ProxyError:
    """An error of ARGO's own API (its raw routes, in native mode too), with ARGO's status and words."""
    return convert.error_from_argo(resp.status_code, resp.content)


def native_model(name: str, kind: models.Kind, table: models.ModelTable | None = None) -> str:
    """Aliases map to ARGO ids; in native mode any other name passes through unchanged."""
    try:
        return models.resolve_model(name, kind, table=table)
    except ProxyError:
        return name


def pop_timeout(body: dict[str, Any]) -> float | None:
    """A per-request `timeout` (seconds) from the body; it is the proxy's, never sent upstream."""
    if "timeout" not in body:
        return None
    value = body.pop("timeout")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ProxyError(400, "`timeout` must be a positive number of seconds.", param="timeout",
                         code="invalid_value")
    return float(value)


def _has_remote_images(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = part.get("image_url")
                    url = url.get("url") if isinstance(url, dict) else url
                    if isinstance(url, str) and url.startswith(("http://", "https://")):
                        return True
    return False


def _closing(resp: UpstreamResponse, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except READ_ERRORS:
        pass
    finally:
        resp.close()


def _slices(text: str) -> Iterator[bytes]:
    for start in range(0, len(text), stream.PSEUDO_PIECE_CHARS):
        yield text[start:start + stream.PSEUDO_PIECE_CHARS].encode()
        time.sleep(0.01)

