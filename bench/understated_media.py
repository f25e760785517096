"""Issue 69's first Done bound, probed through the running app: files whose headers understate their content
reserve at least what the provider bills. For each hostile file of tests/understated_media.py (a 100-page PDF
with #-escaped names, a /Count of 1 and an unused plain page object; a 60 s WAV whose byte rate says 2 GB/s; a
GIF with a 1x1 logical screen over a 2048x2048 frame; an APNG and an animated WebP whose canvas says 1x1 over
2048x2048 frames), on each door that takes it, 30 streams start at once with a key whose `--budget N/day` or
`--budget-usd X/day` covers only COVERS of them. The fake upstream bills each request what the provider's rule
(argoproxy/meter/families.py, by the model's family) bills for the decoded content: the PDF's pages as pypdf
reads them, the WAV's samples as stdlib `wave` counts them, each image at the extent its frames were drawn at
(Pillow refuses to open the APNG and the WebP whose canvas is smaller than their frames). The key's usage rows,
read after the streams, give what was billed against the budget: at most 1.05x is the bound.

Stores: SQLite behind one proxy of two workers, and one real redis-server behind three proxies of two workers
(tests/integration/test_reservations.py's Store). Everything listens on 127.0.0.1; each store's run is bounded
by --deadline and stops by itself.

Run: python bench/understated_media.py [--quick] [--stores sqlite,redis] [--formats pdf,wav,gif,apng,webp]
     [--doors chat,responses,messages,google,ollama] [--model gpt-4o-mini] [--deadline 900]
--quick: SQLite only, the chat door only (it takes every format), both budget kinds: ten rounds.
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


def image_file(name: str, mime: str, make: Callable[..., bytes]) -> Hostile:
    return Hostile(name, "image", mime, make((1, 1), (SIDE, SIDE)), extent=(SIDE, SIDE))


FILES: dict[str, Callable[[], Hostile]] = {
    "pdf": pdf_file, "wav": wav_file,
    "gif": lambda: image_file("gif", "image/gif", hostile.gif),
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
    "chat": chat, "responses": responses, "messages": messages, "google": google, "ollama": ollama}
TAKES = {"pdf": ("chat", "responses", "messages", "google"), "audio": ("chat", "responses", "google"),
         "image": ("chat", "responses", "messages", "google", "ollama")}  # issue 69: each door that takes it


# ---------------------------------------------------------------- the fake provider: it bills the decoded content
class Provider:
    """The fake upstream's answers: each request's text, the hostile files found in it (in whatever shape the
    door translated them to) at what the provider bills them, and its max_tokens; a tally of what it billed."""

    def __init__(self, files: list[Hostile], family: Family) -> None:
        self.bills = {hashlib.sha256(f.data).digest(): f.billed(family) for f in files}
        self.lock = threading.Lock()
        self.billed: list[int] = []
        self.parts: list[int] = []

    def found(self, value: Any) -> list[int]:
        """The bills of the hostile files among a body's strings (base64, or a data: URL of base64)."""
        if isinstance(value, dict):
            return [b for v in value.values() for b in self.found(v)]
        if isinstance(value, list):
            return [b for v in value for b in self.found(v)]
        if isinstance(value, str) and len(value) > 64:
            try:
                raw = base64.b64decode(value.rpartition(";base64,")[2], validate=True)
            except ValueError:
                return []
            bill = self.bills.get(hashlib.sha256(raw).digest())
            return [] if bill is None else [bill]
        return []

    def answering(self, fallback: Callable[..., Any]) -> Callable[..., Any]:
        from argoproxy.meter.tokens import count_texts, request_texts

        def answer(method: str, path: str, body: bytes) -> Any:
            if method != "POST" or not path.endswith("/chat/completions"):
                return fallback(method, path, body)
            req = json.loads(body)
            media = self.found(req)
            prompt = count_texts(request_texts(req)) + sum(media)
            output = req.get("max_tokens") or req.get("max_completion_tokens") or MAX_TOKENS
            with self.lock:
                self.billed.append(prompt + output)
                self.parts.append(len(media))
            events = chat_chunks(["one ", "two"], usage=True)
            events[-2]["usage"] = {"prompt_tokens": prompt, "completion_tokens": output,
                                   "total_tokens": prompt + output}
            return Stream(events, delay=0.2)  # the 30 streams overlap
        return answer

    def reset(self) -> None:
        with self.lock:
            self.billed.clear()
            self.parts.clear()


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


def run_store(kind: str, rounds: list[Round], model: str, deadline: float) -> dict[str, tuple[int, int, Decimal]]:
    provider = Provider(list({r.f.name: r.f for r in rounds}.values()), family_of(model))
    prices = json.dumps({"models": {model: {"input_mtok": float(INPUT_MTOK), "output_mtok": float(OUTPUT_MTOK)}}})
    store = Store(kind, Path(tempfile.mkdtemp(prefix=f"understated_{kind}_")))
    try:
        with FakeOpenAI() as fake, ThreadPoolExecutor(8) as pool:
            fake.default_answer = provider.answering(fake.default_answer)
            flag = {"tokens": "--budget", "dollars": "--budget-usd"}
            keys = pool.map(lambda r: store.create(r.name, flag[r.limit], f"{r.budget}/day"), rounds)
            with store.proxies(fake, PRICES=prices, TARGET_BASE_URL=fake.root_url) as bases:
                for r, key in zip(rounds, keys):
                    r.key = key
                for r in rounds:
                    if time.monotonic() > deadline:
                        print(f"{kind}: deadline reached before {r.name}", file=sys.stderr)
                        break
                    provider.reset()
                    fake.reset()
                    run_round(bases, r, model, deadline)
                    r.upstream_billed, r.parts = sum(provider.billed), sum(provider.parts)
                    print(f"{kind} {r.name}: {r.statuses.count(200)} of {STREAMS} admitted", file=sys.stderr)
                done = {r.name: r.statuses.count(200) for r in rounds if r.statuses}
                rows = poll(lambda: (lambda u: u if all(u.get(n, (0,))[0] == a for n, a in done.items()) else None)(
                    usage(store)), timeout=60) or usage(store)
                return rows
    finally:
        store.close()


# ---------------------------------------------------------------- the table
def table(kind: str, rounds: list[Round], rows: dict[str, tuple[int, int, Decimal]], model: str) -> list[str]:
    family = family_of(model)
    findings = []
    for r in rounds:
        if not r.statuses:
            continue
        _, tokens, spent = rows.get(r.name, (0, 0, Decimal(0)))
        billed = Decimal(tokens) if r.limit == "tokens" else spent
        ratio = billed / r.budget
        others = sorted({s for s in r.statuses if s not in (200, 429)})
        shown = f"{tokens:,} tokens" if r.limit == "tokens" else f"${spent:.4f}"
        budget = f"{int(r.budget):,} tokens" if r.limit == "tokens" else f"${r.budget}"
        verdict = "ok" if ratio <= Decimal(str(BOUND)) else "OVER"
        print(f"| {kind} | {r.f.name} | {r.door} | {r.limit} | {r.statuses.count(200)} of {STREAMS}"
              f"{' (' + ','.join(map(str, others)) + ')' if others else ''} | {r.counted:,} | "
              f"{r.f.billed(family):,} | {r.parts} | {shown} | {budget} | {ratio:.3f} | {verdict} |")
        if verdict == "OVER" or others:
            findings.append(f"{kind} {r.name}: {r.statuses.count(200)} admitted, statuses {sorted(set(r.statuses))}, "
                            f"meter counts {r.counted:,} a request where the provider bills {r.f.billed(family):,}; "
                            f"{shown} against {budget} ({ratio:.3f}x); upstream billed {r.upstream_billed:,} "
                            f"tokens; {r.refusal[:200]!r}")
    return findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only, the chat door only")
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--formats", default=",".join(FILES))
    parser.add_argument("--doors", default=",".join(DOORS))
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds for each store's rounds")
    args = parser.parse_args()
    stores = ["sqlite"] if args.quick else args.stores.split(",")
    doors = ["chat"] if args.quick else args.doors.split(",")
    files = [FILES[name]() for name in args.formats.split(",")]
    print(f"{STREAMS} streams at once a round, model {args.model} ({family_of(args.model).name}), each budget "
          f"covering {COVERS} requests' bills, priced ${INPUT_MTOK}/${OUTPUT_MTOK} a million tokens; bound {BOUND}x")
    print("\n| store | format | door | budget | admitted | meter counts | provider bills | parts upstream | "
          "billed (usage rows) | budget | billed/budget | |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    findings: list[str] = []
    for kind in stores:
        rounds = [Round(f, door, limit, budget) for f in files for door in TAKES[f.kind] if door in doors
                  for limit, budget in budgets(f, args.model).items()]
        rows = run_store(kind, rounds, args.model, time.monotonic() + args.deadline)
        findings += table(kind, rounds, rows, args.model)
    print("\nFindings:" if findings else "\nNo round over the bound.")
    for finding in findings:
        print("- " + finding)


if __name__ == "__main__":
    main()
