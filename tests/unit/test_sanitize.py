"""Upstream error messages lose credentials, keys, stack traces, file paths and internal host names,
and keep the words a user can act on."""

from __future__ import annotations

import pytest

from argoproxy.sanitize import MAX_MESSAGE, internal_host, sanitize_message


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
