"""Image inlining against a real loopback image server: formats, limits, SSRF refusals, payload control."""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import logging
import socket
import time

import pytest
import requests
import urllib3.util.connection
from PIL import Image

from argoproxy.upstream import images
from argoproxy.upstream.images import ImageOptions, inline_images, is_public_address, pin_url, truncate_data_urls
from tests.fakes.fake_images import FakeImageServer

LOCAL = ImageOptions(allow_private=True, image_timeout=5.0)


@pytest.fixture(scope="module")
def server():
    with FakeImageServer() as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    return server


@pytest.fixture(scope="module")
def session():
    with images.image_session() as s:
        yield s


def chat(*urls: str) -> dict:
    parts = [{"type": "text", "text": "look"}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return {"model": "gpt4o", "messages": [{"role": "user", "content": parts}]}


def image_urls(body: dict) -> list[str]:
    return [p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p.get("type") == "image_url"]


def decode(data_url: str) -> tuple[str, Image.Image]:
    header, b64 = data_url.split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64")
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return header[len("data:"):-len(";base64")], image


class _NoConnections:
    """Replaces urllib3's connect so a test can prove no socket was ever opened."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, address, *args, **kwargs):
        self.calls.append(address)
        raise AssertionError(f"unexpected connection to {address}")


# --------------------------------------------------------------------------- inlining


@pytest.mark.parametrize("ext,mime,fmt", [
    ("png", "image/png", "PNG"), ("jpg", "image/jpeg", "JPEG"),
    ("webp", "image/webp", "WEBP"), ("gif", "image/gif", "GIF"),
])
def test_inlines_each_format_and_it_decodes(fake, session, ext, mime, fmt):
    url = fake.url(f"/img/blue.{ext}?w=40&h=30")
    body = chat(url)
    out = inline_images(body, LOCAL, session)
    [data_url] = image_urls(out)
    got_mime, image = decode(data_url)
    assert got_mime == mime and image.format == fmt and image.size == (40, 30)
    assert image_urls(body) == [url], "the input body is not modified"
    assert out["messages"][0]["content"][0] == {"type": "text", "text": "look"}


def test_duplicates_downloaded_once_and_data_and_other_urls_untouched(fake, session, caplog):
    url = fake.url("/img/red.png")
    body = {"messages": [
        {"role": "system", "content": "plain string content is skipped"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url, "detail": "low"}}]},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}},
        ]},
    ]}
    with caplog.at_level(logging.WARNING, logger="argoproxy.upstream.images"):
        out = inline_images(body, LOCAL, session)
    urls = image_urls(out)
    assert urls[0] == urls[1] and urls[0].startswith("data:image/png;base64,")
    assert urls[2:] == ["data:image/png;base64,AAAA", "ftp://example.com/x.png"]
    assert out["messages"][1]["content"][0]["image_url"]["detail"] == "low"
    assert [r["path"] for r in fake.requests] == ["/img/red.png"]
    assert "unsupported URL scheme" in caplog.text


def test_body_without_images_is_returned_as_is(session):
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert inline_images(body, LOCAL, session) is body
    assert inline_images({"prompt": "x"}, LOCAL, session) == {"prompt": "x"}


def test_connects_to_checked_ip_and_sends_the_name_as_host(fake, session, monkeypatch):
    real = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):
        if host == "images.test":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(images.socket, "getaddrinfo", fake_dns)
    url = f"http://images.test:{fake.port}/img/red.jpg"
    out = inline_images(chat(url), LOCAL, session)
    assert image_urls(out)[0].startswith("data:image/jpeg;base64,")
    assert fake.requests == [{"path": "/img/red.jpg", "host": f"images.test:{fake.port}"}]


def test_concurrency_cap_is_respected(fake, session):
    # The first downloads wait until three run at once, so the peak does not depend on thread scheduling.
    urls = [fake.url(f"/img/red.png?together=3&delay=0.15&i={i}") for i in range(9)]
    opts = ImageOptions(allow_private=True, concurrent_downloads=3)
    started = time.monotonic()
    out = inline_images(chat(*urls), opts, session)
    elapsed = time.monotonic() - started
    assert all(u.startswith("data:image/png") for u in image_urls(out))
    assert fake.max_active == 3
    assert elapsed >= 3 * 0.15 - 0.05  # 9 slow downloads, 3 at a time: at least 3 rounds


def test_failure_keeps_url_and_logs_one_line_without_base64(fake, session, caplog):
    good, bad = fake.url("/img/red.png"), fake.url("/status/404")
    with caplog.at_level(logging.WARNING, logger="argoproxy.upstream.images"):
        out = inline_images(chat(good, bad), LOCAL, session)
    urls = image_urls(out)
    assert urls[0].startswith("data:") and urls[1] == bad
    [record] = caplog.records
    assert "HTTP 404" in record.getMessage() and bad in record.getMessage()
    assert "base64" not in caplog.text


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("path,reason", [
    ("/page.html", "unsupported Content-Type"),
    ("/fake.png", "not a PNG/JPEG/WebP/GIF"),
    ("/img/red.png?ct=application/octet-stream", "unsupported Content-Type"),
])
def test_non_images_rejected(fake, session, path, reason):
    with pytest.raises(images.ImageFetchError, match=reason):
        images.fetch_image(fake.url(path), LOCAL, session)


def test_content_type_alias_and_missing_header(fake, session):
    assert images.fetch_image(fake.url("/img/red.jpg?ct=image/jpg"), LOCAL, session).mime == "image/jpeg"
    # No Content-Type: the URL's extension stands in for it, the magic bytes still decide.
    assert images.fetch_image(fake.url("/img/red.png?ct="), LOCAL, session).mime == "image/png"
    # Declared JPEG but really PNG: the data URL carries the true type.
    assert images.fetch_image(fake.url("/img/red.png?ct=image/jpeg"), LOCAL, session).mime == "image/png"


@pytest.mark.parametrize("head,mime", [
    (b"\x89PNG\r\n\x1a\n\0\0\0\0", "image/png"), (b"\xff\xd8\xff\xe0" + b"\0" * 8, "image/jpeg"),
    (b"GIF89a" + b"\0" * 6, "image/gif"), (b"GIF87a" + b"\0" * 6, "image/gif"),
    (b"RIFF\0\0\0\0WEBP", "image/webp"), (b"RIFF\0\0\0\0WAVE", None), (b"<html>", None), (b"", None),
])
def test_sniff(head, mime):
    assert images.sniff_image_mime(head) == mime


# --------------------------------------------------------------------------- bounds


def test_endless_body_stops_at_the_cap(fake, session):
    opts = ImageOptions(allow_private=True, max_image_bytes=1024 * 1024)
    started = time.monotonic()
    with pytest.raises(images.ImageFetchError, match="exceeds max_image_bytes"):
        images.fetch_image(fake.url("/endless.png"), opts, session)
    assert time.monotonic() - started < 2


def test_declared_oversize_refused_before_reading(fake, session):
    opts = ImageOptions(allow_private=True, max_image_bytes=1024 * 1024)
    with pytest.raises(images.ImageFetchError, match="Content-Length"):
        images.fetch_image(fake.url("/liar.png"), opts, session)


def test_slow_body_fails_within_the_total_timeout(fake, session):
    # Each 16-byte drip arrives well inside any per-read timeout; only a total bound stops it.
    opts = ImageOptions(allow_private=True, image_timeout=0.6)
    started = time.monotonic()
    with pytest.raises(images.ImageFetchError, match="image_timeout"):
        images.fetch_image(fake.url("/slow.png?every=0.05"), opts, session)
    assert 0.5 < time.monotonic() - started < 5  # the drip would go on for 100 s


def test_a_read_under_way_at_the_deadline_ends_at_it(fake, session):
    """Bytes come every 1.9 s, each inside any per-read timeout: the read waiting at the 2 s deadline is ended
    there (it would have gone on to 3.8 s)."""
    opts = ImageOptions(allow_private=True, image_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(images.ImageFetchError, match="image_timeout"):
        images.fetch_image(fake.url("/slow.png?every=1.9"), opts, session)
    assert time.monotonic() - started < 3.2


def test_slow_headers_fail_within_the_timeout(fake, session):
    opts = ImageOptions(allow_private=True, image_timeout=0.4)
    started = time.monotonic()
    with pytest.raises(images.ImageFetchError):
        images.fetch_image(fake.url("/img/red.png?delay=5"), opts, session)
    assert time.monotonic() - started < 3  # well before the headers would come


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_within_limit_is_followed(fake, session):
    image = images.fetch_image(fake.url("/redirect/3?final=/img/green.gif"), LOCAL, session)
    assert image.mime == "image/gif"
    assert [r["path"].split("?")[0] for r in fake.requests] == [
        "/redirect/3", "/redirect/2", "/redirect/1", "/img/green.gif"]


def test_too_many_redirects_refused(fake, session):
    with pytest.raises(images.ImageFetchError, match="more than 3 redirects"):
        images.fetch_image(fake.url("/redirect/4"), LOCAL, session)
    assert len(fake.requests) == 4
    with pytest.raises(images.ImageFetchError, match="more than 0 redirects"):
        images.fetch_image(fake.url("/redirect/1"), ImageOptions(allow_private=True, max_redirects=0), session)


@pytest.mark.parametrize("target", [
    "http://127.0.0.2:{port}/img/red.png",  # loopback
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://10.0.0.5/img/red.png",  # private
    "http://[::ffff:127.0.0.1]:{port}/img/red.png",  # IPv4-mapped loopback
])
def test_redirect_to_non_public_address_refused(fake, session, monkeypatch, target):
    # Treat the fake server's own address as "public" so the first hop is allowed; every other
    # address keeps the real rule. The redirect must be refused before any connection is made.
    real_rule = images.is_public_address
    monkeypatch.setattr(images, "is_public_address",
                        lambda ip: ip == ipaddress.ip_address("127.0.0.1") or real_rule(ip))
    connects: list = []
    real_connect = urllib3.util.connection.create_connection

    def recording_connect(address, *args, **kwargs):
        connects.append(address[0])
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording_connect)
    start = fake.url("/to?url=" + requests.utils.quote(target.format(port=fake.port), safe=""))
    with pytest.raises(images.ImageFetchError, match="refused non-public address"):
        images.fetch_image(start, ImageOptions(), session)
    assert connects == ["127.0.0.1"]


# --------------------------------------------------------------------------- SSRF refusals


def test_loopback_refused_by_default_and_url_left_in_place(fake, session, caplog):
    url = fake.url("/img/red.png")
    with caplog.at_level(logging.WARNING, logger="argoproxy.upstream.images"):
        out = inline_images(chat(url), ImageOptions(), session)
    assert image_urls(out) == [url]
    assert fake.requests == []
    assert "refused non-public address 127.0.0.1" in caplog.text


@pytest.mark.parametrize("host,address", [
    ("metadata.test", "169.254.169.254"),
    ("intranet.test", "10.1.2.3"),
    ("v6.test", "fd00::1"),
    ("mapped.test", "::ffff:10.0.0.1"),
    ("mixed.test", ["93.184.216.34", "192.168.1.1"]),  # one bad answer is enough
])
def test_private_names_refused_without_any_connection(session, monkeypatch, host, address):
    addresses = address if isinstance(address, list) else [address]

    def fake_dns(name, port, *args, **kwargs):
        assert name == host
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]

    no_connections = _NoConnections()
    monkeypatch.setattr(images.socket, "getaddrinfo", fake_dns)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", no_connections)
    url = f"http://{host}/latest/meta-data/"
    out = inline_images(chat(url), ImageOptions(), session)
    assert image_urls(out) == [url]
    assert no_connections.calls == []


def test_ip_literals_refused_without_any_connection(session, monkeypatch):
    no_connections = _NoConnections()
    monkeypatch.setattr(urllib3.util.connection, "create_connection", no_connections)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.png", "http://[::1]/a.png",
                "http://0.0.0.0/a.png", "https://224.0.0.1/a.png"):
        with pytest.raises(images.ImageFetchError, match="refused"):
            images.fetch_image(url, ImageOptions(), session)
    assert no_connections.calls == []


@pytest.mark.parametrize("address,public", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("::", False), ("fe80::1", False),
    ("fd00::1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False),
    ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
    ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
])
def test_address_classification(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_pin_url_forms(monkeypatch):
    target = pin_url("http://127.0.0.1:8080/a/b.png?x=1#frag", allow_private=True)
    assert (target.url, target.host_header) == ("http://127.0.0.1:8080/a/b.png?x=1", "127.0.0.1:8080")
    target = pin_url("https://[::1]/x.png", allow_private=True)
    assert (target.url, target.host_header) == ("https://[::1]:443/x.png", "[::1]")
    with pytest.raises(images.ImageFetchError, match="credentials"):
        pin_url("http://user:pw@127.0.0.1/x.png", allow_private=True)
    with pytest.raises(images.ImageFetchError, match="cannot resolve"):
        pin_url("http://no-such-host.invalid/x.png", allow_private=True)


def test_https_adapter_keeps_sni_and_certificate_name():
    adapter = images.PinnedHostAdapter()
    request = requests.Request("GET", "https://93.184.216.34:443/x.png", headers={"Host": "example.com"}).prepare()
    host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(request, True)
    assert host_params["host"] == "93.184.216.34"
    assert pool_kwargs["server_hostname"] == "example.com" and pool_kwargs["assert_hostname"] == "example.com"


# --------------------------------------------------------------------------- payload control


def test_thirty_megabytes_of_images_fit_a_five_megabyte_budget(fake, session):
    sizes = [(1700, 1050), (1050, 1700), (1350, 1300)]
    urls = [fake.url(f"/noisy/{w}x{h}.png?copy={i}") for i in range(2) for (w, h) in sizes]
    body = chat(*urls)
    opts = ImageOptions(allow_private=True, enable_payload_control=True, max_payload_size=5)
    out = inline_images(body, opts, session)
    raw_total = sum(len(fake.noisy_png(w, h)) for w, h in sizes) * 2
    assert raw_total > 30_000_000  # "30 MB"
    assert len(json.dumps(out)) <= 5 * 1024 * 1024
    for url, data_url in zip(urls, image_urls(out)):
        mime, image = decode(data_url)
        assert mime == "image/jpeg" and image.format == "JPEG"
        width, height = (int(n) for n in url.split("/noisy/")[1].split(".png")[0].split("x"))
        assert abs(image.width / image.height - width / height) < 0.01


def test_payload_control_quality_first_and_webp_stays_webp(fake, session):
    # A budget a little below the inlined size is met by quality alone: dimensions are kept.
    url = fake.url("/img/x.webp?w=400&h=300&noise")
    plain = inline_images(chat(url), LOCAL, session)
    budget = len(json.dumps(plain)) * 0.9 / (1024 * 1024)
    opts = ImageOptions(allow_private=True, enable_payload_control=True, max_payload_size=budget)
    out = inline_images(chat(url), opts, session)
    assert len(json.dumps(out)) <= budget * 1024 * 1024
    mime, image = decode(image_urls(out)[0])
    assert (mime, image.format, image.size) == ("image/webp", "WEBP", (400, 300))


def test_payload_control_png_becomes_jpeg_with_alpha_on_white(fake, session):
    url = fake.url("/img/x.png?w=300&h=400&transparent&noise")
    plain = inline_images(chat(url), LOCAL, session)
    budget = (len(json.dumps(plain)) - 50) / (1024 * 1024)
    opts = ImageOptions(allow_private=True, enable_payload_control=True, max_payload_size=budget)
    out = inline_images(chat(url), opts, session)
    assert len(json.dumps(out)) <= budget * 1024 * 1024
    mime, image = decode(image_urls(out)[0])
    assert (mime, image.format, image.mode, image.size) == ("image/jpeg", "JPEG", "RGB", (300, 400))
    # The corner was transparent black: flattened onto white it is white, not black.
    assert min(image.getpixel((5, 5))) > 240


def test_payload_control_shrinks_dimensions_after_quality(fake, session):
    url = fake.url("/noisy/400x200.png")
    plain = inline_images(chat(url), LOCAL, session)
    budget = len(json.dumps(plain)) * 0.05 / (1024 * 1024)  # JPEG quality alone cannot get to 5 %
    opts = ImageOptions(allow_private=True, enable_payload_control=True, max_payload_size=budget)
    out = inline_images(chat(url), opts, session)
    assert len(json.dumps(out)) <= budget * 1024 * 1024
    mime, image = decode(image_urls(out)[0])
    assert mime == "image/jpeg" and image.width < 400 and image.width == pytest.approx(2 * image.height, abs=1)


def test_payload_control_off_or_within_budget_leaves_images(fake, session):
    url = fake.url("/img/red.png")
    out = inline_images(chat(url), ImageOptions(allow_private=True, enable_payload_control=True), session)
    assert image_urls(out)[0].startswith("data:image/png;base64,")


def test_unreachable_budget_sends_smallest_and_logs(fake, session, caplog):
    url = fake.url("/noisy/200x100.png")
    opts = ImageOptions(allow_private=True, enable_payload_control=True, max_payload_size=0.0001)
    with caplog.at_level(logging.WARNING, logger="argoproxy.upstream.images"):
        out = inline_images(chat(url), opts, session)
    mime, image = decode(image_urls(out)[0])
    assert mime == "image/jpeg" and min(image.size) >= images._MIN_SIDE
    assert image.width / image.height == pytest.approx(2.0, abs=0.1)
    assert "sending the smallest reached" in caplog.text


# --------------------------------------------------------------------------- logs


def test_truncate_data_urls():
    long = "data:image/png;base64," + "A" * 1000
    obj = {"messages": [{"content": [{"image_url": {"url": long}}, "short", ("data:x", 1)]}], "n": 1}
    out = truncate_data_urls(obj)
    truncated = out["messages"][0]["content"][0]["image_url"]["url"]
    assert truncated == long[:100] + f"...[{len(long) - 100} more chars]"
    assert out["messages"][0]["content"][1:] == ["short", ("data:x", 1)] and out["n"] == 1
    assert obj["messages"][0]["content"][0]["image_url"]["url"] == long
