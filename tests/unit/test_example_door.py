"""The toy door docs/adding-a-door.md shows (tests/example_door/toy_door.py): the page's code is the file's, it
passes `mypy --strict`, and, added to the registry, it serves its route through the one sequence in-process:
a whole answer, a stream, its own error shape for a bad field and for the allow-list."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from argoproxy import fronts
from argoproxy.edge.http_objects import Request
from tests.example_door.toy_door import ToyFront
from tests.fakes.fake_upstream import sse_chunks
from tests.unit.test_types import CACHE, ROOT

FILE = ROOT / "tests" / "example_door" / "toy_door.py"


def test_the_page_shows_the_file_as_it_is():
    page = (ROOT / "docs" / "adding-a-door.md").read_text()
    shown = re.search(r"## A toy door\n.*?```python\n(.*?)```", page, re.S)
    assert shown and shown.group(1) == FILE.read_text()


def test_the_toy_door_passes_mypy_strict():
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", "--follow-imports",
                             "silent", "--cache-dir", str(CACHE / "example-door"), str(FILE)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "Success" in result.stdout, result.stdout[-3000:] + result.stderr[-1000:]


def test_registered_it_serves_its_route_through_the_sequence(make, monkeypatch):
    monkeypatch.setitem(fronts.FRONTS, "toy", ToyFront())
    door, up, calls = make(ALLOWED_MODELS="m")
    ask = {"model": "m", "question": "hi"}
    answer = door.handle(Request.of("POST", "/v1/toy/ask", ask))
    assert answer.status_code == 200 and json.loads(answer.get_data()) == {"model": "m", "answer": "Hello"}
    assert json.loads(up.sent[-1].body)["messages"] == [{"role": "user", "content": "hi"}]
    assert calls[-1].start.client.front == "toy"  # metrics and journals name the door
    up.stream(sse_chunks(["Hel", "lo"]))
    streamed = b"".join(door.handle(Request.of("POST", "/v1/toy/ask", {**ask, "stream": True})).response)
    assert streamed.startswith(b'event: text\ndata: {"type":"text","text":"Hel"}\n\n') and b"event: done" in streamed
    bad = door.handle(Request.of("POST", "/v1/toy/ask", {"model": "m", "question": 3}))
    assert bad.status_code == 400 and json.loads(bad.get_data()) == {"error": "`question` must be text."}
    refused = door.handle(Request.of("POST", "/v1/toy/ask", {"model": "evil", "question": "hi"}))
    assert refused.status_code == 403 and set(json.loads(refused.get_data())) == {"error"}
