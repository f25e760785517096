"""Image URL inlining through the running app (argo backend), as an attacker would use it (issue 7, part 4):
no fetch of loopback, private, link-local or metadata addresses unless allowed; redirects, size, time and
content type bounded. Address classification and per-hop redirect re-checks are unit-tested in
tests/unit/test_images.py (they need a fake resolver, which a separate process cannot have)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.fakes.fake_argo import CHAT_PATH, FakeArgo
from tests.fakes.fake_images import FakeImageServer
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(60)


def image_message(*urls: str) -> list[dict]:
    parts = [{"type": "text", "text": "What is this?"}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts}]


def send_images(p, argo, urls: list[str]) -> tuple[list[str], float]:
    """POST a chat with these image URLs; return the URLs ARGO received and how long the call took."""
    start = time.monotonic()
    r = requests.post(p.base_url + "/chat/completions", timeout=30,
                      json={"model": "argo:gpt-4o", "messages": image_message(*urls)})
    took = time.monotonic() - start
    assert r.status_code == 200, r.text  # a refused image never fails the request
    parts = argo.requests_to(CHAT_PATH)[-1].json["messages"][0]["content"]
    return [part["image_url"]["url"] for part in parts if part.get("type") == "image_url"], took


def test_internal_addresses_are_never_fetched():
    with FakeArgo() as argo, FakeImageServer() as imgs:
        port = imgs.port
        urls = [
            imgs.url("/img/red.png"),                               # loopback by address
            f"http://localhost:{port}/img/red.png",                 # loopback by name
            f"http://[::1]:{port}/img/red.png",                     # IPv6 loopback
            f"http://[::ffff:127.0.0.1]:{port}/img/red.png",        # IPv4-mapped IPv6
            f"http://2130706433:{port}/img/red.png",                # 127.0.0.1 as one decimal number
            f"http://0.0.0.0:{port}/img/red.png",                   # unspecified
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata
            "http://[fd00:ec2::254]/latest/meta-data/",             # AWS IPv6 metadata
            "http://metadata.google.internal/computeMetadata/v1/",  # GCP metadata name
            "http://10.0.0.1/a.png", "http://192.168.1.1/a.png", "http://172.16.0.1/a.png",
            "http://100.64.0.1/a.png",                              # carrier-grade NAT
            f"http://user:pw@127.0.0.1:{port}/img/red.png",         # credentials in the URL
            "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://127.0.0.1/a.png",
        ]
        with running_proxy(**argo_env(argo, IMAGE_TIMEOUT="3")) as p:
            got, took = send_images(p, argo, urls)
        assert got == urls  # every URL left exactly as it was
        assert imgs.requests == []  # and none of them was fetched
        assert took < 5


def test_bounds_when_private_addresses_are_allowed():
    with FakeArgo() as argo, FakeImageServer() as imgs:
        env = argo_env(argo, IMAGE_ALLOW_PRIVATE="true", IMAGE_TIMEOUT="1.5", MAX_IMAGE_BYTES="200000")
        with running_proxy(**env) as p:
            ok = imgs.url("/redirect/2")                       # two hops: followed
            too_many = imgs.url("/redirect/6")                 # more than max_redirects: refused
            html = imgs.url("/page.html")                      # not an image
            disguised = imgs.url("/fake.png")                  # HTML served as image/png
            endless = imgs.url("/endless.png")                 # never ends: stops at max_image_bytes
            liar = imgs.url("/liar.png")                       # declares 50 MB: refused before reading
            slow = imgs.url("/slow.png?every=0.05")            # each read quick, the whole too slow
            scheme = imgs.url("/to?url=file:///etc/passwd")    # redirect to another scheme
            got, took = send_images(p, argo, [ok, too_many, html, disguised, endless, liar, slow, scheme])
        assert got[0].startswith("data:image/png;base64,")
        assert got[1:] == [too_many, html, disguised, endless, liar, slow, scheme]
        assert took < 1.5 + 3  # the downloads run at once, each within image_timeout
