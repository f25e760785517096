"""Upstream error messages lose credentials, keys, stack traces, file paths and internal host names,
and keep the words a user can act on."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from argoproxy.redaction import MAX_MESSAGE, internal_host, sanitize_message


@pytest.mark.parametrize("text, gone, kept", [
    ("Incorrect API key provided: sk-proj-****abcd. You can find your API key at "
     "https://platform.openai.com/account/api-keys.", ["sk-proj", "abcd"],
     ["Incorrect API key provided", "https://platform.openai.com/account/api-keys"]),
    ("Failed to reach http://admin:hunter2@10.0.3.4:8000/v1/chat?api_key=XYZ", ["admin", "hunter2", "10.0.3.4", "XYZ"],
     ["Failed to reach"]),
    ("GET https://user:pw@api.example.com/v1/x?token=abc&sig=def failed", ["user:pw", "abc", "def"],
     ["https://api.example.com/v1/x failed"]),
    ("upstream vllm-0.vllm.svc.cluster.local:8000 not reachable", ["vllm-0", "cluster.local"], ["not reachable"]),
    ("cannot reach http://gpu-box:8000/v1", ["gpu-box"], ["cannot reach"]),
    ("no route to 192.168.1.20:443 or 127.0.0.1", ["192.168.1.20", "127.0.0.1"], ["no route to"]),
    ("sent Authorization: Bearer abcdefghijklmnop", ["abcdefghijklmnop"], ["sent"]),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl expired", ["eyJhbGci"], ["expired"]),
    ("api_key=abcdef123456 is invalid", ["abcdef123456"], ["is invalid"]),
    ('{"password": "s3cr3t!"} rejected', ["s3cr3t"], ["rejected"]),
    ("AWS key AKIAABCDEFGHIJKLMNOP denied", ["AKIAABCDEFGHIJKLMNOP"], ["denied"]),
    ("failed to load /home/deploy/models/llama/config.json", ["/home/deploy"], ["failed to load"]),
])
def test_secrets_and_internals_are_removed(text, gone, kept):
    out = sanitize_message(text)
    for g in gone:
        assert g not in out, out
    for k in kept:
        assert k in out, out


def test_python_traceback_keeps_only_the_exception_line():
    text = ("Internal error\nTraceback (most recent call last):\n  File \"/opt/app/server.py\", line 12, in handle\n"
            "    raise ValueError(\"boom\")\nValueError: boom")
    out = sanitize_message(text)
    assert out == "Internal error ValueError: boom"


def test_java_and_go_frames_are_dropped():
    java = "java.lang.RuntimeException: overloaded\n\tat com.foo.Bar.baz(Bar.java:12)\n\tat com.foo.Main.main(Main.java:3)"
    assert sanitize_message(java) == "java.lang.RuntimeException: overloaded"
    go = "panic: out of memory\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:12 +0x1d"
    out = sanitize_message(go)
    assert "goroutine" not in out and "main.go" not in out and out.startswith("panic: out of memory")


def test_known_secrets_and_hosts_are_removed():
    out = sanitize_message("key my-upstream-key rejected by llmbox:9000", secrets=["my-upstream-key"], hosts=["llmbox"])
    assert out == "key [redacted] rejected by [internal host]"


def test_ordinary_messages_are_unchanged():
    for text in ("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
                 "The model `gpt-4.1` does not exist or you do not have access to it.",
                 "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000.",
                 "max_tokens must be at least 1, got 0", "version 1.2.3.400 is not supported"):
        assert sanitize_message(text) == text


def test_long_messages_are_capped():
    assert len(sanitize_message("x " * 5000)) <= MAX_MESSAGE + 3


def test_internal_host():
    for host in ("localhost", "10.1.2.3", "192.168.0.1", "127.0.0.1", "::1", "db", "a.svc.cluster.local", "x.internal",
                 "box.lan", "169.254.169.254"):
        assert internal_host(host), host
    for host in ("api.openai.com", "8.8.8.8", "dashscope.aliyuncs.com"):
        assert not internal_host(host), host


# ------------------------------------------------------------------ the configured secrets (issue 12, item 4)

from hypothesis import given, settings as hyp_settings, strategies as st  # noqa: E402

from argoproxy.redaction import (LogFilter, Secrets, StreamScrubber, configured_secrets, mask_url,  # noqa: E402
                                 redact_log_text, url_credentials)
from argoproxy.config.settings import load_settings  # noqa: E402

KEY = "sk-upstream-0123456789abcdef"
CLIENT = "client-key-ZYXWVUT"


def test_secret_list_comes_from_the_settings_metadata(tmp_path) -> None:
    s = load_settings(environ={"OPENAI_API_KEY": KEY, "API_KEY_SECRET": f"{CLIENT},other-key-123",
                               "TARGET_BASE_URL": "http://bob:s3cr%40t-pass@llm.example/v1/",
                               "CONFIG_PATH": str(_empty_config(tmp_path))})
    found = configured_secrets(s)
    assert {KEY, CLIENT, "other-key-123", "s3cr@t-pass", "bob:s3cr@t-pass"} <= set(found)
    assert base64.b64encode(b"bob:s3cr@t-pass").decode() in found  # as requests sends it (Basic auth)
    assert "http://***@llm.example/v1/" in dict(s.public_items()).values()


def test_the_generated_client_key_is_a_secret_too(tmp_path, monkeypatch) -> None:
    # ENABLE_AUTH without API_KEY_SECRET: the master makes a key and hands it to the workers in the environment.
    from argoproxy.config.listener import GENERATED_KEY_ENV
    monkeypatch.setenv(GENERATED_KEY_ENV, "sk-proxy-generated-0123456789")
    s = load_settings(environ={"ENABLE_AUTH": "true", "CONFIG_PATH": str(_empty_config(tmp_path))})
    assert "sk-proxy-generated-0123456789" in configured_secrets(s)
    s = load_settings(environ={"CONFIG_PATH": str(_empty_config(tmp_path))})  # auth off: the key is not in use
    assert "sk-proxy-generated-0123456789" not in configured_secrets(s)


def _empty_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("{}\n")
    return path


def test_mask_url_and_url_credentials() -> None:
    assert mask_url("see http://u:p@host:8/x and https://tok@h/") == "see http://***@host:8/x and https://***@h/"
    assert mask_url("no credentials at http://host/a@b") == "no credentials at http://host/a@b"
    assert url_credentials("http://host/") == []
    assert "token-as-user" in url_credentials("https://token-as-user@host/")


def test_secrets_are_replaced_in_text_bytes_headers_and_json_escapes() -> None:
    secrets = Secrets([KEY, "short"])  # too short to search for inside text
    assert secrets.text(f"a {KEY} b short") == "a [redacted] b short"
    assert secrets.data(json.dumps({"k": "x/" + KEY}).encode()) == b'{"k": "x/[redacted]"}'
    slashed = Secrets(["key/with/slash-123"])
    assert slashed.data(b'"key\\/with\\/slash-123"') == b'"[redacted]"'
    out = secrets.headers([("X-Echo", f"Bearer {KEY}"), ("Authorization", "Bearer x"), ("Content-Type", "a")])
    assert out == [("X-Echo", "Bearer [redacted]"), ("Content-Type", "a")]
    assert Secrets([]).scrubber() is None


@hyp_settings(max_examples=300, deadline=None)
@given(before=st.binary(max_size=60), after=st.binary(max_size=60), cuts=st.lists(st.integers(0, 200), max_size=8),
       which=st.sampled_from([KEY, CLIENT]))
def test_stream_scrubber_is_safe_across_any_chunk_boundary(before, after, cuts, which) -> None:
    secrets = Secrets([KEY, CLIENT])
    data = before + which.encode() + after
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    out = b"".join(StreamScrubber(secrets).scrub(chunks))
    assert out == secrets.data(data)
    assert which.encode() not in out


def test_stream_scrubber_holds_back_only_a_possible_secret_start() -> None:
    scrubber = StreamScrubber(Secrets([KEY]))
    assert scrubber.feed(b'data: {"a": 1}\n\n') == b'data: {"a": 1}\n\n'  # an event goes out whole, at once
    assert scrubber.feed(b"text sk-upst") == b"text "  # could be the key: held
    assert scrubber.feed(b"ream!") == b"sk-upstream!"  # was not
    assert scrubber.finish() == b""


def test_log_filter_masks_secrets_tokens_and_url_credentials() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "got %s from %s with Bearer abcdefgh1234",
                               (KEY, "http://u:pw@host/"), None)
    LogFilter(Secrets([KEY])).filter(record)
    assert record.getMessage() == "got [redacted] from http://***@host/ with Bearer [redacted]"


def test_gunicorn_access_and_error_logs_are_filtered_too() -> None:
    from argoproxy.observe.logs import configure_logging
    configure_logging(False, Secrets([KEY]))
    access = logging.getLogger("gunicorn.access")
    record = access.makeRecord("gunicorn.access", logging.INFO, __file__, 1, '"%(r)s" %(s)s',
                               ({"r": f"GET /v1/models?api_key={KEY} HTTP/1.1", "s": "200"},), None)
    assert access.filter(record)
    assert KEY not in record.getMessage() and "GET /v1/models?api_key=" in record.getMessage()
    error = logging.getLogger("gunicorn.error")
    record = error.makeRecord("gunicorn.error", logging.WARNING, __file__, 1, "Invalid request: %s", (KEY,), None)
    error.filter(record)
    assert record.getMessage() == "Invalid request: [redacted]"


def test_a_log_line_is_cut_at_max_log_chars_without_leaving_part_of_a_secret() -> None:
    from argoproxy.redaction import MAX_LOG_CHARS
    text = "x" * (MAX_LOG_CHARS - 5) + KEY + "y" * 3_000_000  # the key straddles the cut
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "dropped: %s", (text,), None)
    LogFilter(Secrets([KEY])).filter(record)
    line = record.getMessage()
    assert len(line) < MAX_LOG_CHARS + 100 and line.endswith(f"[cut: the message had {len(text) + 9:,} characters]")
    assert KEY[:5] not in line.replace("[redacted]", "")


def test_a_listing_of_client_values_is_bounded() -> None:
    from argoproxy.redaction import listing
    assert listing(["a", "b"]) == "a, b"
    many = listing([f"type_{i}" + "z" * 1000 for i in range(40_000)])
    assert len(many) < 1000 and many.startswith("type_0zzz") and many.endswith("and 39,990 more")


def test_log_filter_makes_lone_surrogates_writable() -> None:
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "model=%s", ("a\ud800b é",), None)
    LogFilter(Secrets([])).filter(record)
    assert record.getMessage() == "model=a\\ud800b é"
    record.getMessage().encode("utf-8")


@pytest.mark.parametrize("name", ["x\nFORGED 2026-01-01 WARNING admin", "x\rFORGED", "x\u2028FORGED", "x\x85FORGED",
                                  "x\x1b[31mFORGED", "x\tFORGED"])
def test_a_client_value_cannot_start_a_log_line_or_send_terminal_escapes(name) -> None:
    # A model name (or any client text) with a line break would forge a log line of its own.
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "POST /v1/chat/completions model=%s status=%s",
                               (name, 200), None)
    LogFilter(Secrets([])).filter(record)
    line = record.getMessage()
    assert line.isprintable() and line.startswith("POST /v1/chat/completions model=x\\") and "FORGED" in line
    assert line.endswith(" status=200")


@pytest.mark.parametrize("text", ["a." * 30000, "1." * 30000, "a." * 30000 + "local", "sk-" * 20000, "eyJaaaaa." * 6000,
                                  "a" + ":a" * 30000, "x:y@" * 15000, "/home/" + "a/" * 30000, "aaaa:" * 12000 + "@",
                                  "http://" + "a." * 30000])
def test_sanitizing_a_hostile_upstream_message_takes_linear_time(text) -> None:
    # An upstream's error text is read up to 64 KB; crafted text made the regular expressions take minutes.
    import time
    started = time.perf_counter()
    out = sanitize_message(text, ["secret123"], ["host.internal"])
    assert time.perf_counter() - started < 0.5 and len(out) <= MAX_MESSAGE + 3


def test_a_secret_cut_by_the_length_cap_is_still_removed() -> None:
    key = "sk-proj-" + "Q" * 40
    text = "x" * 3990 + key + " tail"
    assert "QQQQQQ" not in sanitize_message(text * 2, [key])
    assert "QQQQQQ" not in sanitize_message("y" * 3995 + key)


def test_journals_redact_any_key_the_proxy_made():
    """Team keys are stored hashed, so no list of secrets holds them: the journal finds them by their prefix."""
    from argoproxy.config.listener import generate_key
    from argoproxy.redaction import Redactor
    key = generate_key()
    assert Redactor().value({"messages": [{"content": f"my key {key}, ok?"}]}) == \
        {"messages": [{"content": "my key [REDACTED], ok?"}]}
    assert Redactor().text("the sk-proxy- prefix alone stays") == "the sk-proxy- prefix alone stays"


def test_a_body_prefix_cut_inside_a_proxy_key_keeps_none_of_it():
    from argoproxy.config.listener import generate_key
    from argoproxy.redaction import Redactor
    key = generate_key()
    for cut in range(1, len(key)):
        kept = Redactor().cut_partial("prompt: " + key[:cut])
        assert kept == "prompt: " or (cut <= 2 and kept == "prompt: " + key[:cut]), (cut, kept)
    assert Redactor().cut_partial("ends with a word") == "ends with a word"


def test_a_data_urls_kept_start_holds_no_key():
    from argoproxy.config.listener import generate_key
    from argoproxy.redaction import Redactor
    key = generate_key()
    for payload in (key + "A" * 200, "QUJD" + key[:20] + "B" * 200):
        kept = Redactor([key]).text("data:text/plain;base64," + payload)
        assert "sk-proxy-" not in kept and key[9:20] not in kept and "base64 chars truncated" in kept, kept
    for head in (f"data:{key};base64,", "data:x-sk-upstream-secret;base64,"):  # its media type too
        kept = Redactor(["sk-upstream-secret"]).text(head + "A" * 200)
        assert "sk-proxy-" not in kept and "sk-upstream-secret" not in kept and "truncated" in kept, kept


@pytest.mark.parametrize("text", ["an asterisk-form target", "task-runner started", "ask-me-anything"])
def test_a_word_with_sk_inside_is_not_a_key(text):
    """`sk-` inside a word is not a key's start: Gunicorn's "an asterisk-form target" was logged "an aster[redacted]"."""
    assert redact_log_text(text) == text


@pytest.mark.parametrize("text", ["key sk-abcdef123", "x:sk-abcdef123", "id_sk-abcdef123", "(sk-abcdef123)"])
def test_a_key_after_punctuation_is_still_masked(text):
    assert "abcdef123" not in redact_log_text(text)
