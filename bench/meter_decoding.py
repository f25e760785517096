"""What counting the decoded content costs the meter (argoproxy/meter/sizes.py and its decoders), per MB of each
format, typical files and the worst the bounds let through; and, through the running app, the attack of issue 69
item 1: 30 parallel streams, each with a 100-page PDF whose headers say 1 page, on a `--budget 10000000/day` key.

Run: python bench/meter_decoding.py [cost] [streams]   (both by default; about a minute)

CPU seconds of this process (time.process_time), the best of a few runs, on whatever machine runs it: sizes, not
gates. docs/reservations.md quotes one run.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from PIL import Image  # noqa: E402

from argoproxy.meter import sizes  # noqa: E402
from tests import understated_media as files  # noqa: E402

MB = 1024 * 1024


def best(measure: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        measure()
        times.append(time.process_time() - started)
    return min(times)


def noise_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def jpeg(side: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=95)
    return out.getvalue()


def gif_frames(side: int, count: int) -> bytes:
    frames = [Image.frombytes("L", (side, side), os.urandom(side * side)).convert("P") for _ in range(count)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=40)
    return out.getvalue()


def webp_frames(side: int, count: int) -> bytes:
    frames = [Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)) for _ in range(count)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], quality=80)
    return out.getvalue()


def mp3_at(kbps_frame: bytes, mbytes: float) -> bytes:
    return kbps_frame * int(mbytes * MB / len(kbps_frame))


CASES: list[tuple[str, Callable[[], bytes], Callable[[bytes], object]]] = [
    ("PNG 2000x2000 (noise)", lambda: noise_png(2000), sizes.image_size),
    ("JPEG 3000x3000", lambda: jpeg(3000), sizes.image_size),
    ("GIF 100 frames of 500x500", lambda: gif_frames(500, 100), sizes.image_size),
    ("GIF 1000 frames of 64x64 (MOST_FRAMES)", lambda: gif_frames(64, 1000), sizes.image_size),
    ("WebP 20 frames of 500x500", lambda: webp_frames(500, 20), sizes.image_size),
    ("PDF 100 pages, #-escaped", lambda: files.pdf(100), sizes.pdf_pages),
    ("PDF 10,000 pages", lambda: files.pdf(10_000, escape=False), sizes.pdf_pages),
    ("PDF 10 pages + 200,000 unused page objects", lambda: files.pdf(10, unused=200_000), sizes.pdf_pages),
    ("WAV 16 kHz, 10 min", lambda: files.wav(600), lambda d: sizes.audio_seconds(d, "wav")),
    ("MP3 128 kbit/s, 4 MB", lambda: mp3_at(files.MP3_FRAME, 4), lambda d: sizes.audio_seconds(d, "mp3")),
    ("MP3 8 kbit/s MPEG-2.5, 1 MB (smallest frames)",
     lambda: mp3_at(b"\xff\xe3\x18\xc4" + b"\x00" * 68, 1), lambda d: sizes.audio_seconds(d, "mp3")),
    ("MP3 walk of 1 MB of 0xFF (a sync every byte)", lambda: b"\xff" * MB, lambda d: sizes.audio_seconds(d, "mp3")),
    ("PDF, 1,000,000 cross-reference entries (a table)", lambda: files.xref_table(1_000_000), sizes.pdf_pages),
    ("PDF, 1,000,000 cross-reference entries (a 5 KB stream)", lambda: files.xref_stream(1_000_000), sizes.pdf_pages),
    ("GIF 100,000 frames of 1x1", lambda: gif_frames(1, 100_000), sizes.image_size),
    ("PDF, 400 pages missing from its cross-reference, 20 MB (the review's mkpdf.py)",
     lambda: files.missing_pages(400, 20_000_000), sizes.pdf_pages),
    ("WAV of 2,000,000 empty chunks", lambda: files.wav_of_chunks(2_000_000), lambda d: sizes.audio_seconds(d, "wav")),
    ("MP3 of two interleaved chains (the review's)", lambda: files.interleaved_mp3(
        [files.LOUD_32K, files.LOUD_48K] * 100, files.QUIET, 52), lambda d: sizes.audio_seconds(d, "mp3")),
    ("DOCX of 2 MB of text", lambda: files.docx(b"<w:t>the same sentence again</w:t>" * 60_000), sizes.unzipped_bytes),
    ("zip bomb, 1 GB of zeros", lambda: files.docx(b"\x00" * 1_000_000_000), sizes.unzipped_bytes),
]


def cost() -> None:
    print("| file | MB | measured | CPU ms | ms per MB | base64 decode ms |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for name, make, measure in CASES:
        data = make()
        encoded = base64.b64encode(data).decode()
        seconds = best(lambda: measure(data))
        decode = best(lambda: sizes.decoded(encoded))
        mbytes = len(data) / MB
        print(f"| {name} | {mbytes:.2f} | {measure(data)} | {seconds * 1000:.1f} | "
              f"{seconds * 1000 / mbytes:.1f} | {decode * 1000:.1f} |")


def streams(n: int = 30, budget: int = 10_000_000, model: str = os.environ.get("BENCH_MODEL", "gpt-4o-mini")) -> None:
    """n streams at once, each with the 100-page PDF that says 1 page, on a --budget key: admitted, and what the
    provider billed against the budget (each page as the meter's rule for the model's family bills it: 51,169
    tokens on gpt-4o-mini, the issue's figures)."""
    import requests
    from pypdf import PdfReader

    from argoproxy.meter.families import family_of
    from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks
    from tests.integration.test_reservations import Store

    data = files.pdf(100)
    pdf = base64.b64encode(data).decode()
    body = {"model": model, "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarise."},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64," + pdf, "filename": "a.pdf"}}]}]}
    spent: list[int] = []
    billed = len(PdfReader(io.BytesIO(data)).pages) * family_of(model).page()

    def answer(fallback):
        def reply(method: str, path: str, raw: bytes):
            if not path.endswith("/chat/completions"):
                return fallback(method, path, raw)
            prompt = billed
            spent.append(prompt + 10)
            events = chat_chunks(["one ", "two"], usage=True)
            events[-2]["usage"] = {"prompt_tokens": prompt, "completion_tokens": 10, "total_tokens": prompt + 10}
            return Stream(events, delay=0.5)
        return reply

    import tempfile
    store = Store("sqlite", Path(tempfile.mkdtemp(prefix="meter_bench_")))
    with FakeOpenAI() as fake:
        fake.default_answer = answer(fake.default_answer)
        key = store.create("bench", "--budget", f"{budget}/day")
        with store.proxies(fake) as bases:
            statuses: list[int] = []
            start = threading.Barrier(n)

            def one() -> None:
                start.wait(60)
                with requests.post(bases[0] + "/v1/chat/completions", json=body, stream=True, timeout=120,
                                   headers={"Authorization": f"Bearer {key}"}) as r:
                    b"".join(r.iter_content(None))
                    statuses.append(r.status_code)
            threads = [threading.Thread(target=one) for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(180)
    print(f"{model}: {statuses.count(200)} of {n} streams admitted on --budget {budget:,}/day; the provider billed "
          f"{sum(spent):,} tokens ({sum(spent) / budget:.2f}x the budget)")


if __name__ == "__main__":
    asked = sys.argv[1:] or ["cost", "streams"]
    if "cost" in asked:
        cost()
    if "streams" in asked:
        streams()
