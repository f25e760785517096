"""Budgets hold for what is not text (issue 55): images, audio and files counted nothing at admission, so a key with
`--budget-usd 1/day` spent $22.95 on 60 parallel chat streams of 100 images each (23x), a `--budget 100000/day`
key 1,530x, and the Messages door 510x. Now the meter counts them (argoproxy/meter/) and the reservation holds
them: 60 requests started at once, each carrying images (by URL and inline, at each `detail`), audio and a PDF,
on the chat, Responses, Messages, Google and Ollama doors, spend at most 1.05x a token budget and a dollar budget,
on SQLite (one instance, two workers) and on Redis (three instances of two workers).

The fake upstream charges what its provider would: each image by OpenAI's published rule at its real size (an
image by URL: the size its name says, which the proxy never fetches), a sound by its duration, a PDF by its pages,
and the answer's max_tokens."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import wave
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from argoproxy.meter.tokens import count_texts, request_texts
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.integration.test_reservations import Store, at_once
from tests.polling import poll

MODEL = "gpt-4o"
PRICES = json.dumps({"models": {MODEL: {"input_mtok": 2.5, "output_mtok": 10}}})
TOKENS = 100_000  # --budget 100000/day
DOLLARS = Decimal("0.25")  # --budget-usd 0.25/day
URL = "https://images.example.com/2048x768.png"  # never fetched: the proxy counts OpenAI's most for one image


def png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def wav(seconds: float) -> str:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))
    return base64.b64encode(out.getvalue()).decode()


def pdf(pages: int) -> str:
    out = io.BytesIO()
    page = Image.new("RGB", (200, 200))
    page.save(out, "PDF", save_all=True, append_images=[page] * (pages - 1))
    return base64.b64encode(out.getvalue()).decode()


IMAGE = png(1024, 1024)
PDF = pdf(2)
AUDIO = wav(2.0)


# ---------------------------------------------------------------- what the upstream charges
AUDIO_PER_SECOND = 32  # the most any maker publishes (Google's): the meter's bound
PAGE = 3000 + 85 + 8 * 170  # a PDF page: its text at most and an image of it


def tiles(size: tuple[int, int], detail: str | None) -> int:
    """OpenAI's published rule for gpt-4o (platform.openai.com/docs/guides/images-vision#calculating-costs)."""
    if detail == "low":
        return 85
    width, height = size
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    if min(width, height) > 768:
        width, height = width * 768 / min(width, height), height * 768 / min(width, height)
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def charged_media(body: Any) -> int:
    """What OpenAI charges for the parts of a chat request that are not text: each image by its real size (read by
    Pillow; by URL, the size its name says), each sound by its duration, each PDF page as its text and an image."""
    total = 0
    for message in body.get("messages", []):
        for part in message.get("content") if isinstance(message.get("content"), list) else ():
            kind = part.get("type")
            if kind == "image_url":
                url, detail = part["image_url"]["url"], part["image_url"].get("detail")
                if url.startswith("data:"):
                    size = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))).size
                else:
                    size = tuple(int(n) for n in re.search(r"(\d+)x(\d+)", url).groups())
                total += tiles(size, detail)
            elif kind == "input_audio":
                with wave.open(io.BytesIO(base64.b64decode(part["input_audio"]["data"]))) as w:
                    total += math.ceil(w.getnframes() / w.getframerate() * AUDIO_PER_SECOND)
            elif kind == "file":
                data = base64.b64decode(part["file"]["file_data"].partition(",")[2])
                total += len(PdfReader(io.BytesIO(data)).pages) * PAGE  # its pages as a reader finds them
    return total


def charging(fallback):
    """The fake's answers: max_tokens generated, the prompt's text and media charged."""
    def answer(method: str, path: str, body: bytes):
        if method != "POST" or not path.endswith("/chat/completions"):
            return fallback(method, path, body)
        req = json.loads(body)
        prompt = count_texts(request_texts(req)) + charged_media(req)
        output = req.get("max_tokens") or req.get("max_completion_tokens") or 10
        usage = {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
        if req.get("stream"):
            events = chat_chunks(["one ", "two"], usage=True)
            events[-2]["usage"] = usage
            return Stream(events, delay=0.1)
        answer = chat_completion("one two")
        answer["usage"] = usage
        return Reply(answer, delay=0.2)
    return answer


# ---------------------------------------------------------------- each door's request, every part it takes
def data(b64: str, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{b64}"


CHAT = ("/v1/chat/completions", {"model": MODEL, "max_tokens": 10, "stream": True, "messages": [
    {"role": "user", "content": [
        {"type": "text", "text": "Describe these."},
        *[{"type": "image_url", "image_url": {"url": URL, "detail": "high"}}] * 10,
        *[{"type": "image_url", "image_url": {"url": data(IMAGE), **({"detail": d} if d else {})}}
          for d in ("low", "high", "auto", None)],
        {"type": "input_audio", "input_audio": {"data": AUDIO, "format": "wav"}},
        {"type": "file", "file": {"file_data": data(PDF, "application/pdf"), "filename": "a.pdf"}}]}]})
RESPONSES = ("/v1/responses", {"model": MODEL, "max_output_tokens": 16, "input": [{"role": "user", "content": [
    {"type": "input_text", "text": "Describe these."},
    *[{"type": "input_image", "image_url": URL, "detail": "high"}] * 10,
    *[{"type": "input_image", "image_url": data(IMAGE), "detail": d} for d in ("low", "high", "auto")],
    {"type": "input_file", "file_data": data(PDF, "application/pdf"), "filename": "a.pdf"}]}]})
MESSAGES = ("/v1/messages", {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [
    {"type": "text", "text": "Describe these."},
    *[{"type": "image", "source": {"type": "url", "url": URL}}] * 10,
    *[{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE}}] * 3,
    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]})
GOOGLE = (f"/v1beta/models/{MODEL}:generateContent", {"generationConfig": {"maxOutputTokens": 10}, "contents": [
    {"role": "user", "parts": [
        {"text": "Describe these."},
        *[{"fileData": {"fileUri": URL, "mimeType": "image/png"}}] * 10,
        *[{"inlineData": {"mimeType": "image/png", "data": IMAGE}}] * 3,
        {"inlineData": {"mimeType": "application/pdf", "data": PDF}}]}]})
OLLAMA = ("/api/chat", {"model": MODEL, "stream": False, "options": {"num_predict": 10}, "messages": [
    {"role": "user", "content": "Describe these.", "images": [IMAGE] * 30}]})
DOORS = {"chat": CHAT, "responses": RESPONSES, "messages": MESSAGES, "google": GOOGLE, "ollama": OLLAMA}
# Three replicas of two workers start, and five keys are made by the command line, before the rounds (about 50 s of
# a loaded two-core machine's; the rounds themselves take about 8 s)
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    s = Store(request.param, tmp_path)
    yield s
    s.close()


LIMITS = {"tokens": ("--budget", f"{TOKENS}/day"), "dollars": ("--budget-usd", f"{DOLLARS}/day")}


def usage_rows(store: Store) -> dict[str, tuple[int, int, Decimal]]:
    """Each key's (requests, tokens, dollars), from one read of the usage rows."""
    done = store.keys("usage", "--csv")
    rows: dict[str, tuple[int, int, Decimal]] = {}
    for r in csv.DictReader(io.StringIO(done.stdout)):
        n, tokens, dollars = rows.get(r["key"], (0, 0, Decimal(0)))
        rows[r["key"]] = (n + int(r["requests"]), tokens + int(r["input_tokens"]) + int(r["output_tokens"]),
                          dollars + Decimal(r["cost_usd"]))
    return rows


@pytest.mark.parametrize("limit", LIMITS)
def test_sixty_parallel_requests_with_images_audio_and_files_stay_within_the_budget(store, limit):
    rounds = [(door, limit) for door in DOORS]
    with FakeOpenAI() as fake, ThreadPoolExecutor(len(rounds)) as pool:
        fake.default_answer = charging(fake.default_answer)
        # the keys made together, while the proxies start
        made = pool.map(lambda r: store.create(f"{r[0]}-{r[1]}", *LIMITS[r[1]]), rounds)
        with store.proxies(fake, PRICES=PRICES) as bases:
            keys = dict(zip(rounds, made))
            admitted = {}
            for (door, limit), key in keys.items():
                path, body = DOORS[door]
                statuses = at_once(bases, key, 60, path, body)
                assert set(statuses) <= {200, 429} and len(statuses) == 60, (door, limit, statuses)
                admitted[f"{door}-{limit}"] = statuses.count(200)
            assert all(admitted.values()), admitted  # each budget has room for some
            assert poll(lambda: {k: v[0] for k, v in usage_rows(store).items()} == admitted, timeout=30), admitted
            rows = usage_rows(store)
            for name, (requests, tokens, dollars) in sorted(rows.items()):
                print(f"{store.kind}, {name}: {requests} of 60 admitted, {tokens:,} tokens, ${dollars}")
                if name.endswith("tokens"):
                    assert 0 < tokens <= TOKENS * 1.05, (name, tokens)
                else:
                    assert 0 < dollars <= DOLLARS * Decimal("1.05"), (name, dollars)
