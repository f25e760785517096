"""How many times one whole non-streamed chat request enters the class that holds the sequence.

The real app (create_app) runs in-process behind Flask's test client, in front of the fake OpenAI upstream on
loopback (tests/fakes/fake_openai.py). One request warms the worker (its model list, its price source); the next
is counted: every call, under sys.setprofile, into code of the class (its methods and what they define inside
them) whose caller is code outside the class's module. Prints the count; `--where` also prints who called what,
`--all` counts the calls the class makes into itself too (every method call of the request).

    .venv/bin/python tools/gateway_entries.py [--class argoproxy.pipeline.gateway.Gateway] [--where] [--all]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEQUENCE = "argoproxy.pipeline.gateway.Gateway"
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "Hello"}]}


def sequence_class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type), dotted
    return cls


def entries(dotted: str = SEQUENCE, inside: bool = False) -> Counter[tuple[str, str]]:
    """(caller, method) -> calls into the class from outside its module (`inside`: from anywhere), for one
    non-streamed chat request."""
    from argoproxy.config.settings import load_settings
    from argoproxy.serve.flask_app import create_app
    from tests.fakes.fake_openai import FakeOpenAI

    cls = sequence_class(dotted)
    module_file = sys.modules[cls.__module__].__file__
    prefix = cls.__qualname__ + "."
    counted: Counter[tuple[str, str]] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if code.co_filename != module_file or not code.co_qualname.startswith(prefix):
            return
        caller = frame.f_back
        if caller is not None and caller.f_code.co_filename == module_file and not inside:
            return
        where = f"{caller.f_code.co_filename.rpartition('argoproxy/')[2]}:{caller.f_code.co_qualname}" \
            if caller is not None else "-"
        counted[(where, code.co_qualname)] += 1

    with tempfile.TemporaryDirectory() as home, FakeOpenAI() as fake:
        environ = {"HOME": home, "TARGET_BASE_URL": fake.base_url, "PATH": os.environ.get("PATH", "")}
        cwd = os.getcwd()
        os.chdir(home)
        try:
            client = create_app(load_settings({}, environ=environ)).test_client()
            warm = client.post("/v1/chat/completions", json=CHAT)
            assert warm.status_code == 200, warm.get_data()
            sys.setprofile(profile)
            try:
                answer = client.post("/v1/chat/completions", json=CHAT)
                answer.get_data()  # the whole answer read, as a client reads it
            finally:
                sys.setprofile(None)
        finally:
            os.chdir(cwd)
        assert answer.status_code == 200, answer.get_data()
    return counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--class", dest="cls", default=SEQUENCE, help="the class that holds the sequence")
    parser.add_argument("--where", action="store_true", help="print each caller and the method it entered")
    parser.add_argument("--all", action="store_true", help="count the class's calls into itself too")
    args = parser.parse_args(argv)
    counted = entries(args.cls, inside=args.all)
    if args.where:
        for (caller, method), n in sorted(counted.items()):
            print(f"{n:3d}  {caller} -> {method}")
    print(sum(counted.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
