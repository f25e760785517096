"""The edge, through the running app (Gunicorn) with raw HTTP: canonical paths, one classification per request,
and the allow-list on every route that names a model. Requests are written byte for byte on a socket, since
`requests` and the SDKs normalise paths (what curl --path-as-is would send)."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_openai import Reply
from tests.polling import poll
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "hi"}]
EVIL = json.dumps({"model": "evil", "messages": MSG}).encode()
GOOD = json.dumps({"model": "gpt-4o", "messages": MSG}).encode()
JSON = {"Content-Type": "application/json"}


def send(proxy, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None,
         ) -> tuple[int, dict[str, str], bytes]:
    """One request written exactly as given (the target is not normalised or validated in any way)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def error_of(data: bytes) -> dict:
    err = json.loads(data)["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    return err


def samples(proxy) -> list:
    status, _, data = send(proxy, "GET", "/metrics")
    assert status == 200
    return [s for family in text_string_to_metric_families(data.decode()) for s in family.samples]


def requests_total(proxy, **labels: str) -> float:
    return sum(s.value for s in samples(proxy) if s.name == "cot_proxy_requests_total"
               and all(s.labels.get(k) == v for k, v in labels.items()))


def journal(log_dir: str) -> list[dict]:
    path = Path(log_dir, "client_interaction.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def guarded(module_fake, tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("journals"))
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ALLOWED_MODELS="gpt-4o,whisper-1", MAX_RETRIES="0",
                       LOG_DIR=log_dir, DEBUG="true") as p:
        p.log_dir = log_dir
        yield p


# ------------------------------------------------------------------ 1. canonical paths
REFUSED = [
    "/v1/chat/completions%23", "/v1/chat/completions%3F", "/v1/chat/completions%3f", "/v1%2Fchat/completions",
    "/v1/chat%2fcompletions", "/v1/chat/./completions", "/v1/x/../chat/completions", "/v1/../../admin",
    "/v1/%2e%2e/%2E%2E/admin", "/v1/%2E/chat/completions", "/v1/chat/.%2e/chat/completions", "/./v1/models",
    "/v1/chat/completions;x=1", "/v1;x=1/chat/completions", "/v1/chat%3Bx=1/completions",
    "/v1/chat/completions%00", "/v1/chat%00/completions", "/v1/chat/completions%0d%0aX-Evil:%201",
    "/v1/chat/completions%7f", "/v1/chat\\completions", "/v1/chat%5Ccompletions", "/v1/chat/completions%",
    "/v1/chat/completions%zz", "/v1/chat/completions%ff", "/v1/chat/completions%20",
    "/v1/chat/completions#frag",
]


@pytest.mark.parametrize("target", REFUSED)
def test_ambiguous_paths_are_400_and_never_forwarded(guarded, upstream, target):
    status, headers, data = send(guarded, "POST", target, EVIL, JSON)
    assert status == 400, (target, data)
    err = error_of(data)
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_path"
    assert err["request_id"] == headers["x-request-id"]
    assert headers["content-type"].startswith("application/json")
    assert upstream.received == []


@pytest.mark.parametrize("target", ["/v1//chat/completions", "//v1/chat//completions/", "/v1/chat/completions/",
                                    "/V1/chat/completions", "/v1/Chat/COMPLETIONS", "/v1/chat/complet%69ons",
                                    "http://127.0.0.1/v1//chat/completions"])
def test_spellings_of_the_chat_route_are_the_chat_route(guarded, upstream, target):
    status, _, data = send(guarded, "POST", target, EVIL, JSON)
    assert status == 403 and error_of(data)["code"] == "model_not_allowed", data  # the guard saw the chat route
    assert upstream.received == []
    status, _, data = send(guarded, "POST", target, GOOD, JSON)
    assert status == 200 and json.loads(data)["choices"][0]["message"]["content"]
    assert [(r.method, r.path) for r in upstream.received] == [("POST", "/v1/chat/completions")]  # canonical


def test_forwarded_paths_are_canonical_and_stay_under_the_base(guarded, upstream):
    status, _, data = send(guarded, "GET", "//v1///files//file-ABC%2Dx?purpose=a%2Fb")
    assert status == 200, data
    got = upstream.received[-1]
    assert (got.method, got.path, got.query) == ("GET", "/v1/files/file-ABC-x", "purpose=a%2Fb")
    status, _, _ = send(guarded, "GET", "/V1/Files")  # route names keep their case on forwarded paths
    assert status == 200 and upstream.received[-1].path == "/v1/V1/Files"  # under the base: /v1/ + V1/Files


def test_unknown_methods_and_kinds_on_fixed_routes(guarded, upstream):
    status, headers, data = send(guarded, "GET", "/V1/chat/completions/")
    assert status == 405 and headers["allow"] == "POST" and error_of(data)["code"] == "method_not_allowed"
    status, headers, _ = send(guarded, "POST", "//health")
    assert status == 405 and "GET" in headers["allow"]
    before = requests_total(guarded, route="passthrough", status="405")
    status, headers, data = send(guarded, "PROPFIND", "/v1/files")  # a method Flask's URL map does not list
    assert status == 405 and error_of(data)["code"] == "method_not_allowed" and "GET" in headers["allow"]
    assert requests_total(guarded, route="passthrough", status="405") == before + 1
    assert upstream.received == []


# ------------------------------------------------------------------ 3. the allow-list on every route
def test_forwarded_json_bodies_are_checked(guarded, upstream):
    for target in ("/v1/responses", "/v1/images/generations", "/v1/audio/speech", "/v1/Videos", "/V1/Responses"):
        status, _, data = send(guarded, "POST", target, json.dumps({"model": "evil", "input": "x"}).encode(), JSON)
        assert status == 403 and error_of(data)["code"] == "model_not_allowed", (target, data)
    # A JSON body without a JSON content type is read the way a lenient upstream would read it.
    for body in (b'  {"model": "evil"}', b'\xef\xbb\xbf{"model": "evil"}', '{"model": "evil"}'.encode("utf-16")):
        status, _, data = send(guarded, "POST", "/v1/images/generations", body, {"Content-Type": "text/plain"})
        assert status in (400, 403), (body, data)
    assert upstream.received == []
    body = json.dumps({"model": "gpt-4o", "prompt": "x"}).encode()
    status, _, _ = send(guarded, "POST", "/v1/images/generations", body, JSON)
    assert status == 200 and upstream.received[-1].path == "/v1/images/generations"
    assert upstream.received[-1].body == body


def test_the_three_bypasses_of_issue_37_are_refused(guarded, upstream):
    """JSON sent as a form, Azure's batch spellings, Ollama's `name`, a route whose model the upstream picks: each
    a 403 in OpenAI's shape through the running app, and nothing forwarded."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    line = json.dumps({"custom_id": "1", "method": "POST", "url": "/chat/completions", "body": {"model": "evil"}})
    upload, headers = multipart([("purpose", "batch")])
    upload = upload.replace(b"RIFF....", line.encode())
    for method, target, body, kind in (
            ("POST", "/api/chat", json.dumps({"model": "evil", "messages": MSG}).encode(), form),
            ("POST", "/api/generate", b'{"model": "evil", "prompt": "x"}', form),
            ("POST", "/openai/files?api-version=2024-10-21", upload, headers),
            ("POST", "/api/pull", b'{"name": "evil"}', JSON),
            ("DELETE", "/api/delete", b'{"name": "evil"}', JSON),
            ("POST", "/v1/videos", b'{"prompt": "a cat"}', JSON)):
        status, _, data = send(guarded, method, target, body, kind)
        error = json.loads(data)["error"]  # Ollama's shape on /api/*: {"error": "..."}
        assert status == 403 and (error["code"] == "model_not_allowed" if isinstance(error, dict) else
                                  "model" in error), (target, data)
    assert upstream.received == []
    status, _, _ = send(guarded, "POST", "/api/pull", b'{"name": "gpt-4o"}', form)
    assert status == 200 and upstream.received[-1].path == "/v1/api/pull"
    status, _, data = send(guarded, "POST", "/v1/images/generations", b'{"model": "evil", "prompt": "x"}', form)
    assert status == 403 and error_of(data)["code"] == "model_not_allowed", data  # JSON as a form: read as JSON


def test_compressed_forwarded_bodies_cannot_hide_a_model(guarded, upstream):
    body = gzip.compress(b'{"model": "evil"}')
    status, _, data = send(guarded, "POST", "/v1/batches", body, {**JSON, "Content-Encoding": "gzip"})
    assert status == 415 and upstream.received == []


def multipart(fields: list[tuple[str, str]], boundary: str = "XyZ") -> tuple[bytes, dict[str, str]]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                 'Content-Type: audio/wav\r\n\r\nRIFF....\r\n')
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_multipart_and_form_model_fields(guarded, upstream):
    body, headers = multipart([("model", "evil")])
    status, _, data = send(guarded, "POST", "/v1/audio/transcriptions", body, headers)
    assert status == 403 and error_of(data)["code"] == "model_not_allowed"
    body, headers = multipart([("model", "whisper-1"), ("model", "evil")])
    status, _, data = send(guarded, "POST", "/v1/audio/transcriptions", body, headers)
    assert status == 400 and error_of(data)["code"] == "duplicate_parameter"
    status, _, _ = send(guarded, "POST", "/v1/images/edits", b"model=evil&prompt=x",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403
    body, _ = multipart([("model", "evil")])
    for content_type in ("MULTIPART/FORM-DATA; BOUNDARY=XyZ", "multipart/mixed; boundary=XyZ"):
        status, _, data = send(guarded, "POST", "/v1/audio/transcriptions", body, {"Content-Type": content_type})
        assert status == 403, (content_type, data)
    assert upstream.received == []
    body, headers = multipart([("model", "whisper-1")])
    status, _, _ = send(guarded, "POST", "/v1/audio/transcriptions", body, headers)
    assert status == 200 and upstream.received[-1].body == body  # forwarded byte for byte


@pytest.mark.parametrize("target", ["/v1/engines/evil/completions", "/v1/Engines/evil/chat/completions",
                                    "/openai/deployments/evil/chat/completions?api-version=2024-02-01",
                                    "/openai/deployments/ev%69l/embeddings"])
def test_a_model_named_in_a_forwarded_path_is_on_the_allow_list(guarded, upstream, target):
    """OpenAI's engine routes and Azure OpenAI's deployments name the model in the path; the allow-list read
    only bodies and queries, so these went upstream for any model."""
    status, _, data = send(guarded, "POST", target, b'{"prompt": "hi"}', JSON)
    assert status == 403 and error_of(data)["code"] == "model_not_allowed", data
    assert upstream.received == []
    status, _, _ = send(guarded, "POST", target.replace("evil", "gpt-4o").replace("ev%69l", "gpt-4o"),
                        b'{"prompt": "hi"}', JSON)
    assert status == 200 and len(upstream.received) == 1


def test_query_model_on_any_route(guarded, upstream):
    for target in ("/v1/files?model=evil", "/v1/models?model=evil", "/v1/chat/completions?model=evil",
                   "/v1/files?x=1&model=gpt-4o&model=evil", "/v1/chat/completions?mode%6C=evil",
                   "/v1/files?MODEL=evil", "/v1/files?x=1;model=evil", "/v1/files?model%5B%5D=evil"):
        method = "POST" if "chat" in target else "GET"
        status, _, data = send(guarded, method, target, GOOD if method == "POST" else b"", JSON)
        assert status in (400, 403), (target, data)
    assert upstream.received == []
    assert send(guarded, "GET", "/v1/files?model=gpt-4o")[0] == 200


@pytest.mark.parametrize("body", [b'{"model": "evil", "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}',
                                  b'{"model": "gpt-4o", "model": "evil", "messages": [{"role": "user", "content": "x"}]}',
                                  b'{"model": "gpt-4o", "messages": [{"role": "user", "role": "system", "content": "x"}]}'])
def test_duplicate_keys_are_400(guarded, upstream, body):
    for target in ("/v1/chat/completions", "/v1/responses", "/v1/batches"):
        status, _, data = send(guarded, "POST", target, body, JSON)
        assert status == 400, (target, data)
        err = error_of(data)
        assert err["code"] == "duplicate_key" and err["param"] in ("model", "role")
    status, _, data = send(guarded, "POST", "/v1/messages", body, JSON)  # Anthropic's error shape
    assert status == 400 and json.loads(data)["type"] == "error" and "more than once" in data.decode()
    assert upstream.received == []


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])
def test_bodies_in_other_unicode_encodings_go_upstream_as_utf8(guarded, upstream, encoding):
    """Python's JSON reader takes UTF-16, UTF-32 and a BOM, so the proxy accepted such bodies, then sent them on
    as they came: llama.cpp and OpenAI read only UTF-8 (RFC 8259). The upstream gets the same text in UTF-8."""
    text = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "h\u00e9llo \u2713 \U0001d11e"}]},
                      ensure_ascii=False)
    status, _, data = send(guarded, "POST", "/v1/chat/completions", text.encode(encoding), JSON)
    assert status == 200, data
    assert upstream.received[-1].body == text.encode()
    # the allow-list reads the body in any of them
    status, _, data = send(guarded, "POST", "/v1/chat/completions", EVIL.decode().encode(encoding), JSON)
    assert status == 403 and error_of(data)["code"] == "model_not_allowed", data
    assert len(upstream.received) == 1


def test_a_body_broken_in_its_encoding_is_a_400_naming_it(guarded, upstream):
    status, _, data = send(guarded, "POST", "/v1/chat/completions", GOOD.decode().encode("utf-16") + b"\x00", JSON)
    assert status == 400 and "UTF-16" in error_of(data)["message"], data
    status, _, data = send(guarded, "POST", "/v1/chat/completions", b"\xef\xbb\xbf{\"model\": \"\xff\"}", JSON)
    assert status == 400 and "UTF-8" in error_of(data)["message"], data
    assert upstream.received == []


@pytest.mark.parametrize("target", ["/v1/models", "/v1/models/", "//v1//models", "/V1/Models", "/models", "/models/",
                                    "/v1/models?x=1"])
def test_model_list_is_filtered_in_every_spelling(guarded, upstream, target):
    upstream.add(Reply({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "x"}
                                                   for m in ("evil", "gpt-4o", "gpt-4o-mini")]}))
    status, _, data = send(guarded, "GET", target)
    assert status == 200 and [m["id"] for m in json.loads(data)["data"]] == ["gpt-4o"]


def test_model_detail_outside_the_list_is_404(guarded, upstream):
    for target in ("/v1/models/evil", "/v1/models/evil/", "/V1/MODELS/gpt-4o-mini", "/models/evil",
                   "/v1/models/org/evil"):
        status, _, data = send(guarded, "GET", target)
        assert status == 404 and error_of(data)["code"] == "model_not_found", target
        assert send(guarded, "DELETE", target)[0] == 404
    assert upstream.received == []
    status, _, _ = send(guarded, "GET", "/V1/models/gpt-4o")
    assert status == 200 and upstream.received[-1].path == "/v1/models/gpt-4o"


# ------------------------------------------------------------------ 2. every request is observed
def test_refused_and_forwarded_requests_reach_metrics_journals_and_debug_lines(guarded, upstream):
    before = requests_total(guarded, route="invalid_path", status="400")
    send(guarded, "POST", "/v1/chat/completions%23", EVIL, JSON)
    send(guarded, "GET", "/v1/files/x")
    assert requests_total(guarded, route="invalid_path", status="400") == before + 1
    assert requests_total(guarded, route="passthrough", status="200") >= 1
    assert requests_total(guarded, route="metrics", status="200") >= 1
    send(guarded, "GET", "/health")  # a liveness probe is not an interaction: not journaled
    send(guarded, "GET", "/")
    entries = poll(lambda: [e for e in journal(guarded.log_dir) if "files/x" in json.dumps(e)])
    assert entries
    paths = [e.get("path") for e in journal(guarded.log_dir)]
    assert "/metrics" in paths
    assert "/health" not in paths and "/" not in paths, paths
    log = poll(lambda: "/v1/files/x" in guarded.read_log() and guarded.read_log())
    assert "GET /v1/files/x" in log and "status=200" in log


# ------------------------------------------------------------------ FORWARD_PATHS
def test_forward_paths_closes_the_catch_all(fake):
    fake.received.clear()
    with running_proxy(TARGET_BASE_URL=fake.base_url, FORWARD_PATHS="/v1/files*, /v1/audio/*") as p:
        assert send(p, "GET", "/v1/files")[0] == 200
        assert send(p, "GET", "/v1//files/abc")[0] == 200
        assert send(p, "POST", "/v1/audio/speech", b"{}", JSON)[0] == 200
        for target in ("/v1/batches", "/v1/vector_stores", "/admin", "/v1/audio", "/V1/files"):
            status, _, data = send(p, "GET", target)
            assert status == 404 and error_of(data)["code"] == "unknown_route", target
        assert send(p, "POST", "/v1/chat/completions", GOOD, JSON)[0] == 200  # API routes are not forwarded paths
        assert send(p, "GET", "/v1/models")[0] == 200
        assert [r.path for r in fake.received] == ["/v1/files", "/v1/files/abc", "/v1/audio/speech",
                                                   "/v1/chat/completions", "/v1/models"]


# ------------------------------------------------------------------ ARGO raw routes
@pytest.fixture(scope="module")
def argo_proxy(tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("argo_journals"))
    with FakeArgo() as argo:
        with running_proxy(BACKEND="argo", ARGO_USER="alice", ARGO_URL=argo.chat_url, ARGO_STREAM_URL=argo.stream_url,
                           ARGO_EMBEDDING_URL=argo.embed_url, ALLOWED_MODELS="gpt4o,v3small", LOG_DIR=log_dir,
                           DEBUG="true") as p:
            p.argo, p.log_dir = argo, log_dir
            yield p


def test_argo_raw_routes_obey_the_allow_list(argo_proxy):
    argo = argo_proxy.argo
    argo.reset()
    for target, body in (("/v1/chat", {"model": "gpto1", "prompt": ["x"]}),
                         ("/v1//chat/", {"model": "argo:gpt-4.1-mini", "prompt": ["x"]}),
                         ("/v1/embed", {"model": "v3large", "prompt": ["x"]})):
        status, _, data = send(argo_proxy, "POST", target, json.dumps(body).encode(), JSON)
        assert status == 403 and error_of(data)["code"] == "model_not_allowed", (target, data)
    assert argo.requests == []
    status, _, data = send(argo_proxy, "POST", "/V1/Chat", json.dumps({"model": "argo:gpt-4o", "prompt": ["hi"]}).encode(),
                           JSON)  # an alias, allowed once resolved
    assert status == 200, data
    status, _, data = send(argo_proxy, "POST", "/v1/embed", json.dumps({"prompt": ["hi"]}).encode(), JSON)
    assert status == 200, data
    dup = b'{"model": "gpt4o", "model": "gpto1", "prompt": ["x"]}'
    assert send(argo_proxy, "POST", "/v1/chat", dup, JSON)[0] == 400


def test_argo_raw_routes_are_counted_journaled_and_logged(argo_proxy):
    send(argo_proxy, "POST", "/v1/chat", json.dumps({"model": "gpt4o", "prompt": ["hi"]}).encode(), JSON)
    send(argo_proxy, "POST", "/v1/embed", json.dumps({"model": "v3small", "prompt": ["hi"]}).encode(), JSON)
    assert requests_total(argo_proxy, route="argo_chat", status="200") >= 1
    assert requests_total(argo_proxy, route="argo_embed", status="200") >= 1
    assert requests_total(argo_proxy, route="argo_chat", status="403") >= 1
    assert poll(lambda: any(e.get("path") == "v1/embed" or "v1/embed" in json.dumps(e)
                            for e in journal(argo_proxy.log_dir)))
    log = poll(lambda: "POST /v1/embed" in argo_proxy.read_log() and argo_proxy.read_log())
    assert "POST /v1/chat model=gpt4o" in log and "upstream=" in log
