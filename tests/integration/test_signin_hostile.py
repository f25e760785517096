"""Sign-in as an attacker tries it, against the suite's real OpenID provider (tests/oidc_provider.py) and a proxy
whose environment names a corporate forward proxy (proxy.py, as tests/integration/test_proxy_env.py runs it) with
no NO_PROXY: discovery, keys and the code's exchange go through it, and sign-in works. Then hostile query strings
on the login and the callback (huge, repeated, unicode, another flow's state, an `error=` callback, redirects named
in any parameter), cookies (forged, many, huge, odd characters) and the logout (GET, no CSRF token, another
session's, another origin): each refused in JSON with a 4xx, nothing reflected, nothing changed. Where the
environment's proxy is down: NO_PROXY honoured for a loopback provider, and the proxy named when it is the one
that fails (in-process). One provider, one forward proxy and one proxy for the module."""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from argoproxy.errors import ProxyError
from argoproxy.signin.provider import OpenIdProvider
from argoproxy.signin.tokens import Client
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_proxy_env import PROXY_VARS, forward_proxy
from tests.oidc_provider import (CLIENT_ID, CLIENT_SECRET, OidcProvider, sign_in, signin_settings, through_provider,
                                 to_callback)
from tests.proxy_process import ProxyProcess, free_port, start_on_free_port

pytestmark = pytest.mark.skipif(importlib.util.find_spec("proxy") is None,
                                reason="proxy.py (a forward proxy from PyPI) is not installed: ./run_tests.sh "
                                       "installs it from requirements-dev.txt")

ADMIN = "admin-key-for-hostile-signin"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    port = free_port()
    public = f"http://localhost:{port}"
    provider = OidcProvider(public).start()
    home = tempfile.mkdtemp(prefix="cot_proxy_signin_hostile_")
    proxy = None
    try:
        with forward_proxy(tmp_path_factory.mktemp("corporate")) as corporate, FakeOpenAI() as fake:
            settings = {"TARGET_BASE_URL": fake.base_url, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN,
                        "KEYS_DB": str(Path(home) / "keys.db"), "HTTP_PROXY": corporate.url,
                        "HTTPS_PROXY": corporate.url, **signin_settings(provider, public)}
            proc, _ = start_on_free_port(home, settings, port=port)
            proxy = ProxyProcess(proc, port, home)
            yield SimpleNamespace(provider=provider, public=public, corporate=corporate, proxy=proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        provider.stop()
        shutil.rmtree(home, ignore_errors=True)


def signed_in(world: SimpleNamespace, login: str) -> tuple[requests.Session, str]:
    browser = requests.Session()
    assert sign_in(browser, world.public, login).status_code == 303
    return browser, browser.get(world.public + "/ui/auth/me").json()["csrf"]


def refused_in_json(answer: requests.Response, *statuses: int) -> dict:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert answer.headers["Content-Type"].startswith("application/json")
    return answer.json()["error"]


def test_the_code_s_exchange_goes_through_the_environment_s_proxy(world):
    browser, _ = signed_in(world, "alice")
    assert browser.get(world.public + "/ui/auth/me").json()["email"] == "alice@example.com"
    # the token request's line (its connection closed at once); discovery's kept-alive connection is logged when
    # it closes: the last test shows discovery takes the environment's proxy (or NO_PROXY) too
    assert world.corporate.saw(f"POST 127.0.0.1:{world.provider.port}/token - 200")


def test_the_login_takes_no_redirect_from_its_query(world):
    evil = "https://evil.example/cb"
    for query in (f"next={quote(evil)}", f"redirect_uri={quote(evil)}&response_mode=form_post&client_id=other&state=s",
                  f"return_to=//evil.example&redirect_uri={quote(evil)}&redirect_uri={quote(evil)}",
                  "%C3%A9=%C3%BC&%ff%fe=%00&" + "a=1&" * 400):
        answer = requests.get(world.public + "/ui/auth/login?" + query, allow_redirects=False)
        assert answer.status_code == 303, query
        location = answer.headers["Location"]
        asked = parse_qs(urlsplit(location).query)
        assert location.startswith(world.provider.issuer + "/") and "evil" not in location
        assert asked["redirect_uri"] == [world.public + "/ui/auth/callback"] and asked["client_id"] == [CLIENT_ID]
        assert asked["response_mode"] == ["query"] and len(asked["state"]) == 1
        assert asked["code_challenge_method"] == ["S256"]
    assert requests.get(world.public + "/ui/auth/login?a=" + "x" * 6000, allow_redirects=False).status_code == 414


def test_hostile_callbacks_are_refused_in_json_and_reflect_nothing(world):
    for query, statuses in (("", (400,)), ("code=x", (400,)), ("state=" + "a" * 3000 + "&code=b", (400,)),
                            ("state=a&state=b&code=c&code=d", (401,)), ("state=%ff%fe&code=%00", (401,)),
                            ("code=x&state=%C3%BC%F0%9F%98%80", (401,)), ("a=" + "x" * 9000, (414,))):
        error = refused_in_json(requests.get(world.public + "/ui/auth/callback?" + query, allow_redirects=False),
                                *statuses)
        assert error["code"] in ("signin_failed", "uri_too_long"), query
    named = refused_in_json(requests.get(world.public + "/ui/auth/callback?error=access_denied&state=x"), 401)
    assert named["code"] == "signin_failed" and "'access_denied'" in named["message"]
    for said in ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", "Call+%2B1-555-0100+to+restore+your+account",
                 "%C3%A9" * 40):
        error = refused_in_json(requests.get(f"{world.public}/ui/auth/callback?error={said}&error_description=x"),
                                401)
        assert error["message"] == "Sign-in failed: the provider refused it. Start again at /ui/auth/login."


def test_a_state_from_another_flow_or_browser_signs_no_one_in(world):
    victim, attacker = requests.Session(), requests.Session()
    victim.get(world.public + "/ui/auth/login", allow_redirects=False)  # the victim's flow cookie
    callback = to_callback(attacker, world.public, "erin")  # the attacker's own code and state
    answer = victim.get(callback, allow_redirects=False)  # a login CSRF: the victim sent to it
    assert refused_in_json(answer, 401)["code"] == "signin_failed" and "cot_console" not in str(answer.headers)
    assert attacker.get(callback, allow_redirects=False).status_code == 401  # its flow is spent: no second try


def test_a_sign_in_begun_at_another_address_than_public_url_says_where_to_begin(world):
    """127.0.0.1 where PUBLIC_URL says localhost: the browser's cookie stays with the address it was set for."""
    browser = requests.Session()
    other = world.public.replace("localhost", "127.0.0.1")
    answer = browser.get(other + "/ui/auth/login", allow_redirects=False)
    callback = through_provider(browser, answer.headers["Location"], world.public, "alice")
    error = refused_in_json(browser.get(callback, allow_redirects=False), 401)
    assert f"another address than PUBLIC_URL ({world.public}). Start again at {world.public}/ui/auth/login" \
        in error["message"]


def test_forged_many_huge_and_odd_cookies_are_no_session(world):
    browser, _ = signed_in(world, "alice")
    session = browser.cookies["cot_console"]
    me = world.public + "/ui/auth/me"
    for cookie, status in ((f"cot_console={'A' * 43}", 401), (f"cot_console=forged; cot_console={session}", 401),
                           ("; ".join(f"c{i}=v" for i in range(1000)) + "; cot_console=" + "B" * 43, 401),
                           ("cot_console=\u00e9\u00e9", 401), ("x=" + "a" * 9000 + f"; cot_console={session}", 431)):
        answer = requests.get(me, headers={"Cookie": cookie.encode("utf-8")})  # type: ignore[dict-item]
        assert answer.status_code == status and "alice" not in answer.text, cookie[:60]
    for planted in ('"' + "a" * 45 + ';evil=1"', "A" * 45 + ",Set-Cookie:x", "a" * 39 + "\\\\x"):
        answer = requests.get(world.public + "/ui/auth/login", headers={"Cookie": "cot_signin=" + planted},
                              allow_redirects=False)
        [flow] = [c for c in answer.raw.headers.getlist("Set-Cookie") if c.startswith("cot_signin=")]
        value = flow.split(";")[0].split("=", 1)[1]
        assert answer.status_code == 303 and re.fullmatch(r"[A-Za-z0-9_-]{43}", value), flow  # new, not planted


def test_logout_needs_this_session_s_csrf_token_and_this_origin(world):
    alice, csrf = signed_in(world, "alice")
    erin, erins_csrf = signed_in(world, "erin")
    logout = world.public + "/ui/logout"
    assert refused_in_json(alice.get(logout, allow_redirects=False), 405)["code"] == "method_not_allowed"
    for form, headers in (({}, {}), ({"csrf": erins_csrf}, {}), ({}, {"X-CSRF-Token": erins_csrf}),
                          ({"csrf": csrf}, {"Origin": "https://evil.example"}), ({"x": "a" * 5000, "csrf": csrf}, {})):
        answer = alice.post(logout, data=form, headers=headers, allow_redirects=False)
        assert refused_in_json(answer, 403)["code"] in ("csrf_token_invalid", "origin_not_allowed"), (form, headers)
    assert alice.post(logout + "?csrf=" + csrf, allow_redirects=False).status_code == 403  # not from the query
    assert alice.get(world.public + "/ui/auth/me").status_code == 200  # nothing changed
    answer = alice.post(logout, data={"csrf": csrf}, allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"].startswith(world.provider.issuer + "/")
    after = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert after["post_logout_redirect_uri"] == [world.public + "/ui"]
    assert alice.get(world.public + "/ui/auth/me").status_code == 401
    assert erin.get(world.public + "/ui/auth/me").status_code == 200  # another session stays


def test_no_proxy_reaches_a_loopback_provider_directly_and_a_dead_proxy_is_named(world, monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTP_PROXY", dead)
    monkeypatch.setenv("HTTPS_PROXY", dead)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    provider = OpenIdProvider(world.provider.issuer)
    token_endpoint = provider.document()["token_endpoint"]
    client = Client(CLIENT_ID, CLIENT_SECRET, "openid", world.public + "/ui/auth/callback")
    with pytest.raises(ProxyError) as refused:  # reached directly: the provider itself refuses a made-up code
        client.exchange(token_endpoint, "made-up-code", "v" * 43)
    assert refused.value.status == 401 and refused.value.code == "signin_failed"
    monkeypatch.delenv("NO_PROXY")
    for call in (lambda: OpenIdProvider(world.provider.issuer).document(),
                 lambda: client.exchange(token_endpoint, "made-up-code", "v" * 43)):
        with pytest.raises(ProxyError) as down:
            call()
        assert down.value.status == 502 and "through the proxy the environment names" in down.value.message
