"""The fakes refuse a JSON body a strict reader refuses (tests/fakes/strict_json.py), as the servers they stand for
do: a lone surrogate escape, or bytes that are not UTF-8, is a 400 in the server's own shape, never a crash (the
fake ARGO's embeddings raised on one, and the proxy answered 502). A surrogate pair (an escaped emoji) is text."""

from __future__ import annotations

import pytest
import requests

from tests.fakes.fake_argo import CHAT_PATH, EMBED_PATH, FakeArgo
from tests.fakes.fake_dashscope import GENERATION, FakeDashScope
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.strict_json import json_problem

LONE = b'{"model": "m", "user": "u", "prompt": ["a\\ud800"], "messages": [{"role": "user", "content": "a\\udc00b"}]}'
RAW = LONE.replace(b"\\ud800", b"\xed\xa0\x80")  # the surrogate's UTF-8 spelling, which json.loads takes
PAIR = LONE.replace(b"\\ud800", b"\\ud83d\\ude00").replace(b"\\udc00", b"")


def test_json_problem_names_what_a_strict_reader_refuses():
    assert "\\ud800" in json_problem(LONE) and "UTF-8" in json_problem(RAW)
    assert json_problem(PAIR) is None and json_problem(b'"\\\\ud800"') is None  # a backslash, then text
    assert json_problem(b"--boundary\r\n\xff") is None and json_problem(b"{not json") is None


def post(url: str, body: bytes) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
                         timeout=10)


@pytest.mark.parametrize("body", [LONE, RAW], ids=["escape", "raw bytes"])
def test_fake_openai_answers_400_in_openai_or_anthropic_shape(body):
    with FakeOpenAI() as fake:
        err = post(fake.base_url + "chat/completions", body)
        assert err.status_code == 400 and err.json()["error"]["type"] == "invalid_request_error", err.text
        assert set(err.json()["error"]) == {"message", "type", "param", "code"}
        msg = post(fake.base_url + "messages", body)
        assert msg.status_code == 400 and msg.json()["type"] == "error", msg.text
        assert post(fake.base_url + "chat/completions", PAIR).status_code == 200
        fake.accepts_lone_surrogates = True
        assert post(fake.base_url + "chat/completions", body).status_code == 200


@pytest.mark.parametrize("body", [LONE, RAW], ids=["escape", "raw bytes"])
def test_fake_argo_answers_400_in_its_own_shape_and_its_native_apis_shapes(body):
    with FakeArgo() as argo:
        for path in (CHAT_PATH, EMBED_PATH):
            r = post(argo.base_url + path, body)
            assert r.status_code == 400 and "not valid JSON" in r.json()["detail"], r.text
        assert post(argo.base_url + EMBED_PATH, PAIR).status_code == 200
        native = post(argo.native_base_url + "chat/completions", body)
        assert native.status_code == 400 and native.json()["error"]["type"] == "invalid_request_error", native.text
        assert post(argo.native_base_url + "messages", body).json()["type"] == "error"


def test_fake_dashscope_answers_400_invalid_parameter():
    with FakeDashScope(api_key="k") as ds:
        for body in (LONE, RAW):
            r = post(ds.root_url + GENERATION.lstrip("/"), body)
            assert r.status_code == 400 and r.json()["code"] == "InvalidParameter", r.text


@pytest.mark.parametrize("fake", ["openai", "otlp"])
def test_a_client_that_resets_its_connection_is_no_traceback(fake, capfd):
    """A proxy's pool closing a kept-alive connection resets it: the fakes say nothing (QuietServer: tracebacks of
    these made the suite's output noisy), and serve on."""
    import socket
    import struct
    import time

    from tests.fakes.otlp_receiver import OtlpReceiver

    with (FakeOpenAI() if fake == "openai" else OtlpReceiver()) as server:
        url = server.base_url if fake == "openai" else server.endpoint + "/"
        host, port = url.split("//")[1].split("/")[0].split(":")
        for _ in range(3):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then kept alive
            sock.recv(65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, not a FIN: the fake's next read fails
        requests.get(url, timeout=5)  # the fake serves on
        deadline, err = time.monotonic() + 1, ""
        while time.monotonic() < deadline and "Traceback" not in err:  # each reset's read has failed by now, or soon
            err += capfd.readouterr().err
            time.sleep(0.05)
    assert "Traceback" not in err
