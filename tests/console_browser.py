"""The console in Debian's chromium, driven over its DevTools protocol: `Browser` (headless chromium and one page), and
a person's steps at /ui signed in at the real OpenID provider (tests/oidc_provider.py): sign in, make a key, see its
usage and its request, revoke it, sign out. Each step returns what the page showed for the test to judge; the
one-proxy flow (test_console_people.py) and the two replicas behind nginx (test_console_replicas.py) take the same
steps."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from typing import Any

import requests

from tests.integration.test_status_page import chromium
from tests.oidc_provider import PASSWORD
from tests.polling import poll


class Browser:
    """Headless chromium and one page, driven over its DevTools protocol (a WebSocket)."""

    def __init__(self) -> None:
        from websockets.sync.client import connect
        self.profile = tempfile.mkdtemp(prefix="cot_proxy_chromium_")
        self.proc = subprocess.Popen([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--disable-background-networking", "--disable-component-update",
                                      "--disable-sync", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        port = next(line.rsplit(":", 1)[1].split("/")[0] for line in self.proc.stderr if "DevTools listening on" in line)
        targets = requests.get(f"http://127.0.0.1:{port}/json", timeout=10).json()
        self.ws = connect(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"), max_size=None)
        self.ids = iter(range(1, 1_000_000))

    def call(self, method: str, **params: Any) -> dict:
        sent = next(self.ids)
        self.ws.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == sent:
                assert "error" not in message, message
                return message["result"]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def until(self, expression: str, timeout: float = 15) -> Any:
        return poll(lambda: self.js(expression), timeout=timeout)

    def cookie(self, name: str) -> str:
        """A cookie's value as the browser holds it (HttpOnly ones too, which the page's script cannot read)."""
        return next((c["value"] for c in self.call("Storage.getCookies")["cookies"] if c["name"] == name), "")

    def close(self) -> None:
        self.ws.close()
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


def settled(browser: Browser, expression: str, timeout: float = 15) -> Any:
    """The expression's value once truthy, across page loads (an evaluation cut by a navigation is tried again)."""
    def check():
        try:
            return browser.js(expression)
        except (AssertionError, TimeoutError):
            return None
    return poll(check, timeout=timeout)


def sign_in(browser: Browser, public: str, login: str) -> str:
    """From /ui's Sign in link through the provider's login form back to the console: the name it shows."""
    browser.call("Page.navigate", url=public + "/ui")
    assert settled(browser, "document.body && document.body.dataset.console === 'ready' && "
                            "!document.getElementById('signin').hidden")
    browser.js("document.getElementById('signin-link').click()")
    assert settled(browser, "document.querySelector('input[name=login]') !== null")  # the provider's form
    browser.js(f"""(() => {{ const f = document.forms[0]; f.elements.login.value = {login!r};
        f.elements.password.value = {PASSWORD!r}; f.submit(); }})()""")
    assert settled(browser, f"location.href.startsWith({public + '/ui'!r}) && "
                            "document.body.dataset.console === 'ready'", timeout=20)
    return browser.js("document.getElementById('whoami-name').textContent")


def make_key(browser: Browser, name: str, team: str) -> str:
    """My keys' form filled in and sent: the secret the page shows once."""
    browser.js("document.getElementById('tab-keys').click()")
    browser.js(f"""(() => {{ const f = document.getElementById('console-key-form');
        f.elements.name.value = {name!r}; f.elements.team.value = {team!r}; f.requestSubmit(); }})()""")
    return settled(browser, "document.getElementById('console-secret').textContent")


def usage_shows(browser: Browser, key: str) -> bool:
    """Does Usage, by key, list the key (asked again until it does, as the rows land)?"""
    browser.js("document.getElementById('tab-usage').click()")
    browser.js("document.getElementById('console-usage-group').value = 'key'")
    return settled(browser, f"""(async () => {{ document.getElementById('console-usage-group')
        .dispatchEvent(new Event('change')); await new Promise(r => setTimeout(r, 200));
        return [...document.querySelectorAll('#console-usage td')].some(td => td.textContent === {key!r});
        }})()""", timeout=20)


def request_detail(browser: Browser, key: str) -> str:
    """Requests' newest row of the key (the log asked again until it lists one), its details opened: their text."""
    browser.js("document.getElementById('tab-requests').click()")
    assert settled(browser, f"""(async () => {{ document.getElementById('console-request-form').requestSubmit();
        await new Promise(r => setTimeout(r, 200));
        return [...document.querySelectorAll('#console-requests td')].some(td => td.textContent === {key!r});
        }})()""", timeout=20)
    browser.js(f"""[...document.querySelectorAll('#console-requests tr')].find(tr => [...tr.cells].some(td =>
        td.textContent === {key!r})).querySelector('button').click()""")
    return settled(browser, "document.getElementById('console-request-detail').textContent.includes('line') && "
                            "document.getElementById('console-request-detail').textContent")


def revoke(browser: Browser, key: str) -> bool:
    """My keys' revoke button for the key, confirmed: does the list then show it revoked?"""
    browser.js("document.getElementById('tab-keys').click()")
    browser.js("window.confirm = () => true")
    assert settled(browser, f"document.querySelector('button.revoke[data-name={json.dumps(key)}]') !== null")
    browser.js(f"document.querySelector('button.revoke[data-name={json.dumps(key)}]').click()")
    return settled(browser, f"[...document.querySelectorAll('#console-keys tr.revoked td')].some(td => "
                            f"td.textContent === {key!r})")


def sign_out(browser: Browser, public: str) -> bool:
    """Sign out (on to the provider's end session), then /ui again: does it offer Sign in, nobody signed in?"""
    browser.js("document.getElementById('signout').click()")
    assert settled(browser, f"!location.href.startsWith({public + '/ui'!r})")  # the provider's end session
    browser.call("Page.navigate", url=public + "/ui")
    return settled(browser, "document.body && document.body.dataset.console === 'ready' && "
                            "!document.getElementById('signin').hidden && document.getElementById('whoami').hidden")
