"""Team keys through the running proxy: issued, limited, revoked and audited with `cot_proxy.py keys ...`
while it serves, without a restart; API_KEY_SECRET stays the admin key beside them."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import openai
import pytest
import requests

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ, running_proxy

MSG = [{"role": "user", "content": "hi"}]


def keys(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = clean_environ()
    return subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "keys", "--keys-db", str(db), *args],
                          env=env, capture_output=True, text=True, timeout=60)


def create(db: Path, name: str, *options: str) -> str:
    done = keys(db, "create", name, *options)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("sk-proxy-") and "shown only now" in done.stderr
    return key


def usage_row(db: Path, name: str, requests: int) -> list[str]:
    """The key's usage row once it counts `requests` requests (rows are written in batches, by every worker)."""
    def row() -> list[str] | None:
        for line in csv.reader(keys(db, "usage", "--csv").stdout.splitlines()):
            if line[:1] == [name] and line[3] == str(requests):
                return line
        return None
    found = poll(row, timeout=10)
    assert found is not None, keys(db, "usage", "--csv").stdout
    return found


@pytest.fixture
def team(tmp_path):
    db = tmp_path / "keys.db"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET="admin-key", KEYS_DB=str(db), WORKERS="2") as proxy:
        yield db, fake, proxy


def test_a_key_made_while_serving_works_and_is_stored_hashed(team):
    db, fake, proxy = team
    key = create(db, "alice")
    answer = openai_sdk(proxy, key).chat.completions.create(model="gpt-4o", messages=MSG)
    assert answer.choices[0].message.content
    assert key not in db.read_bytes().decode("latin-1") and key[:12] in db.read_bytes().decode("latin-1")
    assert key not in str([r.headers for r in fake.received]) and key not in proxy.read_log()
    assert openai_sdk(proxy, "admin-key").models.list()  # the admin key keeps working beside team keys
    with pytest.raises(openai.AuthenticationError):
        openai_sdk(proxy, "sk-proxy-unknown").chat.completions.create(model="gpt-4o", messages=MSG)


def test_model_globs_narrow_and_limits_answer_429_in_each_doors_shape(team):
    db, _, proxy = team
    key = create(db, "bob", "--models", "gpt-4o*", "--rpm", "3")
    client = openai_sdk(proxy, key)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="claude-x", messages=MSG)
    assert denied.value.code == "model_not_allowed"
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    retry_after = int(limited.value.response.headers["Retry-After"])
    assert 1 <= retry_after <= 60  # never more than the rpm window
    with pytest.raises(anthropic.RateLimitError) as messages:
        anthropic_sdk(proxy, key).messages.create(model="gpt-4o", max_tokens=20, messages=MSG)
    body = messages.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(messages.value.response.headers["Retry-After"]) <= 60
    # The status page names the key on its refusals too: the requests an operator most needs to attribute
    recent = requests.get(proxy.url + "/ui/data", headers={"Authorization": "Bearer admin-key"}, timeout=10).json()
    assert {(r["status"], r["key"]) for r in recent["recent"]} >= {(403, "bob"), (429, "bob"), (200, "bob")}


def test_model_globs_hold_on_every_route_and_metrics_are_the_admins(team):
    """A key made for some models cannot reach others through the forwarded routes (a JSON body, a form, a batch
    file, a model id), nor get the upstream's default by naming none; /metrics, which counts every team's use,
    is the admin key's."""
    db, fake, proxy = team
    key = create(db, "frank", "--models", "gpt-4o*")
    auth = {"Authorization": f"Bearer {key}"}
    url = proxy.base_url
    batch_line = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4.1"}}'
    refused = [
        requests.post(url + "/images/generations", json={"model": "dall-e-3", "prompt": "a cat"}, headers=auth),
        requests.post(url + "/images/generations", json={"prompt": "a cat"}, headers=auth),  # the default: dall-e-2
        requests.post(url + "/moderations", json={"input": "x"}, headers=auth),
        requests.post(url + "/images/edits", data={"prompt": "p"}, files={"image": ("a.png", b"PNG")}, headers=auth),
        requests.delete(url + "/models/ft:gpt-4o:x", headers=auth),
        requests.post(url + "/chat/completions", json={"messages": MSG}, headers=auth),
        requests.post(url + "/chat/completions", json={"model": None, "messages": MSG}, headers=auth),
        requests.post(url + "/embeddings", json={"input": "hi"}, headers=auth),
        requests.post(url + "/audio/transcriptions", data={"model": "whisper-1"},
                      files={"file": ("a.wav", b"RIFF")}, headers=auth),
        requests.post(url + "/files", data={"purpose": "batch"}, files={"file": ("b.jsonl", batch_line)},
                      headers=auth),
    ]
    refused.append(requests.post(url + "/foo?model=llama", json={"input": "x"}, headers=auth))  # a query names it
    for r in refused:
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", (r.request.url, r.text)
    assert fake.received == []
    metrics = requests.get(proxy.url + "/metrics", headers=auth, timeout=10)
    assert metrics.status_code == 403 and metrics.json()["error"]["code"] == "admin_key_required"
    assert requests.get(proxy.url + "/metrics", headers={"Authorization": "Bearer admin-key"}, timeout=10).ok
    allowed = requests.post(url + "/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG}, headers=auth)
    assert allowed.status_code == 200


def test_a_keys_model_list_shows_what_it_may_use(team):
    db, fake, proxy = team
    fake.add(Reply({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "x"}
                                               for m in ("gpt-4o", "gpt-4o-mini", "llama", "secret-model")]}))
    key = create(db, "lister", "--models", "gpt-4o*")
    assert sorted(m.id for m in openai_sdk(proxy, key).models.list()) == ["gpt-4o", "gpt-4o-mini"]
    for path, headers in (("/v1/models/llama", {}), ("/v1/models/llama", {"anthropic-version": "2023-06-01"}),
                          ("/v1beta/models/llama", {})):  # one model the key may not use: 403 on every door
        r = requests.get(proxy.url + path, headers={"Authorization": f"Bearer {key}", **headers}, timeout=10)
        assert r.status_code == 403, (path, headers, r.text)


def test_forwarded_routes_count_tokens_against_the_key(team):
    """A forwarded route's answer (a server's own API, a route the proxy does not model) is relayed as it came,
    and its usage, read from its bytes, counts against a key's budget under the model its body names."""
    db, fake, proxy = team
    key = create(db, "fwd", "--budget", "50/day")
    auth = {"Authorization": f"Bearer {key}"}
    statuses = []
    for n in range(4):  # the second compressed though asked for none (a careless server): read decoded
        fake.add(Reply({"id": "x", "usage": {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15}},
                       gzip=n == 1))
        r = requests.post(proxy.base_url + "/custom/generate", json={"model": "gpt-4o", "prompt": "hi",
                                                                     "max_tokens": 10}, headers=auth, timeout=20)
        statuses.append(r.status_code)
    assert statuses == [200, 200, 200, 429]  # 45 tokens served of 50: the fourth may use 14 more (its strings, 10)
    name, model, day, count, input_tokens, output_tokens, cost, unpriced = usage_row(db, "fwd", 3)
    assert (model, count, input_tokens, output_tokens) == ("gpt-4o", "3", "15", "30")
    # /metrics counts the same tokens for the key (it read only OpenAI's names; a forwarded answer's usage is
    # read in Anthropic's, so it counted none of them)
    metrics = requests.get(proxy.url + "/metrics", headers={"Authorization": "Bearer admin-key"}, timeout=10).text
    assert 'cot_proxy_key_tokens_total{key="fwd",type="prompt"} 15.0' in metrics, metrics[-3000:]
    assert 'cot_proxy_key_tokens_total{key="fwd",type="completion"} 30.0' in metrics
    # the client's gzip is not passed on: the usage is read from the answer's bytes
    assert all(r.headers.get("Accept-Encoding") == "identity" for r in fake.received if r.method == "POST")


def test_reading_back_an_object_that_reports_usage_is_not_charged(team):
    """Polling a batch (or a stored response, or a batch's output file) shows the usage of work done before:
    only a POST's answer counts against the key."""
    db, fake, proxy = team
    key = create(db, "poller", "--budget", "1000/day")
    for _ in range(3):
        fake.add(Reply({"id": "batch_1", "object": "batch", "usage": {"input_tokens": 1_000_000,
                                                                      "output_tokens": 500_000}}))
        r = requests.get(proxy.base_url + "/batches/batch_1", headers={"Authorization": f"Bearer {key}"}, timeout=20)
        assert r.status_code == 200
    assert usage_row(db, "poller", 3)[3:] == ["3", "0", "0", "0.00", "0"]


def test_a_token_budget_refuses_until_its_period_ends(team):
    db, _, proxy = team
    key = create(db, "carol", "--budget", "30/day")  # each fake answer uses 12 tokens, each request may use 12
    client = openai_sdk(proxy, key)
    client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=5)
    client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=5)
    with pytest.raises(openai.RateLimitError) as limited:  # at once: an answer's tokens count as it ends
        client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=5)
    assert "30/day" in limited.value.message
    assert 1 <= int(limited.value.response.headers["Retry-After"]) <= 86400


def test_back_to_back_requests_get_the_budget_and_no_more(team):
    """Each answer's tokens count before the next request is admitted, on every worker: a client sending as fast
    as it can gets its budget, not the answers of the half second before a batch was written (78 times it)."""
    db, fake, proxy = team
    fake.usage = {"prompt_tokens": 400, "completion_tokens": 600, "total_tokens": 1000}
    key = create(db, "dave", "--budget", "3000/day")
    statuses = []
    with requests.Session() as session:  # one connection after another, across both workers
        for _ in range(12):
            r = session.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG,
                                                                          "max_tokens": 600},
                             headers={"Authorization": f"Bearer {key}", "Connection": "close"}, timeout=20)
            statuses.append(r.status_code)
    assert statuses == [200] * 3 + [429] * 9


def test_a_stream_its_client_leaves_still_counts(team):
    """A client that reads the first words of a stream and hangs up before the usage chunk: the upstream ran
    (and bills) the request, so the key is charged what the proxy can estimate: its prompt and what it relayed."""
    db, fake, proxy = team
    fake.add(Stream(chat_chunks(["Hello", " world", " and more"], usage=True), pause_at={3: 3.0}))
    key = create(db, "erin", "--budget", "1000000/day")
    with requests.post(proxy.base_url + "/chat/completions", stream=True, timeout=20,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"model": "gpt-4o", "messages": MSG, "stream": True}) as r:
        assert r.status_code == 200
        seen = b""
        for piece in r.iter_content(None):
            seen += piece
            if b"world" in seen:
                break
    usage = poll(lambda: [row for row in keys(db, "usage", "--csv").stdout.splitlines() if row.startswith("erin,")],
                 timeout=10)
    name, model, day, requests_, input_tokens, output_tokens, cost, unpriced = next(csv.reader(usage))
    assert (name, model, requests_) == ("erin", "gpt-4o", "1") and int(input_tokens) > 0 and int(output_tokens) > 0


def test_a_key_is_changed_without_being_issued_again(team):
    """`keys update` changes an active key's models and limits in place: the same key keeps working, its usage
    is kept, and every worker applies the change within a second (before, a key could only be revoked and made
    again, which handed its people a new key)."""
    db, _, proxy = team
    key = create(db, "erin", "--models", "gpt-4o", "--rpm", "2")
    client = openai_sdk(proxy, key)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    done = keys(db, "update", "erin", "--rpm", "0", "--models", "gpt-4o,claude-*", "--budget", "10000/day")
    assert done.returncode == 0 and "updated 'erin'" in done.stderr, done.stderr

    def served() -> bool:  # within a second on every worker: a few requests, none refused after the first ok
        try:
            client.chat.completions.create(model="claude-x", messages=MSG)
            return True
        except (openai.RateLimitError, openai.PermissionDeniedError):
            return False
    changed_at = time.monotonic()
    assert poll(served, timeout=5)
    assert time.monotonic() - changed_at < 2.5
    for _ in range(4):  # both workers: no rpm any more
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    listing = keys(db, "list").stdout
    row = next(line for line in listing.splitlines() if line.startswith("erin"))
    assert "gpt-4o,claude-*" in row and "10000/day" in row and "active" in row, listing
    assert keys(db, "update", "erin").returncode == 2  # nothing to change
    emptied = keys(db, "update", "erin", "--models", "")  # an empty variable must not open the key to every model
    assert emptied.returncode == 2 and "--models needs globs" in emptied.stderr
    assert "no active key" in keys(db, "update", "nobody", "--rpm", "3").stderr
    assert keys(db, "update", "erin", "--rpm", "-1").returncode == 2


def test_revoke_takes_effect_on_every_worker_and_usage_is_audited(team):
    db, _, proxy = team
    key = create(db, "dave")
    client = openai_sdk(proxy, key)
    for _ in range(6):  # two workers: both have seen (and cached) the key
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    done = keys(db, "revoke", "dave")
    assert done.returncode == 0, done.stderr
    revoked_at = time.monotonic()

    served = 6

    def refused_everywhere() -> bool:  # a worker may still serve it for up to 0.5 s: those count as usage
        nonlocal served
        statuses = [requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code
                    for _ in range(6)]
        served += statuses.count(200)
        return set(statuses) == {401}
    assert poll(refused_everywhere, timeout=10)
    print(f"revoked key refused by every worker after {time.monotonic() - revoked_at:.2f} s")

    def audited() -> list[dict[str, str]]:  # workers write usage in batches, at most FLUSH_SECONDS late
        rows = list(csv.DictReader(io.StringIO(keys(db, "usage", "--csv").stdout)))
        mine = [r for r in rows if r["key"] == "dave"]
        return mine if mine and int(mine[0]["requests"]) >= served else []
    mine = poll(audited, timeout=10, interval=0.2)
    assert len(mine) == 1 and mine[0]["model"] == "gpt-4o" and int(mine[0]["requests"]) == served
    assert int(mine[0]["input_tokens"]) == 5 * served and int(mine[0]["output_tokens"]) == 7 * served
    listing = keys(db, "list").stdout
    assert "dave" in listing and "revoked" in listing and key not in listing

    metrics = requests.get(proxy.url + "/metrics", headers={"Authorization": "Bearer admin-key"}).text
    assert f'cot_proxy_key_requests_total{{key="dave",model="gpt-4o",status="200"}} {served}.0' in metrics
    assert key not in metrics


def test_an_expired_key_is_refused(team):
    from argoproxy.teamkeys.records import KeyRecord, digest
    from argoproxy.teamkeys.store import SQLiteKeyStore
    db, _, proxy = team
    SQLiteKeyStore(db).create(KeyRecord("old", digest("sk-proxy-old"), "sk-proxy-old", expires=time.time() - 1))
    with pytest.raises(openai.AuthenticationError) as refused:
        openai_sdk(proxy, "sk-proxy-old").chat.completions.create(model="gpt-4o", messages=MSG)
    assert "expired" in refused.value.message


def test_bad_options_are_one_line(tmp_path):
    db = tmp_path / "keys.db"
    for args, words in ((("create", "x y"), "key name"), (("create", "e", "--budget", "10/fortnight"), "--budget"),
                        (("create", "e", "--rpm", "0"), "--rpm"), (("create", "e", "--expires", "2001-01-01"),
                                                                   "future"), (("revoke", "nobody"), "no active key"),
                        (("create", "e", "--rpm", "9" * 23), "--rpm"), (("create", "e", "--budget", "1e30/day"),
                                                                         "--budget"),
                        (("create", "e", "--budget-usd", "1e999999/day"), "--budget-usd is at most"),
                        (("create", "e", "--rpm", "9" * 5000), "--rpm")):
        done = keys(db, *args)
        assert done.returncode == 2 and done.stderr.startswith("cot_proxy keys: ") and words in done.stderr, done.stderr
    done = keys(db, "usage", "--since", "garbage")
    assert done.returncode == 2 and "YYYY-MM-DD" in done.stderr and done.stdout == ""


def test_a_key_pasted_into_a_prompt_is_not_journaled(tmp_path):
    """Journals keep prompts for the admin to read: a team key a user pastes into one (their own or another's:
    the proxy holds only hashes of keys it did not see this request) is redacted there like any secret."""
    db, logs = tmp_path / "keys.db", tmp_path / "logs"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", LOG_DIR=str(logs),
                                             API_KEY_SECRET="admin-key", KEYS_DB=str(db)) as proxy:
        alice, bob = create(db, "alice"), create(db, "bob")
        prompt = [{"role": "user", "content": f"why does {alice} fail, and {bob}?"}]
        openai_sdk(proxy, alice).chat.completions.create(model="gpt-4o", messages=prompt)
        journals = logs / "client_interaction.jsonl", logs / "server_interaction.jsonl"
        poll(lambda: all(j.exists() and j.read_text().count("\n") >= 1 for j in journals))
        assert bob in fake.received[-1].json()["messages"][0]["content"]  # the upstream gets the prompt as written
    everything = "".join(f.read_text() for f in logs.iterdir() if f.is_file())
    assert "why does [REDACTED] fail" in everything
    assert alice not in everything and bob not in everything and "sk-proxy-" not in everything


@pytest.mark.parametrize("stream", [True, False])
def test_a_key_without_token_limits_is_charged_the_estimate_and_the_status_page_agrees(team, stream):
    """An upstream that sends no usage (llama.cpp's server ignores include_usage): a key without --tpm or --budget
    was charged `input 1, output 0` for a stream, and /ui showed 0/0 while `keys usage` said 1. Now both show the
    estimate of its prompt and of what was answered."""
    db, fake, proxy = team
    fake.sends_stream_usage = False
    fake.default_content = "A fairly long answer with many words in it, so it counts for more than one token."
    if not stream:
        whole = chat_completion(fake.default_content)
        whole.pop("usage", None)
        fake.add(Reply(whole))  # no usage member
    key = create(db, "plain")
    prompt = [{"role": "user", "content": "Tell me about the many words of a fairly long prompt, please."}]
    r = requests.post(proxy.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=20,
                      json={"model": "gpt-4o", "messages": prompt, "stream": stream})
    assert r.status_code == 200
    row = usage_row(db, "plain", 1)
    input_tokens, output_tokens = int(row[4]), int(row[5])
    assert input_tokens >= 10 and output_tokens >= 10, row
    page = requests.get(proxy.url + "/ui/data", headers={"Authorization": "Bearer admin-key"}, timeout=10).json()
    mine = next(k for k in page["keys"] if k["key"] == "plain")
    assert (mine["prompt_tokens"], mine["completion_tokens"]) == (input_tokens, output_tokens), (mine, row)


def test_keys_made_at_once_in_a_new_store_are_all_made(tmp_path):
    """Commands started together on a store that does not exist yet each add its newer columns: one does, the
    others see them (a CI run met "duplicate column name" when they raced)."""
    db = tmp_path / "keys.db"
    names = [f"user{i}" for i in range(8)]
    started = [subprocess.Popen([sys.executable, str(ROOT / "cot_proxy.py"), "keys", "--keys-db", str(db), "create",
                                 name], cwd=ROOT, env=clean_environ(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in names]
    for process in started:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    listed = keys(db, "list").stdout
    assert all(name in listed for name in names), listed


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_usage_counted_just_before_a_quick_stop_is_written(kind, tmp_path):
    """A worker writes its keys' usage every half second; Gunicorn's quick stop (Ctrl+C, SIGINT) ends it with no
    atexit hook, and the usage of the requests answered since its last write was lost (seen as a tool call missing
    from `keys usage`). Now the quick stop writes it first."""
    from tests.integration.test_reservations import Store
    store = Store(kind, tmp_path)
    try:
        key = store.create("quick")
        where = {"REDIS_URL": store.redis.url} if store.redis else {"KEYS_DB": str(store.db)}
        with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                                 API_KEY_SECRET="admin-key", **where) as proxy:
            for _ in range(3):
                assert openai_sdk(proxy, key).chat.completions.create(model="gpt-4o", messages=MSG).choices
            log = proxy.stop()  # at once: within the half second the usage waits to be written
        assert store.usage("quick")[0] == 3, log
        assert "not written" not in log and "Traceback" not in log, log
    finally:
        store.close()
