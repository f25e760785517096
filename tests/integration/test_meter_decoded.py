"""A PDF whose headers understate its pages is reserved at what the provider bills (issue 69, item 1), through the
running app: the proxy under Gunicorn with a `--budget` key in front of a fake that bills a PDF by the pages
pypdf finds in it. The PDF's 100 pages, in names written with #-escapes, under a /Count of 1 and beside one
plain page object no tree holds, counted as 1 page (4,445 tokens reserved for 444,500 billed): three such
requests at once on a 1,000,000-token budget were all admitted. Now two are, on the chat `file` and the Messages
`document` doors, and the third's 429 names the 100 pages' tokens. And a PDF whose page tree names 200 objects
missing from its 8 MB (pypdf searched the whole file for each, outside the reads the meter's deadline watched:
through the app two such requests held the workers for minutes) is answered at once. One proxy for the module,
a few requests."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from typing import Any, Iterator

import pytest
import requests
from pypdf import PdfReader

from tests.fakes.fake_openai import FakeOpenAI, Reply, chat_completion
from tests.integration.test_reservations import Store
from tests.understated_media import missing_pages, pdf

MODEL = "gpt-4o"
PAGE = 3000 + 85 + 8 * 170  # a PDF page as the meter's rule bills it for gpt-4o: its text and an image
PAGES = 100
PDF = base64.b64encode(pdf(PAGES, count=1, unused=1)).decode()
BUDGET = 1_000_000  # two of the PDF's reservations fit, three do not
pytestmark = pytest.mark.timeout(120)


def billed(body: dict[str, Any]) -> int:
    """What the provider bills for a chat request's files: each PDF's pages as a reader finds them."""
    total = 0
    for message in body.get("messages", []):
        for part in message.get("content") if isinstance(message.get("content"), list) else ():
            if part.get("type") == "file":
                data = base64.b64decode(part["file"]["file_data"].partition(",")[2])
                total += len(PdfReader(io.BytesIO(data)).pages) * PAGE
    return total


def charging(fallback):
    def answer(method: str, path: str, body: bytes):
        if method != "POST" or not path.endswith("/chat/completions"):
            return fallback(method, path, body)
        request = json.loads(body)
        reply = chat_completion("read")
        reply["usage"] = {"prompt_tokens": billed(request), "completion_tokens": 10,
                          "total_tokens": billed(request) + 10}
        return Reply(reply, delay=0.5)  # the three requests overlap
    return answer


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Iterator[tuple[Store, str]]:
    store = Store("sqlite", tmp_path_factory.mktemp("meter_decoded"))
    with FakeOpenAI() as fake:
        fake.default_answer = charging(fake.default_answer)
        with store.proxies(fake) as bases:
            yield store, bases[0]


DOORS = {
    "chat": ("/v1/chat/completions", {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarise."},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64," + PDF, "filename": "a.pdf"}}]}]}),
    "messages": ("/v1/messages", {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarise."},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]}),
}


def three_at_once(base: str, key: str, path: str, body: dict[str, Any]) -> list[requests.Response]:
    answers: list[requests.Response] = []
    start = threading.Barrier(3)

    def one() -> None:
        start.wait(30)
        answers.append(requests.post(base + path, json=body, headers={"Authorization": f"Bearer {key}"},
                                     timeout=60))
    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return answers


@pytest.mark.parametrize("door", DOORS)
def test_the_understating_pdf_is_reserved_at_its_hundred_pages(proxy, door):
    store, base = proxy
    key = store.create(f"pdf-{door}", "--budget", f"{BUDGET}/day")
    path, body = DOORS[door]
    answers = three_at_once(base, key, path, body)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 429], [(a.status_code, a.text[:300]) for a in answers]
    refused = next(a for a in answers if a.status_code == 429).text
    assert f"{PAGES * PAGE:,} of them for 1 document" in refused, refused


def test_a_pdf_that_sends_pypdf_searching_the_file_holds_no_worker(proxy):
    store, base = proxy
    key = store.create("pdf-searching", "--budget", "20000/day")
    hostile = base64.b64encode(missing_pages(200, 8_000_000)).decode()
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64," + hostile, "filename": "a.pdf"}}]}]}
    answers: list[requests.Response] = []

    def one() -> None:
        answers.append(requests.post(base + "/v1/chat/completions", json=body, timeout=60,
                                     headers={"Authorization": f"Bearer {key}"}))
    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [429, 429], [a.text[:300] for a in answers]
    assert all("for 1 document" in a.text for a in answers)  # counted at the most pages: not read in time
    assert elapsed < 10, elapsed  # 0.2 s of CPU each; each took 13 s and more before
