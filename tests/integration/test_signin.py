"""Sign-in end to end against a real OpenID provider (npm's oidc-provider: tests/oidc_provider.py), over HTTP with
a cookie jar as a browser keeps one: a person recorded at sign-in with a session cookie HttpOnly and Lax, admin by
group or by a verified email only; a replayed callback, another browser's state and a code exchanged with another
sign-in's PKCE verifier refused; logout needs its CSRF token and ends the session at once; a session made on one
instance serves on another over the same SQLite file, and on Redis; disabling a person stops their key and their
session within a second; `keys create --owner` and `keys list`. One provider and two proxies for the module."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from argoproxy.teamkeys import people_cli, teams_cli
from tests.fakes.fake_openai import FakeOpenAI
from tests.keys_cli import run_keys
from tests.oidc_provider import OidcProvider, sign_in, signin_settings, through_provider, to_callback
from tests.polling import poll
from tests.proxy_process import ProxyProcess, free_port, start_on_free_port
from tests.redis_server import RedisServer

ADMIN = "admin-key-for-signin-tests"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def proxy_on(port: int, **settings: str) -> ProxyProcess:
    home = tempfile.mkdtemp(prefix="cot_proxy_signin_")
    proc, chosen = start_on_free_port(home, settings, port=port)
    assert chosen == port, "PUBLIC_URL names the port chosen: another took it"
    return ProxyProcess(proc, port, home)


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    """A provider, a fake upstream and two proxy instances on one SQLite key store (the second on another port,
    PUBLIC_URL the first's: a replica behind one address)."""
    port, redis_port = free_port(), free_port()
    public = f"http://localhost:{port}"  # the provider lives on 127.0.0.1: the two sites' cookies stay apart
    provider = OidcProvider(public, f"http://localhost:{redis_port}").start()
    folder = Path(tempfile.mkdtemp(prefix="cot_proxy_signin_db_"))
    db = folder / "keys.db"
    cli(teams_cli, db, "create", "eng", "--groups", "eng", "--leads", "alice@example.com")
    proxies: list[ProxyProcess] = []
    try:
        with FakeOpenAI() as fake:
            settings = {"TARGET_BASE_URL": fake.base_url, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN,
                        "KEYS_DB": str(db), **signin_settings(provider, public, OIDC_ARGO_USER_CLAIM="argo_user")}
            proxies.append(proxy_on(port, **settings))
            proxies.append(proxy_on(free_port(), **settings))
            yield SimpleNamespace(provider=provider, public=public, one=proxies[0], two=proxies[1], db=db, fake=fake,
                                  redis_port=redis_port)
    finally:
        for proxy in proxies:
            proxy.stop()
        provider.stop()
        shutil.rmtree(folder, ignore_errors=True)


def cli(module, db: Path, *args: str) -> str:
    """`teams ...` or `people ...` on the store, in this process (as tests/keys_cli.py runs `keys`)."""
    out, err = io.StringIO(), io.StringIO()
    settings = SimpleNamespace(redis_url="", keys_db=str(db), enable_auth=True, oidc_inactive_days=90.0)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = module.main(list(args), lambda flags: settings)
    assert status == 0, err.getvalue()
    return out.getvalue()


def me(proxy: str, browser: requests.Session) -> requests.Response:
    return browser.get(proxy + "/ui/auth/me")


def test_sign_in_records_the_person_and_gives_a_lax_http_only_session(world):
    browser = requests.Session()
    answer = sign_in(browser, world.public, "alice")
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui"
    cookie = next(c for c in answer.raw.headers.getlist("Set-Cookie") if c.startswith("cot_console="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= flags and "secure" not in flags  # PUBLIC_URL is http here
    who = me(world.public, browser).json()
    assert who["email"] == "alice@example.com" and who["groups"] == ["eng"] and who["admin"] is False
    assert who["teams"] == ["eng"] and who["leads"] == ["eng"] and len(who["csrf"]) > 30
    listed = cli(people_cli, world.db, "list")
    assert "alice@example.com" in listed and "active" in listed
    assert me(world.public, requests.Session()).status_code == 401  # no cookie: no session


def test_admin_by_group_and_by_verified_email_only(world):
    admins = {}
    for login in ("bob", "carol", "dave", "erin"):
        browser = requests.Session()
        assert sign_in(browser, world.public, login).status_code == 303
        admins[login] = me(world.public, browser).json()["admin"]
    assert admins == {"bob": True, "carol": False, "dave": True, "erin": False}


def test_a_replayed_callback_is_refused(world):
    browser = requests.Session()
    callback = to_callback(browser, world.public, "alice")
    assert browser.get(callback, allow_redirects=False).status_code == 303
    again = browser.get(callback, allow_redirects=False)
    assert again.status_code == 401 and again.json()["error"]["code"] == "signin_failed"


def test_a_callback_in_another_browser_is_refused(world):
    victim, attacker = requests.Session(), requests.Session()
    callback = to_callback(attacker, world.public, "erin")  # the attacker's own sign-in, handed to the victim
    refused = victim.get(callback, allow_redirects=False)
    assert refused.status_code == 401 and "another browser" in refused.json()["error"]["message"]
    assert "Set-Cookie" not in refused.headers


def test_a_code_with_another_sign_ins_state_fails_its_pkce_check(world):
    browser = requests.Session()
    first = browser.get(world.public + "/ui/auth/login", allow_redirects=False).headers["Location"]
    second = browser.get(world.public + "/ui/auth/login", allow_redirects=False).headers["Location"]
    code = parse_qs(urlsplit(through_provider(browser, first, world.public, "alice")).query)["code"][0]
    state = parse_qs(urlsplit(second).query)["state"][0]  # the second flow's: its verifier and nonce differ
    refused = browser.get(f"{world.public}/ui/auth/callback?code={code}&state={state}", allow_redirects=False)
    assert refused.status_code == 401 and "the provider refused the code" in refused.json()["error"]["message"]
    unknown = browser.get(f"{world.public}/ui/auth/callback?code={code}&state=forged", allow_redirects=False)
    assert unknown.status_code == 401


def test_two_sign_ins_begun_in_one_browser_both_finish(world):
    browser = requests.Session()
    first = browser.get(world.public + "/ui/auth/login", allow_redirects=False).headers["Location"]
    browser.get(world.public + "/ui/auth/login", allow_redirects=False)  # another tab
    callback = through_provider(browser, first, world.public, "alice")
    assert browser.get(callback, allow_redirects=False).status_code == 303


def test_logout_needs_its_csrf_token_and_ends_the_session(world):
    browser = requests.Session()
    sign_in(browser, world.public, "erin")
    csrf = me(world.public, browser).json()["csrf"]
    refused = browser.post(world.public + "/ui/logout", data={"csrf": "wrong"}, allow_redirects=False)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_token_invalid"
    assert me(world.public, browser).status_code == 200  # nothing changed
    out = browser.post(world.public + "/ui/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status_code == 303
    end = urlsplit(out.headers["Location"])
    hint = parse_qs(end.query)
    assert out.headers["Location"].startswith(world.provider.issuer) and hint["id_token_hint"][0].count(".") == 2
    assert hint["post_logout_redirect_uri"] == [world.public + "/ui"]
    assert me(world.public, browser).status_code == 401
    assert browser.get(out.headers["Location"]).status_code == 200  # the provider's own sign-out page


def test_a_session_serves_on_another_instance_of_the_same_store(world):
    browser = requests.Session()
    answer = sign_in(browser, world.public, "alice")
    cookie = answer.cookies.get("cot_console")
    other = requests.get(world.two.url + "/ui/auth/me", headers={"Cookie": f"cot_console={cookie}"})
    assert other.status_code == 200 and other.json()["email"] == "alice@example.com"


def test_disabling_a_person_stops_their_key_and_session_within_a_second(world):
    browser = requests.Session()
    sign_in(browser, world.public, "erin")
    done = run_keys("create", "erins-laptop", "--owner", "Erin@Example.com", keys_db=world.db)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    listed = run_keys("list", keys_db=world.db).stdout
    assert "erin@example.com" in next(line for line in listed.splitlines() if line.startswith("erins-laptop"))
    chat = lambda: requests.post(world.two.base_url + "/chat/completions", json=CHAT,  # noqa: E731
                                 headers={"Authorization": f"Bearer {key}"})
    assert chat().status_code == 200
    started = time.monotonic()
    cli(people_cli, world.db, "disable", "erin@example.com")
    refused = poll(lambda: [r for r in [chat()] if r.status_code == 401], timeout=3)  # (a 401 Response is falsy)
    assert refused and "owner is disabled" in refused[0].json()["error"]["message"]
    assert time.monotonic() - started < 1.0
    assert me(world.public, browser).status_code == 401  # the session ended with it
    assert sign_in(requests.Session(), world.public, "erin").status_code == 403  # and signing in again is refused
    assert "owner disabled" in run_keys("list", keys_db=world.db).stdout
    cli(people_cli, world.db, "enable", "erin@example.com")
    assert poll(lambda: chat().status_code == 200, timeout=3)


def test_an_argo_username_is_read_from_the_claim_named_and_a_bad_one_refused(world):
    """OIDC_ARGO_USER_CLAIM (issue 72): alice's provider gives `alice.argo`, erin's an email (no ARGO username: kept
    out, said in the log, the sign-in goes on); an admin's `people update --argo-user` stands until a claim says
    otherwise."""
    for login in ("alice", "erin"):
        assert sign_in(requests.Session(), world.public, login).status_code == 303
    from argoproxy.teamkeys.store import SQLiteKeyStore
    store = SQLiteKeyStore(world.db)
    assert store.person_by_email("alice@example.com").argo_user == "alice.argo"
    assert store.person_by_email("erin@example.com").argo_user == ""
    assert "OIDC_ARGO_USER_CLAIM (argo_user): 'erin@example.com' is not an ARGO username" in world.one.read_log()
    cli(people_cli, world.db, "update", "erin@example.com", "--argo-user", "erin.argo")
    assert sign_in(requests.Session(), world.public, "erin").status_code == 303
    assert store.person_by_email("erin@example.com").argo_user == "erin.argo"


def test_keys_owner_must_be_a_person_who_signed_in(world):
    done = run_keys("create", "nobodys", "--owner", "nobody@example.com", keys_db=world.db)
    assert done.returncode == 2 and "no person with the email" in done.stderr


def test_a_team_key_is_no_console_session(world):
    done = run_keys("create", "plain-key", keys_db=world.db)
    key = done.stdout.strip()
    answer = requests.get(world.public + "/ui/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 401


def test_on_redis_a_session_and_an_owner_s_state_reach_every_replica(world):
    """Two replicas on one Redis: a session begun on one serves on the other; disabling its person (the people
    command on Redis) ends it and stops their key on both."""
    redis = RedisServer().start()
    public = f"http://localhost:{world.redis_port}"
    replicas: list[ProxyProcess] = []
    try:
        settings = {"TARGET_BASE_URL": world.fake.base_url, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN,
                    "REDIS_URL": redis.url, **signin_settings(world.provider, public)}
        replicas += [proxy_on(world.redis_port, **settings), proxy_on(free_port(), **settings)]
        browser = requests.Session()
        cookie = sign_in(browser, public, "alice").cookies.get("cot_console")
        other = replicas[1].url + "/ui/auth/me"
        assert requests.get(other, headers={"Cookie": f"cot_console={cookie}"}).json()["email"] == "alice@example.com"
        done = run_keys("create", "alices-key", "--owner", "alice@example.com", redis_url=redis.url)
        assert done.returncode == 0, done.stderr
        key = done.stdout.strip()
        chat = lambda: requests.post(replicas[1].base_url + "/chat/completions", json=CHAT,  # noqa: E731
                                     headers={"Authorization": f"Bearer {key}"})
        assert chat().status_code == 200
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert people_cli.main(["disable", "alice@example.com"], lambda flags: SimpleNamespace(
                redis_url=redis.url, keys_db="", enable_auth=True, oidc_inactive_days=90.0)) == 0
        assert poll(lambda: chat().status_code == 401, timeout=3)
        assert requests.get(other, headers={"Cookie": f"cot_console={cookie}"}).status_code == 401
    finally:
        for replica in replicas:
            replica.stop()
        redis.close()
