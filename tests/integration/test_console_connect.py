"""A person connects their account to an `auth: per_user` MCP server from the console, in chromium, against a real
authorization server: the suite's OpenID provider (npm's oidc-provider, tests/oidc_provider.py) is both the console's
sign-in and the remote server's authorization server (`resources` naming the server's URL: dynamic registration,
resource indicators, JWT access tokens, refresh tokens). The remote server (tests/fakes/fake_mcp_http.py, its bearers
checked by tests/fakes/jwt_bearers.py) serves its RFC 9728 metadata, takes only a JWT of that provider's for its own
URL, and records whose (`sub`) each call was.

One chromium session takes the whole flow: sign in to the console, Connections, Connect, through the provider and back
to the console showing "connected"; a tool call at /mcp with the person's key reaches the server as that person;
Disconnect; the next call gets -32042 naming the connect page. Connected again, an admin sets the person's ARGO
username from People (a hostile one refused), sees their connection and revokes it: the next call gets -32042 too. No token shows in the page, an answer or the log."""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from tests.console_browser import Browser, settled
from tests.console_browser import sign_in as sign_in_in
from tests.fakes.fake_mcp_http import FakeRemote
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.jwt_bearers import JwtBearers
from tests.integration.test_signin import proxy_on
from tests.oidc_provider import PASSWORD, OidcProvider, signin_settings
from tests.proxy_process import free_port

ADMIN = "admin-key-for-console-connect"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"form": {}, "url": {}}},
                   "clientInfo": {"name": "t", "version": "1"}}}  # URL elicitation declared: -32042 names the page


def whoami(port: int, key: str, text: str) -> dict:
    """One session at /mcp with the key, and one call of the remote server's whoami through it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/mcp", json.dumps(INIT), {**HEADERS, "Authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        headers = {**HEADERS, "Authorization": f"Bearer {key}", "Mcp-Session-Id": resp.getheader("Mcp-Session-Id")}
        conn.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "gh__whoami", "arguments": {"text": text}}}), headers)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def connection_state(browser: Browser) -> str:
    """The Connections tab's state of the gh server (asked again until the row is there)."""
    return settled(browser, "(() => { const tr = document.querySelector('#console-connections tr[data-server=gh]');"
                            " return tr && tr.querySelector('td.state').textContent; })()")


def connect(browser: Browser, public: str) -> None:
    """Connections' Connect for gh: through the provider (its login form, if it asks) back to the console's tab."""
    browser.js("window.unconnected = true")  # (a page of the flow or the console again has none)
    browser.js("document.querySelector('#console-connections tr[data-server=gh] a.connect').click()")
    at = settled(browser, "!window.unconnected && (document.querySelector('input[name=login]') ? 'login' : "
                          f"location.href.startsWith({public!r}) && document.body.dataset.console)", timeout=20)
    if at == "login":  # the provider asks again (its session may not carry over): log in there
        browser.js(f"""(() => {{ const f = document.forms[0]; f.elements.login.value = 'alice';
            f.elements.password.value = {PASSWORD!r}; f.submit(); }})()""")
    back = settled(browser, f"location.href === {public + '/ui'!r} && document.body.dataset.console === 'ready' && "
                            "!document.getElementById('view-connections').hidden", timeout=20)
    assert back, (browser.js("location.href"), browser.js("document.body.innerText.slice(0, 500)"))


def test_in_chromium_a_person_connects_calls_as_themselves_disconnects_and_is_sent_back():
    pytest.importorskip("websockets")
    port = free_port()
    public = f"http://localhost:{port}"
    folder = Path(tempfile.mkdtemp(prefix="cot_proxy_console_connect_"))
    with FakeRemote() as remote, FakeOpenAI() as fake:
        provider = OidcProvider(public, resources={remote.url: "tools"}, refresh_tokens=True)
        remote.people = JwtBearers(provider.issuer, remote.url)  # type: ignore[assignment]  # its JWTs, for this URL
        remote.resource_metadata = {"resource": remote.url, "authorization_servers": [provider.issuer],
                                    "scopes_supported": ["tools"]}  # RFC 9728's, at its well-known URL
        provider.start()
        proxy = browser = None
        try:
            proxy = proxy_on(port, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                             KEYS_DB=str(folder / "keys.db"), CREDENTIALS_KEY_FILE=str(folder / "credentials.key"),
                             MCP_SERVERS=json.dumps({"gh": {"url": remote.url, "auth": "per_user"}}),
                             **signin_settings(provider, public))
            browser = Browser()
            assert sign_in_in(browser, public, "alice") == "Alice"
            made = requests.post(f"{proxy.url}/admin/v1/keys", json={"name": "alice-mcp", "owner": "alice@example.com"},
                                 headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
            assert made.status_code == 201, made.text
            key = made.json()["key"]
            not_yet = whoami(port, key, "before")
            assert not_yet["error"]["code"] == -32042

            browser.js("document.getElementById('tab-connections').click()")
            assert connection_state(browser) == "not connected"
            connect(browser, public)
            assert connection_state(browser) == "connected"

            answer = whoami(port, key, "connected")
            assert answer["result"]["content"][0]["text"] == "sub-alice", answer
            assert remote.calls == [("sub-alice", "connected")] and remote.crossed == 0
            bearer = next(h["Authorization"] for _, _, h in reversed(remote.seen) if h.get("Authorization"))
            assert bearer.startswith("Bearer ey")  # the provider's JWT, for the server's URL (checked there)

            browser.js("window.confirm = () => true")
            browser.js("document.querySelector('#console-connections tr[data-server=gh] button').click()")
            assert settled(browser, "document.querySelector('#console-connections tr[data-server=gh] td.state')"
                                    ".textContent === 'not connected'")
            after = whoami(port, key, "after")
            assert after["error"]["code"] == -32042
            assert after["error"]["data"]["elicitations"][0]["url"] == f"{public}/ui/connect/gh"
            assert len(remote.calls) == 1

            connect(browser, public)  # again, for the admin to revoke
            assert connection_state(browser) == "connected"
            browser.call("Network.clearBrowserCookies")  # Alice's sessions here and at the provider gone
            assert sign_in_in(browser, public, "dave") == "Dave"  # an admin
            browser.js("document.getElementById('tab-people').click()")
            row = "[...document.querySelectorAll('#console-people tr')].find(tr => tr.dataset.email === " \
                  "'alice@example.com')"
            assert settled(browser, row + " !== undefined")

            def argo_user(name: str) -> str:
                """Alice's ARGO user button, given `name`: what the page then says."""
                browser.js(f"window.prompt = () => {name!r}; document.getElementById('console-message').textContent = ''")
                browser.js(f"[...({row}).querySelectorAll('button')].find(b => b.textContent === 'ARGO user').click()")
                return settled(browser, "document.getElementById('console-message').textContent")
            assert "not an ARGO username" in argo_user("alice x")  # refused as `--argo-user` refuses it
            assert argo_user("alice.argo") == "alice@example.com: ARGO user alice.argo."
            assert settled(browser, f"[...({row}).cells].some(td => td.textContent === 'alice.argo')")
            found = requests.get(f"{proxy.url}/admin/v1/people/alice@example.com",
                                 headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).json()
            assert found["argo_user"] == "alice.argo"

            browser.js(f"[...({row}).querySelectorAll('button')].find(b => b.textContent === 'Connections').click()")
            held = "document.querySelector('#console-held tr[data-server=gh]')"
            assert settled(browser, f"{held} && {held}.cells[1].textContent.startsWith('20')")  # since when
            browser.js(f"window.confirm = () => true; {held}.querySelector('button').click()")  # Revoke, confirmed
            assert settled(browser, f"{held} === null && !document.getElementById('console-held-box').hidden")
            assert whoami(port, key, "revoked")["error"]["code"] == -32042 and len(remote.calls) == 1
            assert requests.get(f"{proxy.url}/admin/v1/audit", headers={"Authorization": f"Bearer {ADMIN}"},
                                timeout=30).json()["data"][0]["action"] == "people.connections.revoke"

            token = bearer[7:]
            page = browser.js("document.documentElement.outerHTML")
            for seen in (page, json.dumps(answer), json.dumps(after), proxy.read_log()):
                assert token not in seen and token[-20:] not in seen
        except AssertionError as failed:  # what the proxy said is what tells why
            raise AssertionError(f"{failed}\n--- the proxy's log ---\n{proxy.read_log()[-6000:] if proxy else ''}") \
                from None
        finally:
            if browser is not None:
                browser.close()
            if proxy is not None:
                proxy.stop()
            provider.stop()
            shutil.rmtree(folder, ignore_errors=True)
