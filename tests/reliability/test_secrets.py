"""A canary key through every feature (auth, upstream key, DEBUG logs, LOG_DIR journals, error bodies,
/metrics, streams, pass-through, the dashscope backend): it must appear in no output (issue 7, part 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.clients import openai_sdk
from tests.fakes.fake_dashscope import FakeDashScope
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks
from tests.polling import poll
from tests.proxy_process import ROOT, base_env, running_proxy
from tests.reliability.support import MSG, assert_error, chat

pytestmark = pytest.mark.timeout(60)

CLIENT_KEY = "sk-canary-client-Q7XK2M9P4TZW8RJD5HNB"
UPSTREAM_KEY = "sk-canary-upstream-V3LF6YC1WQ8SE2MA7UGK"
WRONG_KEY = "sk-canary-wrong-B4NJ8TR2XK6PL0QZ3DYE"
DASHSCOPE_KEY = "sk-canary-dashscope-H5MW9QA3KE7UX1CZ4RTP"
CANARIES = [CLIENT_KEY, UPSTREAM_KEY, WRONG_KEY, DASHSCOPE_KEY]


def leaks(text: str) -> list[str]:
    """Canaries found whole, or by a distinctive middle part (a key cut short is still a key)."""
    return [c for c in CANARIES if c in text or c[-20:-4] in text]


def dump(r: requests.Response) -> str:
    return "\n".join([str(r.status_code), *(f"{k}: {v}" for k, v in r.headers.items()), r.text])


def run_everything(p, fake, outputs: list[str]) -> None:
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}

    def send(method: str, path: str, **kw) -> requests.Response:
        headers = {**auth, **kw.pop("headers", {})}
        r = requests.request(method, p.url + path, headers=headers, timeout=20, **kw)
        outputs.append(dump(r))
        return r

    sdk = openai_sdk(p, CLIENT_KEY)
    assert sdk.chat.completions.create(model="m", messages=MSG).choices[0].message.content
    assert list(sdk.chat.completions.create(model="m", messages=MSG, stream=True, stream_options={"include_usage": True}))
    send("POST", "/v1/completions", json={"model": "m", "prompt": "x"})
    send("POST", "/v1/embeddings", json={"model": "e", "input": "x"})
    send("GET", "/v1/models")
    send("GET", "/v1/files?purpose=x")
    send("GET", "/health")
    # The upstream echoes the key it got (as OpenAI does in "Incorrect API key provided: sk-...").
    fake.add(Reply({"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}. Also {CLIENT_KEY}.",
                              "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401))
    r = send("POST", "/v1/chat/completions", json=chat())
    assert r.status_code == 401
    fake.add(Reply(f"<html>Traceback: Authorization: Bearer {UPSTREAM_KEY}</html>".encode(), status=500,
                   headers={"Content-Type": "text/html"}))
    send("POST", "/v1/chat/completions", json=chat())
    fake.add(Reply({"error": {"message": f"bad key {UPSTREAM_KEY}", "type": "x"}}))  # an error inside a 200
    send("POST", "/v1/chat/completions", json=chat())
    fake.add(Stream(chat_chunks(["a"])[:2] + [{"error": {"message": f"key {UPSTREAM_KEY} revoked"}}]))
    send("POST", "/v1/chat/completions", json=chat(stream=True))
    fake.add(Stream(chat_chunks(["a", "b"]), cut_after=2))
    send("POST", "/v1/chat/completions", json=chat(stream=True))
    # An upstream that quotes the key in its WWW-Authenticate realm, on an API route, a stream, a front door and
    # a forwarded route (it was relayed as it came).
    realm = {"WWW-Authenticate": f'Bearer realm="Bearer {UPSTREAM_KEY}"'}
    for path, body in (("/v1/chat/completions", chat()), ("/v1/chat/completions", chat(stream=True)),
                       ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": MSG}), ("/v1/files", None)):
        fake.add(Reply({"error": {"message": "no", "type": "invalid_request_error"}}, status=401, headers=realm))
        r = send("POST" if body else "GET", path, json=body)
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers, dump(r)
    # Model lists the proxy rebuilds from the upstream's (OpenAI's, Anthropic's and Google's shapes).
    for headers, path in (({}, "/v1/models"), ({"anthropic-version": "2023-06-01"}, "/v1/models"),
                          ({}, "/v1beta/models")):
        fake.add(Reply({"object": "list", "data": [{"id": f"m-Bearer {UPSTREAM_KEY}", "object": "model"}]}))
        assert send("GET", path, headers=headers).status_code == 200
    # The client's own mistakes: a wrong key in each place a key can be, bad bodies quoting it.
    for headers in ({"Authorization": f"Bearer {WRONG_KEY}"}, {"Authorization": WRONG_KEY},
                    {"X-Api-Key": WRONG_KEY}, {"Api-Key": WRONG_KEY}):
        r = requests.post(p.base_url + "/chat/completions", json=chat(), headers=headers, timeout=10)
        outputs.append(dump(r))
        assert r.status_code == 401
    r = requests.get(p.url + f"/v1/models?api_key={WRONG_KEY}", timeout=10)
    outputs.append(dump(r))
    send("POST", "/v1/chat/completions", data=f'{{"model": "{CLIENT_KEY}", "messages": ['.encode())
    send("POST", "/v1/chat/completions", json={"model": "m", "messages": "x", "api_key": UPSTREAM_KEY})
    metrics = send("GET", "/metrics")
    assert metrics.status_code in (200, 404)


def test_canary_keys_appear_in_no_output(tmp_path: Path):
    log_dir = tmp_path / "journals"
    outputs: list[str] = []
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, OPENAI_API_KEY=UPSTREAM_KEY, ENABLE_AUTH="true",
                           API_KEY_SECRET=f"other-key,{CLIENT_KEY}", DEBUG="true", LOG_DIR=str(log_dir),
                           MAX_RETRIES="0") as p:
            run_everything(p, fake, outputs)
            assert poll(lambda: "GET /metrics" in p.read_log())  # the last request's DEBUG line: all are written
        outputs.append(p.stop())
        # The upstream got the configured key, never the client's.
        sent = {r.headers.get("Authorization") for r in fake.received}  # None: the /health probe
        assert sent <= {f"Bearer {UPSTREAM_KEY}", None} and f"Bearer {UPSTREAM_KEY}" in sent, sent
        assert not any(CLIENT_KEY in json.dumps(r.headers) or CLIENT_KEY.encode() in r.body for r in fake.received)
    files = [f for f in log_dir.rglob("*") if f.is_file()]
    assert files, "LOG_DIR journals were written"
    for f in files:
        outputs.append(f"{f}:\n" + f.read_text(errors="replace"))
    for f in Path(p.home).rglob("*"):
        if f.is_file() and f.stat().st_size < 5_000_000:
            outputs.append(f"{f}:\n" + f.read_text(errors="replace"))
    found = {c for text in outputs for c in leaks(text)}
    where = [text[max(0, text.find(c[-20:-4]) - 300):][:600] for text in outputs for c in leaks(text)]
    assert not found, where


def test_dashscope_key_appears_in_no_output(tmp_path: Path):
    log_dir = tmp_path / "journals"
    outputs: list[str] = []
    with FakeDashScope(api_key=DASHSCOPE_KEY) as ds:
        with running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY=DASHSCOPE_KEY,
                           DEBUG="true", LOG_DIR=str(log_dir), MAX_RETRIES="0") as p:
            sdk = openai_sdk(p, CLIENT_KEY)
            sdk.chat.completions.create(model="qwen-plus", messages=MSG)
            list(sdk.chat.completions.create(model="qwen-plus", messages=MSG, stream=True))
            ds.fail_next(code="InvalidApiKey", status=401, message=f"Invalid API-key provided: {DASHSCOPE_KEY}")
            r = requests.post(p.base_url + "/chat/completions", json=chat("qwen-plus"), timeout=10,
                              headers={"Authorization": f"Bearer {CLIENT_KEY}"})
            outputs.append(dump(r))
            assert r.status_code == 401
            assert poll(lambda: "status=401" in p.read_log())  # the last request's DEBUG line: all are written
        outputs.append(p.stop())
    for f in log_dir.rglob("*"):
        if f.is_file():
            outputs.append(f.read_text(errors="replace"))
    where = [text[:300] for text in outputs if leaks(text)]
    assert not where, where


# ------------------------------------------------------------------ every route, every byte (issue 12, item 4)

URL_PASSWORD = "canary-url-password-7Hq2Zp"


def test_forwarded_routes_never_relay_a_configured_secret(tmp_path: Path):
    """An upstream that echoes the Authorization it got, on routes the proxy only forwards: the key is
    replaced in bodies and headers, whole or streamed with the key split across chunks, and in error bodies."""
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, OPENAI_API_KEY=UPSTREAM_KEY, MAX_RETRIES="0") as p:
            r = requests.get(p.url + "/v1/echo-headers", timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["received_headers"]["Authorization"] == "Bearer [redacted]"
            assert "X-Echo-Authorization" not in r.headers or UPSTREAM_KEY not in r.headers["X-Echo-Authorization"]
            event = b'data: {"echo": "Bearer ' + UPSTREAM_KEY.encode() + b'"}\n\n'
            fake.add(Stream([event, event], drip=0.0005, headers={  # one byte per chunk
                "X-Key": UPSTREAM_KEY, "Content-Disposition": f'attachment; filename="{UPSTREAM_KEY}"'}))
            r = requests.post(p.url + "/v1/threads/runs", json={"model": "m", "stream": True}, timeout=20)
            assert r.status_code == 200
            assert r.content == b'data: {"echo": "Bearer [redacted]"}\n\n' * 2
            assert "X-Key" not in r.headers  # not on the allow-list; one that is, cleaned:
            assert r.headers["Content-Disposition"] == 'attachment; filename="[redacted]"'
            big = b"x" * 300_000 + UPSTREAM_KEY.encode() + b"y" * 300_000  # relayed in pieces, not in one read
            fake.add(Reply(big, headers={"Content-Type": "text/plain"}))
            r = requests.get(p.url + "/v1/files/big", timeout=20)
            assert r.content == b"x" * 300_000 + b"[redacted]" + b"y" * 300_000
            fake.add(Reply(b"<html>bad key Bearer " + UPSTREAM_KEY.encode() + b" on 10.0.0.7</html>", status=403,
                           headers={"Content-Type": "text/html"}))
            r = requests.get(p.url + "/v1/files", timeout=10)
            assert_error(r, 403)
            fake.add(Reply({"error": {"message": f"key {UPSTREAM_KEY} at http://10.1.2.3:8000/x is wrong",
                                      "type": "invalid_request_error", "code": "bad"}}, status=401))
            r = requests.post(p.url + "/v1/audio/speech", json={"model": "m"}, timeout=10)
            err = assert_error(r, 401, "bad")
            assert UPSTREAM_KEY not in err["message"] and "10.1.2.3" not in err["message"]
        assert UPSTREAM_KEY not in p.stop()


def test_url_credentials_never_reach_a_client_or_a_log(tmp_path: Path):
    """TARGET_BASE_URL=http://user:password@host/: masked in the start-up line, --show, warnings, answers."""
    with FakeOpenAI() as fake:
        target = fake.base_url.replace("http://", f"http://proxyuser:{URL_PASSWORD}@")
        show = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path, capture_output=True, text=True,
                              env=base_env(str(tmp_path), TARGET_BASE_URL=target), timeout=30)
        assert show.returncode == 0, show.stderr
        assert "target_base_url" in show.stdout and "***@127.0.0.1" in show.stdout
        assert URL_PASSWORD not in show.stdout + show.stderr
        with running_proxy(TARGET_BASE_URL=target, MAX_RETRIES="0", DEBUG="true") as p:
            r = requests.get(p.url + "/v1/echo-headers", timeout=10)
            assert r.status_code == 200, r.text
            assert URL_PASSWORD not in r.text and "proxyuser:" not in r.text
            r = requests.post(p.url + "/v1/chat/completions", timeout=10, json=chat(messages=[
                {"role": "user", "content": [{"type": "image_url",
                                              "image_url": {"url": f"ftp://me:{URL_PASSWORD}@files/x.png"}}]}]))
            assert URL_PASSWORD not in r.text
            log = p.stop()
        assert "***@127.0.0.1" in log  # the start-up line names the target, without its password
        assert URL_PASSWORD not in log, log


def test_image_warnings_mask_url_credentials():
    from tests.fakes.fake_argo import FakeArgo
    from tests.fakes.fake_images import FakeImageServer
    from tests.integration.test_argo import argo_env

    with FakeArgo() as argo, FakeImageServer() as imgs:
        with running_proxy(**argo_env(argo, IMAGE_ALLOW_PRIVATE="true")) as p:
            url = imgs.url("/page.html").replace("http://", f"http://imguser:{URL_PASSWORD}@")  # not an image
            r = requests.post(p.base_url + "/chat/completions", timeout=20, json={"model": "argo:gpt-4o", "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
            assert r.status_code == 200, r.text
            log = p.stop()
    assert "image not inlined" in log and "http://***@127.0.0.1" in log, log[-2000:]
    assert URL_PASSWORD not in log


def test_argo_raw_routes_never_relay_a_configured_secret():
    """ARGO's own /v1/chat answers (whole and streamed as plain text) pass the scrubber like every answer."""
    from tests.fakes.fake_argo import FakeArgo
    from tests.integration.test_argo import argo_env

    with FakeArgo() as argo:
        chat_url = argo.chat_url.replace("http://", f"http://argo:{URL_PASSWORD}@")
        env = {**argo_env(argo, ENABLE_AUTH="true", API_KEY_SECRET=CLIENT_KEY), "ARGO_URL": chat_url}
        with running_proxy(**env) as p:
            argo.reply = f"the password is {URL_PASSWORD}, the key {CLIENT_KEY}"
            auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
            for stream in (False, True):
                r = requests.post(p.url + "/v1/chat", headers=auth, timeout=20,
                                  json={"model": "gpt4o", "messages": [{"role": "user", "content": "hi"}],
                                        "stream": stream})
                assert r.status_code == 200, r.text
                assert "the password is [redacted], the key [redacted]" in r.text, r.text
        assert URL_PASSWORD not in p.stop()


# ------------------------------------------------------------------ issue 20, item 8
QUERY_KEY = "canary-query-key-M4VB8WQ2ZL"


def test_a_client_key_in_any_spelling_never_goes_upstream():
    """Every header a client key may come in (Authorization, x-api-key, api-key, x-goog-api-key) and Google's
    `?key=` are removed before forwarding; each one alone is accepted."""
    spellings = ({"Authorization": f"Bearer {CLIENT_KEY}"}, {"x-api-key": CLIENT_KEY}, {"api-key": CLIENT_KEY},
                 {"x-goog-api-key": CLIENT_KEY})
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, OPENAI_API_KEY=UPSTREAM_KEY, ENABLE_AUTH="true",
                           API_KEY_SECRET=CLIENT_KEY, MAX_RETRIES="0") as p:
            for headers in spellings:
                assert requests.post(p.base_url + "/chat/completions", json=chat(), headers=headers,
                                     timeout=10).status_code == 200, headers
            every = {name: value for h in spellings for name, value in h.items()}
            r = requests.post(p.base_url + "/chat/completions", json=chat(), headers=every, timeout=10)
            assert r.status_code == 200
            r = requests.get(p.url + f"/v1/files?purpose=batch&key={CLIENT_KEY}&KEY%5B%5D={CLIENT_KEY}",
                             headers=every, timeout=10)
            assert r.status_code == 200
            assert fake.received[-1].query == "purpose=batch"
        for got in fake.received:
            assert CLIENT_KEY not in json.dumps(got.headers) + got.query, got.headers
            assert got.headers.get("Authorization") == f"Bearer {UPSTREAM_KEY}"


def test_a_base_url_query_is_the_upstreams_query_and_a_secret(tmp_path: Path):
    """base_url ...?api_key=KEY: the path goes before the query, the client's query after it, and the key is
    a secret (not in answers, logs, journals, /health or --show)."""
    log_dir = tmp_path / "journals"
    outputs: list[str] = []
    with FakeOpenAI() as fake:
        entries = json.dumps([{"name": "*", "backend": "openai", "base_url": f"{fake.base_url}?api_key={QUERY_KEY}"}])
        show = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path, capture_output=True, text=True,
                              env=base_env(str(tmp_path), MODELS=entries), timeout=30)
        assert show.returncode == 0, show.stderr
        outputs.append(show.stdout + show.stderr)
        with running_proxy(MODELS=entries, DEBUG="true", LOG_DIR=str(log_dir), MAX_RETRIES="0") as p:
            r = requests.post(p.base_url + "/chat/completions?x=1&api_key=evil", json=chat(), timeout=10)
            assert r.status_code == 200, r.text
            got = fake.received[-1]
            assert (got.path, got.query) == ("/v1/chat/completions", f"api_key={QUERY_KEY}&x=1")
            fake.add(Reply({"error": {"message": f"bad key: api_key={QUERY_KEY} on {got.path}?{got.query}",
                                      "type": "invalid_request_error"}}, status=400))
            outputs.append(dump(requests.post(p.base_url + "/chat/completions", json=chat(), timeout=10)))
            fake.add(Stream(chat_chunks([f"echo {QUERY_KEY}"])))
            outputs.append(dump(requests.post(p.base_url + "/chat/completions", json=chat(stream=True), timeout=10)))
            outputs.append(dump(requests.get(p.url + "/health", timeout=10)))
            assert poll(lambda: "GET /health" in p.read_log())
        outputs.append(p.stop())
    outputs += [f.read_text(errors="replace") for f in log_dir.rglob("*") if f.is_file()]
    where = [text[max(0, text.find(QUERY_KEY) - 200):][:400] for text in outputs if QUERY_KEY in text]
    assert not where, where
    assert any("[redacted]" in text for text in outputs)  # the echoed key was there, and replaced
