"""Issue 69's first Done bound, probed through the running app: files whose headers understate their content
reserve at least what the provider bills. For each hostile file of tests/understated_media.py (a 100-page PDF
with #-escaped names, a /Count of 1 and an unused plain page object; a 60 s WAV whose byte rate says 2 GB/s; a
GIF whose 1x1 logical screen covers one 2048x2048 frame, and one over three such frames; an APNG and an animated
WebP whose canvas says 1x1 over 2048x2048 frames), on each door that takes it, 30 streams start at once with a
key whose `--budget N/day` or `--budget-usd X/day` covers only COVERS of them. The fake upstream bills each
request what the provider's rule (argoproxy/meter/families.py, by the model's family) bills for the decoded
content: the PDF's pages as pypdf reads them, the WAV's samples as stdlib `wave` counts them, each image at the
extent its frames were drawn at (Pillow refuses to open the APNG and the WebP whose canvas is smaller than their
frames). The key's usage rows, read after the streams, give what was billed against the budget: the bound is
1.05x.

Doors: chat, Responses, Messages, Google and Ollama translated to chat completions, and Responses and Messages
relayed as written (`FRONTS_PASSTHROUGH`, a second set of proxies on the same store). Stores: SQLite behind one
proxy of two workers, and one real redis-server behind three proxies of two workers
(tests/integration/test_reservations.py's Store). Everything listens on 127.0.0.1; each store's rounds are
bounded by --deadline, and every process stops with the bench.

Run: python bench/understated_media.py [--quick] [--stores sqlite,redis] [--formats pdf,wav,gif,...]
     [--doors chat,responses,...] [--model gpt-4o-mini] [--deadline 900] [--as-before]
--quick: SQLite and the chat door only (it takes every format), both budget kinds.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import math
import sys
import tempfile
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import requests  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from argoproxy.meter.families import AUDIO_TOKENS_PER_SECOND, Family, family_of  # noqa: E402
from argoproxy.meter.media import media_tokens  # noqa: E402
from tests import understated_media as hostile  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks  # noqa: E402
from tests.integration.test_reservations import Store  # noqa: E402
from tests.polling import poll  # noqa: E402

STREAMS = 30
COVERS = 4  # the budget covers what this many requests are billed
MAX_TOKENS = 10
BOUND = 1.05
SIDE = 2048
INPUT_MTOK, OUTPUT_MTOK = Decimal("2.5"), Decimal("10")  # the model's price in PRICES, dollars a million tokens
TEXT = "Describe this."


# ---------------------------------------------------------------- the hostile files and what a provider bills
@dataclass(frozen=True)
class Hostile:
    """A file whose headers understate it, and what it holds decoded: pages, seconds or an image's extent."""
    name: str
    kind: str  # "pdf", "audio" or "image"
    mime: str
    data: bytes
    pages: int = 0
    seconds: float = 0.0
    extent: tuple[int, int] = (0, 0)

    def billed(self, family: Family) -> int:
        """The provider's rule for the decoded content (families.py: the rule the meter holds for the family)."""
        if self.kind == "pdf":
            return self.pages * family.page()
        if self.kind == "audio":
            return math.ceil(self.seconds * AUDIO_TOKENS_PER_SECOND)
        return family.image.tokens(self.extent, None)

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode()


def pdf_file() -> Hostile:
    data = hostile.pdf(100, count=1, unused=1)
    return Hostile("pdf", "pdf", "application/pdf", data, pages=len(PdfReader(io.BytesIO(data)).pages))


def wav_file() -> Hostile:
    data = hostile.wav(60, rate=8000, said_rate=2**31)
    with wave.open(io.BytesIO(data)) as w:  # the samples in its data chunk, whatever the byte rate says
        seconds = w.getnframes() / w.getframerate()
    return Hostile("wav", "audio", "audio/wav", data, seconds=seconds)


def image_file(name: str, mime: str, make: Callable[..., bytes], **frames: int) -> Hostile:
    return Hostile(name, "image", mime, make((1, 1), (SIDE, SIDE), **frames), extent=(SIDE, SIDE))


FILES: dict[str, Callable[[], Hostile]] = {
    "pdf": pdf_file, "wav": wav_file,
    "gif": lambda: image_file("gif", "image/gif", hostile.gif),
    "gif-animated": lambda: image_file("gif-animated", "image/gif", hostile.gif, count=3),  # the frames walked
    "apng": lambda: image_file("apng", "image/png", hostile.apng),
    "webp": lambda: image_file("webp", "image/webp", hostile.webp),
}


# ---------------------------------------------------------------- each door's streamed request, the part it takes
def chat(f: Hostile, model: str) -> tuple[str, dict[str, Any]]:
    part = ({"type": "image_url", "image_url": {"url": f"data:{f.mime};base64,{f.b64}"}} if f.kind == "image" else
            {"type": "input_audio", "input_audio": {"data": f.b64, "format": "wav"}} if f.kind == "audio" else
            {"type": "file", "file": {"file_data": f"data:{f.mime};base64,{f.b64}", "filename": "a.pdf"}})
    return "/v1/chat/completions", {"model": model, "max_tokens": MAX_TOKENS, "stream": True, "messages": [
        {"role": "user", "content": [{"type": "text", "text": TEXT}, part]}]}


def responses(f: Hostile, model: str) -> tuple[str, dict[str, Any]]:
    part = ({"type": "input_image", "image_url": f"data:{f.mime};base64,{f.b64}"} if f.kind == "image" else
            {"type": "input_audio", "input_audio": {"data": f.b64, "format": "wav"}} if f.kind == "audio" else
            {"type": "input_file", "file_data": f"data:{f.mime};base64,{f.b64}", "filename": "a.pdf"})
    return "/v1/responses", {"model": model, "max_output_tokens": MAX_TOKENS, "stream": True, "store": False,
                             "input": [{"role": "user", "content": [{"type": "input_text", "text": TEXT}, part]}]}


def messages(f: Hostile, model: str) -> tuple[str, dict[str, Any]]:
    block = "image" if f.kind == "image" else "document"
    return "/v1/messages", {"model": model, "max_tokens": MAX_TOKENS, "stream": True, "messages": [
        {"role": "user", "content": [{"type": "text", "text": TEXT}, {"type": block, "source": {
            "type": "base64", "media_type": f.mime, "data": f.b64}}]}]}


def google(f: Hostile, model: str) -> tuple[str, dict[str, Any]]:
    return f"/v1beta/models/{model}:streamGenerateContent?alt=sse", {
        "generationConfig": {"maxOutputTokens": MAX_TOKENS}, "contents": [{"role": "user", "parts": [
            {"text": TEXT}, {"inline_data": {"mime_type": f.mime, "data": f.b64}}]}]}


def ollama(f: Hostile, model: str) -> tuple[str, dict[str, Any]]:
    return "/api/chat", {"model": model, "stream": True, "options": {"num_predict": MAX_TOKENS}, "messages": [
        {"role": "user", "content": TEXT, "images": [f.b64]}]}


DOORS: dict[str, Callable[[Hostile, str], tuple[str, dict[str, Any]]]] = {
    "chat": chat, "responses": responses, "messages": messages, "google": google, "ollama": ollama,
    "responses-relayed": responses, "messages-relayed": messages}
FLAGS = {"tokens": "--budget", "dollars": "--budget-usd"}
RELAYED = "responses,messages"  # FRONTS_PASSTHROUGH of the second set of proxies: the doors' requests as written
TAKES = {"pdf": ("chat", "responses", "messages", "google", "responses-relayed", "messages-relayed"),
         "audio": ("chat", "responses", "google", "responses-relayed"),
         "image": ("chat", "responses", "messages", "google", "ollama", "responses-relayed", "messages-relayed")}


def strings(value: Any) -> list[str]:
    """Every string of a parsed JSON body long enough to be a file."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) and len(value) > 64 else []


def decoded(text: str) -> bytes:
    """A string's base64 (after a data: URL's head) decoded; b"": not base64."""
    try:
        return base64.b64decode(text.rpartition(";base64,")[2], validate=True)
    except ValueError:
        return b""


# ---------------------------------------------------------------- the fake provider: it bills the decoded content
class Provider:
    """The fake upstream's answers: each request's text, the hostile files found in it (in whatever shape the
    door translated them to) at what the provider bills them, and its max_tokens; a tally of what it billed."""

    def __init__(self, files: list[Hostile], family: Family) -> None:
        self.bills = {hashlib.sha256(f.data).digest(): f.billed(family) for f in files}
        self.lock = threading.Lock()
        self.billed: list[int] = []
        self.parts: list[int] = []

    def found(self, body: Any) -> list[int]:
        """The bills of the hostile files among a body's strings (base64, or a data: URL of base64)."""
        bills = (self.bills.get(hashlib.sha256(raw).digest()) for raw in map(decoded, strings(body)))
        return [bill for bill in bills if bill is not None]

    def answering(self, fallback: Callable[..., Any]) -> Callable[..., Any]:
        def answer(method: str, path: str, body: bytes) -> Any:
            api = next((a for a in ANSWERS if path.endswith(a)), None)
            if method != "POST" or api is None:
                return fallback(method, path, body)
            prompt, output = self.bill(json.loads(body))
            return Stream(ANSWERS[api](prompt, output), delay=0.2)  # the 30 streams overlap
        return answer

    def bill(self, req: dict[str, Any]) -> tuple[int, int]:
        """A request's (input, output) tokens: its text, the hostile files in it, its most output."""
        from argoproxy.meter.tokens import count_texts, request_texts
        media = self.found(req)
        prompt = count_texts(request_texts(req)) + sum(media)
        output = next((req[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens") if req.get(k)),
                      MAX_TOKENS)
        with self.lock:
            self.billed.append(prompt + output)
            self.parts.append(len(media))
        return prompt, output

    def reset(self) -> None:
        with self.lock:
            self.billed.clear()
            self.parts.clear()


def chat_stream(prompt: int, output: int) -> list[Any]:
    events = chat_chunks(["one ", "two"], usage=True)
    events[-2]["usage"] = {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
    return events


def sse(events: list[dict[str, Any]]) -> list[Any]:
    """Named events, as the Responses and Messages APIs write them."""
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def responses_stream(prompt: int, output: int) -> list[Any]:
    done = {"id": "resp_up", "object": "response", "status": "completed", "output": [], "usage": {
        "input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}}
    return sse([{"type": "response.created", "response": {**done, "status": "in_progress", "usage": None}},
                {"type": "response.output_text.delta", "item_id": "m1", "output_index": 0, "content_index": 0,
                 "delta": "one two"},
                {"type": "response.completed", "response": done}])


def messages_stream(prompt: int, output: int) -> list[Any]:
    return sse([{"type": "message_start", "message": {"id": "msg_up", "type": "message", "role": "assistant",
                                                      "content": [], "model": "m", "stop_reason": None,
                                                      "usage": {"input_tokens": prompt, "output_tokens": 1}}},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "one two"}},
                {"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}},
                {"type": "message_stop"}])


ANSWERS = {"/chat/completions": chat_stream, "/responses": responses_stream, "/messages": messages_stream}


# ---------------------------------------------------------------- the instrument's own check
# With --as-before the proxies' meter reads what each file says of itself, as it did before issue 69 (a
# sitecustomize on their PYTHONPATH replaces its three measures): every round should then pass the bound.
AS_BEFORE = r"""
import re, struct
from argoproxy.meter import sizes

def image_size(data):
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    if data[:4] == b"RIFF" and data[12:16] == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None

def pdf_pages(data):
    plain = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)
    said = re.search(rb"/Count\s+(\d+)", plain)
    return int(said.group(1)) if said else None

def audio_seconds(data, form):
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return struct.unpack("<I", data[40:44])[0] / max(1, struct.unpack("<I", data[28:32])[0])
    return None

sizes.image_size, sizes.pdf_pages, sizes.audio_seconds = image_size, pdf_pages, audio_seconds
"""


def as_before() -> dict[str, str]:
    """The proxies' settings that make their meter read headers (--as-before)."""
    directory = Path(tempfile.mkdtemp(prefix="understated_as_before_"))
    (directory / "sitecustomize.py").write_text(AS_BEFORE)
    return {"PYTHONPATH": f"{directory}:{Path(__file__).resolve().parent.parent}"}


# ---------------------------------------------------------------- one round: 30 streams on one key
@dataclass
class Round:
    f: Hostile
    door: str
    limit: str  # "tokens" or "dollars"
    budget: Decimal
    key: str = ""
    statuses: tuple[int, ...] = ()
    refusal: str = ""
    upstream_billed: int = 0
    parts: int = 0
    counted: int = 0  # what the meter counts of the door's part, in-process

    @property
    def name(self) -> str:
        return f"{self.f.name}-{self.door}-{self.limit}"

    def spent(self, rows: dict[str, tuple[int, int, Decimal]]) -> tuple[Decimal, str, str]:
        """What the key's usage rows hold of this round's kind, and it and the budget written out."""
        _, tokens, dollars = rows.get(self.name, (0, 0, Decimal(0)))
        if self.limit == "tokens":
            return Decimal(tokens), f"{tokens:,} tokens", f"{int(self.budget):,} tokens"
        return dollars, f"${dollars:.4f}", f"${self.budget}"

    def admitted(self) -> str:
        """"4 of 30", and the other statuses seen than 200 and 429."""
        others = sorted({s for s in self.statuses if s not in (200, 429)})
        return f"{self.statuses.count(200)} of {STREAMS}" + (f" ({','.join(map(str, others))})" if others else "")


def dollars(tokens_in: int, tokens_out: int) -> Decimal:
    return (tokens_in * INPUT_MTOK + tokens_out * OUTPUT_MTOK) / 1_000_000


def budgets(f: Hostile, model: str) -> dict[str, Decimal]:
    """Each kind's budget: what COVERS requests are billed (their text about 20 tokens)."""
    prompt = f.billed(family_of(model)) + 20
    return {"tokens": Decimal(COVERS * (prompt + MAX_TOKENS)),
            "dollars": (COVERS * dollars(prompt, MAX_TOKENS)).quantize(Decimal("0.000001"), ROUND_UP)}


def stream(base: str, key: str, path: str, body: dict[str, Any], deadline: float) -> tuple[int, str]:
    """One streamed request, read to its end: its status and (refused) the start of its answer."""
    timeout = max(1.0, deadline - time.monotonic())
    try:
        with requests.post(base + path, json=body, stream=True, timeout=timeout,
                           headers={"Authorization": f"Bearer {key}"}) as r:
            answer = b"".join(r.iter_content(None))
            return r.status_code, "" if r.status_code == 200 else answer[:300].decode("utf-8", "replace")
    except requests.RequestException as exc:
        return 0, type(exc).__name__


def run_round(bases: list[str], r: Round, model: str, deadline: float) -> None:
    path, body = DOORS[r.door](r.f, model)
    r.counted = media_tokens(body, model)
    start = threading.Barrier(STREAMS)

    def one(i: int) -> tuple[int, str]:
        start.wait(60)
        return stream(bases[i % len(bases)], r.key, path, body, deadline)
    with ThreadPoolExecutor(STREAMS) as pool:
        answers = list(pool.map(one, range(STREAMS)))
    r.statuses = tuple(s for s, _ in answers)
    r.refusal = next((text for s, text in answers if s not in (200, 429)), "") or next(
        (text for s, text in answers if s == 429), "")


# ---------------------------------------------------------------- a store: its proxies, its rounds, its usage
def usage(store: Store) -> dict[str, tuple[int, int, Decimal]]:
    """Each key's (requests, tokens, dollars) from its usage rows."""
    rows: dict[str, tuple[int, int, Decimal]] = {}
    for row in csv.DictReader(io.StringIO(store.keys("usage", "--csv").stdout)):
        n, tokens, spent = rows.get(row["key"], (0, 0, Decimal(0)))
        rows[row["key"]] = (n + int(row["requests"]), tokens + int(row["input_tokens"]) + int(row["output_tokens"]),
                            spent + Decimal(row["cost_usd"]))
    return rows


def settled(store: Store, admitted: dict[str, int]) -> dict[str, tuple[int, int, Decimal]]:
    """The usage rows once each key's admitted streams are all recorded (a stream's usage is written as it
    ends), or as they are after a minute."""
    def recorded() -> dict[str, tuple[int, int, Decimal]] | None:
        rows = usage(store)
        return rows if all(rows.get(name, (0, 0, 0))[0] == n for name, n in admitted.items()) else None
    return poll(recorded, timeout=60, interval=0.5) or usage(store)


def run_rounds(kind: str, bases: list[str], rounds: list[Round], provider: Provider, fake: FakeOpenAI, model: str,
               deadline: float) -> None:
    for r in rounds:
        if time.monotonic() > deadline:
            print(f"{kind}: deadline reached before {r.name}", file=sys.stderr)
            return
        provider.reset()
        fake.reset()
        run_round(bases, r, model, deadline)
        r.upstream_billed, r.parts = sum(provider.billed), sum(provider.parts)
        print(f"{kind} {r.name}: {r.statuses.count(200)} of {STREAMS} admitted", file=sys.stderr)


def run_store(kind: str, rounds: list[Round], model: str, deadline: float,
              settings: dict[str, str]) -> dict[str, tuple[int, int, Decimal]]:
    provider = Provider(list({r.f.name: r.f for r in rounds}.values()), family_of(model))
    prices = json.dumps({"models": {model: {"input_mtok": float(INPUT_MTOK), "output_mtok": float(OUTPUT_MTOK)}}})
    store = Store(kind, Path(tempfile.mkdtemp(prefix=f"understated_{kind}_")))
    try:
        with FakeOpenAI() as fake, ThreadPoolExecutor(8) as pool:
            fake.default_answer = provider.answering(fake.default_answer)  # type: ignore[method-assign]
            for r, key in zip(rounds, pool.map(lambda r: store.create(r.name, FLAGS[r.limit], f"{r.budget}/day"),
                                               rounds)):
                r.key = key
            for relaying in ({}, {"FRONTS_PASSTHROUGH": RELAYED}):
                passing = [r for r in rounds if r.door.endswith("-relayed") == bool(relaying)]
                if passing and time.monotonic() < deadline:
                    with store.proxies(fake, PRICES=prices, **relaying, **settings) as bases:
                        run_rounds(kind, bases, passing, provider, fake, model, deadline)
            return settled(store, {r.name: r.statuses.count(200) for r in rounds if r.statuses})
    finally:
        store.close()


# ---------------------------------------------------------------- the table
def row(kind: str, r: Round, rows: dict[str, tuple[int, int, Decimal]], family: Family) -> tuple[str, str | None]:
    """A round's line of the table, and its finding (over the bound, or answered other than 200 or 429)."""
    spent, shown, budget = r.spent(rows)
    ratio = spent / r.budget
    over = ratio > Decimal(str(BOUND))
    line = (f"| {kind} | {r.f.name} | {r.door} | {r.limit} | {r.admitted()} | {r.counted:,} | "
            f"{r.f.billed(family):,} | {r.parts} | {shown} | {budget} | {ratio:.3f} | {'OVER' if over else 'ok'} |")
    if not over and set(r.statuses) <= {200, 429}:
        return line, None
    return line, (f"{'OVER' if over else 'refused'}: {kind} {r.name}: {r.admitted()} admitted; the meter counts "
                  f"{r.counted:,} a request where the provider bills {r.f.billed(family):,}; {shown} against {budget} "
                  f"({ratio:.3f}x); the upstream billed {r.upstream_billed:,} tokens; {r.refusal[:200]!r}")


def rounds_of(files: list[Hostile], doors: list[str], model: str) -> list[Round]:
    """A round for each file, each door that takes it (of those asked) and each budget kind."""
    return [Round(f, door, limit, budget) for f in files for door in TAKES[f.kind] if door in doors
            for limit, budget in budgets(f, model).items()]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only, the chat door only")
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--formats", default=",".join(FILES))
    parser.add_argument("--doors", default=",".join(DOORS))
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--as-before", action="store_true",
                        help="the instrument's own check: the proxies' meter reads headers, as before issue 69")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds for each store's rounds")
    args = parser.parse_args()
    if args.quick:
        args.stores, args.doors = "sqlite", "chat"
    return args


def main() -> None:
    args = arguments()
    if args.as_before:
        exec(AS_BEFORE, {})  # the "meter counts" column too: what the proxies' meter now counts
    family = family_of(args.model)
    files = [FILES[name]() for name in args.formats.split(",")]
    print(f"{STREAMS} streams at once a round, model {args.model} ({family.name}), each budget covering {COVERS} "
          f"requests' bills, priced ${INPUT_MTOK}/${OUTPUT_MTOK} a million tokens; bound {BOUND}x")
    print("\n| store | format | door | budget | admitted | meter counts | provider bills | parts upstream | "
          "billed (usage rows) | budget | billed/budget | |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    findings: list[str] = []
    for kind in args.stores.split(","):
        rounds = rounds_of(files, args.doors.split(","), args.model)
        rows = run_store(kind, rounds, args.model, time.monotonic() + args.deadline,
                         as_before() if args.as_before else {})
        for line, finding in (row(kind, r, rows, family) for r in rounds if r.statuses):
            print(line, flush=True)
            findings.extend(filter(None, [finding]))
    report(findings)


def report(findings: list[str]) -> None:
    print(f"\n{sum(f.startswith('OVER') for f in findings)} rounds over the bound; the rounds over it or answered "
          f"other than 200 and 429: {'' if findings else 'none'}")
    for finding in sorted(findings):
        print("- " + finding)


if __name__ == "__main__":
    main()
