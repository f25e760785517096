"""How one whole non-streamed chat request moves through the product's files, as it runs (issue 70's bounds).

The real app (create_app) runs in-process in front of the fake OpenAI upstream on loopback
(tests/fakes/fake_openai.py), through the real transport. One request warms the worker (its model list, its
price source); the next is followed under sys.setprofile from the WSGI call to the answer's last byte. Control is
in the product file of the innermost product frame running (argoproxy/, cot_proxy.py): library frames (Flask,
werkzeug, urllib3) are passed through. Each time control moves from one product file to another (a call or a
return), that is a move. Counted:

- entries: moves into the file that holds the sequence (pipeline/gateway.py), returns included;
- returns: moves into a file control had already been in and left;
- files: the product files control was in.

    .venv/bin/python tools/request_path.py [--sequence argoproxy/pipeline/gateway.py] [--moves]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEQUENCE = "argoproxy/pipeline/gateway.py"
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "Hello"}]}
PRODUCT = (str(ROOT / "argoproxy") + os.sep, str(ROOT / "cot_proxy.py"))


@dataclass
class Path_:
    """The files control moved through, in order (each move from one product file to another)."""
    sequence: str = SEQUENCE
    moves: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, how: call | return)

    @property
    def entries(self) -> int:
        return sum(1 for _, to, _ in self.moves if to == self.sequence)

    @property
    def returns(self) -> int:
        seen: set[str] = set()
        again = 0
        for before, to, _ in self.moves:
            if before:
                seen.add(before)
            again += to in seen
        return again

    @property
    def files(self) -> int:
        return len({to for _, to, _ in self.moves})


def _product(filename: str) -> str | None:
    """The file's path in the project when it is the product's, else None."""
    if filename.startswith(PRODUCT[0]) or filename == PRODUCT[1]:
        return os.path.relpath(filename, ROOT)
    return None


def _innermost(frame: FrameType | None) -> str:
    """The product file of the innermost product frame from `frame` outward ("" when none)."""
    while frame is not None:
        name = _product(frame.f_code.co_filename)
        if name is not None:
            return name
        frame = frame.f_back
    return ""


def follow(sequence: str = SEQUENCE) -> Path_:
    """One non-streamed chat request's moves between product files, after one that warmed the worker."""
    from argoproxy.config.settings import load_settings
    from argoproxy.serve.flask_app import create_app
    from tests.fakes.fake_openai import FakeOpenAI

    path = Path_(sequence)
    where = [""]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            now = _product(frame.f_code.co_filename) or where[0]
        elif event == "return":
            now = _innermost(frame.f_back)
        else:
            return
        if now != where[0] and now:
            path.moves.append((where[0], now, event))
        where[0] = now

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
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", default=SEQUENCE, help="the file that holds the sequence")
    parser.add_argument("--moves", action="store_true", help="print each move between files")
    args = parser.parse_args(argv)
    path = follow(args.sequence)
    if args.moves:
        for before, to, how in path.moves:
            print(f"{how:6s} {before or '-'} -> {to}")
    print(f"entries into {path.sequence}: {path.entries}")
    print(f"returns to a file left: {path.returns}")
    print(f"files: {path.files}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
