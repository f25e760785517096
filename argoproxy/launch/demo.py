"""`cot-proxy demo`: the proxy in front of a demo model of its own, to try it with no model server.

The demo model is a small OpenAI-compatible server on a loopback port of its own, in the proxy's master process
(a thread; the workers reach it over TCP as they reach any upstream): it lists one model, `demo`, and answers a
chat request, whole or streamed, by repeating the last user message. Everything else of the proxy is as it
serves any upstream (its doors, keys, limits, `cot-proxy run`): the proxy reads no config file for the demo
(your environment and flags still apply), and stops on Ctrl+C with the demo model.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

MODEL = "demo"
WINDOW = 8192  # the demo model's context, listed as vLLM lists one (max_model_len)
MOST_BODY = 1 << 20  # bytes of a request the demo model reads
DEFAULT_PORT = 5000  # the PORT setting's default: `run` finds the demo there with no flag


def answer_text(body: dict[str, Any]) -> str:
    """What the demo model says: the last user message, repeated."""
    said = ""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            said = content if isinstance(content, str) else " ".join(
                part.get("text", "") for part in content or [] if isinstance(part, dict))
    return f"This is cot_proxy's demo model (no model server behind it). You said: {said.strip()[:2000]}"


def usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = max(1, len(json.dumps(body.get("messages") or [])) // 4)
    completion = max(1, len(text) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(body: dict[str, Any]) -> dict[str, Any]:
    text = answer_text(body)
    return {"id": f"chatcmpl-demo-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "finish_reason": "stop"}], "usage": usage(body, text)}


def chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer as a stream's chunks, a few words each; the usage chunk when the request asked for it."""
    text = answer_text(body)
    base = {"id": f"chatcmpl-demo-{time.monotonic_ns()}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": MODEL}
    words = text.split(" ")
    pieces = [" ".join(words[i:i + 4]) + (" " if i + 4 < len(words) else "") for i in range(0, len(words), 4)]
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        events.append({**base, "choices": [], "usage": usage(body, text)})
    return events


def error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass  # the proxy logs its requests

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.body() is None:
            self.send_json(413, error("The demo model reads a body of a known length up to 1 MiB."), close=True)
        elif self.path.rstrip("/") == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                             "owned_by": "cot_proxy", "max_model_len": WINDOW}]})
        else:
            self.not_found()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        raw = self.body()
        if raw is None:  # not read: answered on a connection closed after it, or its next request would start
            self.send_json(413, error("The demo model reads a body of a known length up to 1 MiB."), close=True)
            return  # inside the unread body (seen: `400 Bad request syntax ('{"jsonrpc"...')`)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.not_found()
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send_json(400, error("The body is not a JSON object."))
        elif body.get("stream") is True:
            self.send_stream(chunks(body))
        else:
            self.send_json(200, completion(body))

    def body(self) -> bytes | None:
        """The request's whole body, read off the connection; None when it has no length the demo reads."""
        if self.headers.get("Transfer-Encoding"):
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return self.rfile.read(length) if 0 <= length <= MOST_BODY else None

    def not_found(self) -> None:
        self.send_json(404, error(f"The demo model serves GET /v1/models and POST /v1/chat/completions, not "
                                  f"{self.command} {self.path}.", "not_found"))

    def send_json(self, status: int, body: dict[str, Any], close: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")  # http.server closes it after this answer
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, events: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


def start_demo_model() -> str:
    """The demo model, serving on a free loopback port in a thread; returns its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), DemoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="demo-model", daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def data_files(flags: dict[str, Any], demo: Settings) -> dict[str, str]:
    """keys.db and responses.db, those the demo's settings use, where `keys create` with the same flags finds them
    (the config in force names them or has them beside it; else the working directory), so the keys made there
    work here. The demo reads no config for the rest, and beside its /dev/null they were /dev's: root wrote
    /dev/responses.db, anyone else got a 503 per stored response. A directory this user cannot write moves to
    their own data directory."""
    from argoproxy.config.settings import SettingsError, default_keys_db, default_responses_db, load
    from argoproxy.launch.sources import USER_DIR
    used = {"keys_db": demo.enable_auth, "responses_db": demo.responses_store}
    try:
        settings = load(flags).settings  # .env was read with the demo's settings, as `keys create` reads it
        found = {"keys_db": settings.keys_db, "responses_db": settings.responses_db}
    except SettingsError:  # the config is bad: the defaults without it
        keys = default_keys_db("")
        found = {"keys_db": keys, "responses_db": default_responses_db(keys, "")}
    return {name: path if writable(Path(path).expanduser().parent) else str(USER_DIR.expanduser() / Path(path).name)
            for name, path in found.items() if used[name] and not demo.redis_url}


def writable(folder: Path) -> bool:
    while not folder.exists() and folder != folder.parent:  # made when first used, below its first existing parent
        folder = folder.parent
    return os.access(folder, os.W_OK)


def try_lines(settings: Any, shown: str) -> list[str]:
    """The request to paste and the agent line (no upstream asked: the master imports no requests before the
    workers' gevent patches it)."""
    from argoproxy.launch.proxy import address, auth_header, base_url, key_lines
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]})
    port = "" if settings.port == DEFAULT_PORT else f" --port {settings.port}"
    return ["The demo model repeats what you say: no model server is needed. Try it (in another terminal):",
            *key_lines(settings),
            f"  curl {base_url(*address(settings))}/v1/chat/completions -H 'Content-Type: application/json'"
            f"{auth_header(settings)} -d '{body}'",
            f"  {shown} run{port} --model {MODEL} -- claude    # a coding agent through this proxy"]


def main(argv: list[str], prog: str, parse_flags: Callable[[list[str]], tuple[dict[str, Any], Any]]) -> int:
    """`cot-proxy demo [flags]`: the proxy's own flags (--port...), no config file, the demo model upstream."""
    from argoproxy.launch.run import typed
    from argoproxy.serve.gunicorn_app import READY_LINES_ENV, loaded_or_exit, run
    given, _ = parse_flags(argv)
    flags = {**given, "config_path": os.devnull, "backend": "openai", "target_base_url": start_demo_model(),
             "self_hosted": True}  # it costs nothing
    settings = loaded_or_exit(flags, serving=True).settings
    stores = data_files(given, settings)
    if stores:
        flags.update(stores)
        settings = loaded_or_exit(flags, serving=True).settings
    os.environ[READY_LINES_ENV] = "\n".join(try_lines(settings, typed(prog)))
    run(flags)
    return 0
