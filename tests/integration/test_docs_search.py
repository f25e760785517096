"""The documentation site's own search, run in a real browser (Debian's chromium, headless, driven over the
DevTools protocol): a user's words find the user pages before the design notes. A search for "budget" listed
two design notes (hardening, teams) above the Team keys page."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.test_status_page import chromium
from tests.proxy_process import ROOT
from tests.unit.test_docs_site import _site_sections

websockets = pytest.importorskip("websockets")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> str:
    """The site built as the suite builds it, served on a loopback port."""
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(ROOT / "mkdocs.yml"), "-d",
                            str(out)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def search(site: str, words: str, timeout: float = 30.0) -> list[str]:
    """The pages the site's search lists for `words` (`?q=` opens the search with them), best first."""
    profile = tempfile.mkdtemp(prefix="cot_proxy_chromium_")
    browser = subprocess.Popen([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return asyncio.run(_search(browser, site + "?q=" + urllib.request.quote(words), timeout))
    finally:
        browser.kill()
        browser.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


async def _search(browser: subprocess.Popen, url: str, timeout: float) -> list[str]:
    assert browser.stderr is not None
    port = next(line.rsplit(":", 1)[1].split("/")[0] for line in browser.stderr if "DevTools listening on" in line)
    targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10).read())
    page = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    async with websockets.connect(page, max_size=None) as ws:
        ids = iter(range(1, 1_000_000))

        async def call(method: str, **params) -> dict:
            sent = next(ids)
            await ws.send(json.dumps({"id": sent, "method": method, "params": params}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("id") == sent:
                    return message["result"]

        await call("Page.navigate", url=url)
        listed = "JSON.stringify([...document.querySelectorAll('.md-search-result__item > a')].map(a => a.pathname))"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the search runs in a worker once the index is loaded
            found = json.loads((await call("Runtime.evaluate", expression=listed, returnByValue=True))["result"]["value"])
            if found:
                return [path.strip("/") + ".md" if path != "/" else "index.md" for path in found]
            await asyncio.sleep(0.1)
    return []


# For "budget" the user pages on token and dollar budgets may come in either order; both come before any design note.
@pytest.mark.parametrize(("words", "pages"), [("budget", ("team-keys.md", "spend.md")), ("revoke", ("team-keys.md",)),
                                              ("status page", ("status-page.md",))])
def test_a_users_words_find_the_user_page_first(site, words, pages):
    _, design = _site_sections()
    found = search(site, words)
    assert found, f"the search for {words!r} listed nothing"
    first_design = next((i for i, p in enumerate(found) if p in design), len(found))
    assert found[0] in pages and found.index(pages[0]) < first_design, found
