"""Does an upstream say it is a local server? The price rule's question (docs/spend.md): a server that says what it
is costs nothing, where an address alone no longer does (a relay to a paid API listens on loopback as well).

Asked at the server's root, beside /v1, in this order: llama.cpp's GET /props (`total_slots` and
`default_generation_settings`), vLLM's GET /version and Ollama's GET /api/version (an object holding `version`
alone). Each answer is read up to READ_MOST bytes within DEADLINE seconds, never followed through a redirect,
then dropped. An answer carrying cot_proxy's own X-Cot-Proxy-Request-ID is a proxy's, whatever it says (its Ollama
door answers /api/version, and it may be relaying to a paid API). Once per server root and KEPT_SECONDS (a server
restarted with another context is read again): Gunicorn's master asks before it forks (start-up's line), a worker
that finds nothing asked asks at first use; a server that could not be reached is asked again at most every
RETRY_SECONDS. Standard library only (the master imports no requests).

llama.cpp's answer also says the context each of its slots serves (`default_generation_settings.n_ctx`: the
server's context over its parallel slots), which its model list does not (`meta.n_ctx_train` is the model's
training context): kept as `Said.context`, the window a request gets there. Ollama's window is per model
(`ollama_windows`): the `num_ctx` its parameters set (POST /api/show, read within the same bounds), else Ollama's
default context; never the model's trained `<arch>.context_length`, which Ollama does not serve unless `num_ctx`
says so. Asked when the model list is read (at most MODELS_ASKED models, for LIST_SECONDS), each answer kept.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

READ_MOST = 1 << 20  # 1 MiB: llama.cpp's /props (its chat template included) is a few KB
DEADLINE = 2.0  # seconds for each question, connection and whole answer
RETRY_SECONDS = 30.0  # a server that could not be reached: asked again after this long
KEPT_SECONDS = 300.0  # one that answered: asked again after this long (restarted since, with another context)
PROXY_ID = "x-cot-proxy-request-id"
# Ollama's context where a model's parameters set no num_ctx: its default on a machine with under 24 GiB of VRAM
# (more VRAM, or OLLAMA_CONTEXT_LENGTH on the server, gives more; neither can be seen from here: docs/agents.md)
OLLAMA_DEFAULT_CONTEXT = 4096
MODELS_ASKED = 64  # Ollama models asked their window in one model list (a list is the upstream's: bounded here)
LIST_SECONDS = 5.0  # asking for one list stops after this long (the models left are asked at the next list)
NUM_CTX = re.compile(r"^[ \t]*num_ctx[ \t]+(\S+)[ \t]*\r?$", re.MULTILINE)  # a line of /api/show's `parameters` text


def server_root(base_url: str) -> str:
    """http://host:8080/v1/ -> http://host:8080/ (where llama-server serves /props, vLLM /version, Ollama
    /api/version); credentials and query left out."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, path.rstrip("/") + "/", "", ""))


def _llama_cpp(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("default_generation_settings"), dict) \
        and isinstance(body.get("total_slots"), int)


def _version_only(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"version"} and isinstance(body["version"], str)


QUESTIONS: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("props", "llama.cpp", _llama_cpp), ("version", "vLLM", _version_only), ("api/version", "Ollama", _version_only))
ASKED = ", ".join(f"{server}'s /{path}" for path, server, _ in QUESTIONS)


@dataclass(frozen=True)
class Said:
    """What a server said: `server` ("llama.cpp (GET /props)") or None; `settled` False: it could not be reached
    (asked again later)."""
    server: str | None
    settled: bool
    at: float = 0.0
    context: int | None = None  # llama.cpp: the tokens one slot holds (a request's window)

    @property
    def name(self) -> str | None:
        """The server's name alone ("llama.cpp", "vLLM", "Ollama"), or None."""
        return self.server.partition(" (")[0] if self.server else None


_said: dict[str, Said] = {}
_lock = threading.Lock()


def says_local(base_url: str, api_key: str = "") -> Said:
    """What the server at `base_url` says it is, asked once (see the module)."""
    root = server_root(base_url)
    said = _said.get(root)
    if said is not None and _fresh(said):
        return said
    with _lock:  # one question at a time per process: the others wait for its answer
        said = _said.get(root)
        if said is None or not _fresh(said):
            said = _said[root] = ask(root, _headers(base_url, api_key))
    return said


def _fresh(said: Said) -> bool:
    return time.monotonic() - said.at < (KEPT_SECONDS if said.settled else RETRY_SECONDS)


def forget() -> None:
    """Ask every server again (the master re-reading its settings)."""
    _said.clear()
    _windows.clear()


# (server root, model) -> Ollama's window for it, and when it was asked (asked again after KEPT_SECONDS)
_windows: dict[tuple[str, str], tuple[int | None, float]] = {}


def windows_per_model(base_url: str, api_key: str, models: list[str]) -> dict[str, int]:
    """The window of each of `models` when the server at `base_url` says one per model (Ollama), else none."""
    if says_local(base_url, api_key).name != "Ollama":
        return {}
    return ollama_windows(base_url, api_key, models)


def ollama_windows(base_url: str, api_key: str, models: list[str]) -> dict[str, int]:
    """The window of each of `models` the Ollama server at `base_url` serves (see the module): asked once a
    model, the first MODELS_ASKED of a list for LIST_SECONDS at most; a server that does not answer in time
    stops the asking (the others would wait as long) and is asked again at the next list."""
    root = server_root(base_url)
    found: dict[str, int] = {}
    opener = None
    started = time.monotonic()
    for model in models[:MODELS_ASKED]:
        kept = _windows.get((root, model))
        if kept is not None and time.monotonic() - kept[1] < KEPT_SECONDS:
            window = kept[0]
        else:
            opener = opener or _opener(root)
            answer = _get(opener, root + "api/show", _headers(base_url, api_key), json.dumps({"model": model}))
            if answer is None:
                break
            if len(_windows) >= 16 * MODELS_ASKED:
                _windows.clear()  # bounded: models come and go
            window = model_window(answer)
            _windows[(root, model)] = (window, time.monotonic())
        if window is not None:
            found[model] = window
        if opener is not None and time.monotonic() - started >= LIST_SECONDS:
            break
    return found


def model_window(shown: Any) -> int | None:
    """Ollama's /api/show answer -> the model's window: its `num_ctx`, else Ollama's default; None when the
    answer is not a model's (an unknown model's 404)."""
    if not isinstance(shown, dict):
        return None
    parameters = shown.get("parameters")
    found = NUM_CTX.search(parameters) if isinstance(parameters, str) else None
    if found is None:
        return OLLAMA_DEFAULT_CONTEXT
    said = found.group(1)
    return int(said) if said.isascii() and said.isdigit() and len(said) < 13 and int(said) > 0 else None


def ask(root: str, headers: dict[str, str]) -> Said:
    opener = _opener(root)
    for path, server, fits in QUESTIONS:
        answer = _get(opener, root + path, headers)
        if answer is None:  # not reached: the others would wait as long
            return Said(None, False, time.monotonic())
        if fits(answer):
            return Said(f"{server} (GET /{path})", True, time.monotonic(), slot_context(answer))
    return Said(None, True, time.monotonic())


def slot_context(answer: Any) -> int | None:
    """llama.cpp's /props: the context of one slot (`default_generation_settings.n_ctx`), else None."""
    settings = answer.get("default_generation_settings") if isinstance(answer, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return n_ctx if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and 0 < n_ctx < 2**40 else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer that says nothing


def _opener(root: str) -> urllib.request.OpenerDirector:
    """Proxies as the environment says, decided as requests decides (urllib alone skips no_proxy's CIDR
    ranges, so 127.0.0.0/8 would send a loopback server's questions to the proxy); TLS checked against
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE where set (as the upstream client checks it), else the system's."""
    proxies = {} if _bypassed(root) else urllib.request.getproxies()
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect(), urllib.request.ProxyHandler(proxies)]
    if root.startswith("https:"):
        cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        context = ssl.create_default_context(cafile=cafile if cafile and os.path.isfile(cafile) else None)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _bypassed(root: str) -> bool:
    """Whether no_proxy names this host: urllib's reading (names, suffixes, host:port, *) and IPv4 ranges."""
    parts = urlsplit(root)
    host = parts.hostname or ""
    if urllib.request.proxy_bypass(f"{host}:{parts.port}" if parts.port else host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    entries = (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "").replace(" ", "").split(",")
    for entry in filter(None, entries):
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _get(opener: urllib.request.OpenerDirector, url: str, headers: dict[str, str], posted: str | None = None) -> Any:
    """The JSON of a 200 answer (Any, JSON's null included: `...` when the server answered otherwise), None when
    the server could not be reached in time. `posted`: a JSON body, POSTed."""
    start = time.monotonic()
    try:
        with opener.open(_request(url, headers, posted), timeout=DEADLINE) as response:
            if response.status != 200 or response.headers.get(PROXY_ID):
                return ...
            body = bytearray()
            while len(body) <= READ_MOST and time.monotonic() - start < DEADLINE:
                chunk = response.read1(65536)
                if not chunk:
                    break
                body += chunk
            if len(body) > READ_MOST or time.monotonic() - start >= DEADLINE:
                return ...  # past the bound: dropped, says nothing
    except urllib.error.HTTPError:
        return ...  # an answer (404, 401, a redirect): reached, says nothing
    except (OSError, ValueError, http.client.HTTPException):
        return None
    try:
        return json.loads(bytes(body))
    except ValueError:
        return ...


def _request(url: str, headers: dict[str, str], posted: str | None) -> urllib.request.Request:
    if posted is None:
        return urllib.request.Request(url, headers=headers)
    return urllib.request.Request(url, posted.encode(), {**headers, "Content-Type": "application/json"})


def _headers(base_url: str, api_key: str) -> dict[str, str]:
    """The upstream's key, as its requests carry it (llama-server asks it for /props when started with one); else
    the URL's credentials."""
    headers = {"Accept": "application/json", "User-Agent": "cot_proxy"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
        return headers
    parts = urlsplit(base_url)
    if parts.username is not None:
        pair = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return headers


def asker(base_url: str, api_key: str = "") -> Callable[[], tuple[str | None, bool]]:
    """What the pricer is handed (spend/pricer.py's SaysLocal): asks when first called."""
    def ask_once() -> tuple[str | None, bool]:
        said = says_local(base_url, api_key)
        return said.server, said.settled
    return ask_once
