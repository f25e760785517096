"""The meter counts what is decoded, never a header's word (argoproxy/meter/sizes.py and its decoders): files whose
headers understate their content in every way their formats allow (tests/understated_media.py) reserve at least
what the provider's rule bills for the content a decoder finds, on every door and part type that carries them;
what cannot be decoded within the bounds counts the most; a request without media loads no decoder."""

from __future__ import annotations

import base64
import math
import subprocess
import sys
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from argoproxy.fronts.google.request import request_to_chat as google_to_chat
from argoproxy.fronts.interactions.request import request_to_chat as interactions_to_chat
from argoproxy.fronts.messages.request import request_to_chat as messages_to_chat
from argoproxy.fronts.ollama.request import chat_request as ollama_to_chat
from argoproxy.fronts.responses.request import request_to_chat as responses_to_chat
from argoproxy.meter import media, pictures, sizes, sounds, zips
from argoproxy.meter.deadline import OutOfTime, cpu_bounded
from argoproxy.meter.families import AUDIO_TOKENS_PER_SECOND, MOST_PAGES, family_of
from argoproxy.meter.media import media_of
from argoproxy.meter.worst import worst_case
from argoproxy.pipeline.door_api import DoorArgs
from tests import understated_media as files

PROPERTY = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def counted(body: dict, model: str) -> int:
    return media_of(body, family_of(model)).tokens


def chat_with(part: dict, model: str = "claude-sonnet-4") -> dict:
    return {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": [part]}]}


def image_part(data: bytes, mime: str = "image/gif") -> dict:
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64(data)}"}}


def file_part(data: bytes) -> dict:
    return {"type": "file", "file": {"file_data": "data:application/pdf;base64," + b64(data), "filename": "a.pdf"}}


def audio_part(data: bytes, form: str) -> dict:
    return {"type": "input_audio", "input_audio": {"data": b64(data), "format": form}}


def page_bill(model: str, pages: int) -> int:
    return pages * family_of(model).page()


# ---------------------------------------------------------------- what the attacker found
def test_a_pdf_whose_names_are_escaped_counts_its_hundred_pages():
    data = files.pdf(100, count=1, unused=1)
    assert sizes.pdf_pages(data) == 100
    assert counted(chat_with(file_part(data)), "claude-sonnet-4") == page_bill("claude-sonnet-4", 100) == 460_000


def test_a_wav_whose_byte_rate_lies_counts_its_minute():
    data = files.wav(60, said_rate=2**31, said_size=2)
    assert counted(chat_with(audio_part(data, "wav")), "gpt-4o-audio-preview") == 60 * AUDIO_TOKENS_PER_SECOND


def test_a_gif_whose_screen_is_one_pixel_counts_its_frame():
    data = files.gif((1, 1), (2048, 2048))
    assert sizes.image_size(data) == (2048, 2048)
    for model, billed in (("claude-sonnet-4", 1600), ("gemini-2.5-pro", 2322), ("gpt-4o-mini", 25501)):
        assert counted(chat_with(image_part(data), model), model) == billed


def test_later_frames_past_the_screen_count_too():
    data = files.gif((16, 16), (16, 16), count=2)
    assert sizes.image_size(data) == (16, 16)
    grown = bytearray(files.gif((16, 16), (16, 16), count=1))  # one frame, then a second drawn at 1000,700
    tail = files.gif((16, 16), (16, 16), count=1)
    descriptor = tail.index(b"\x2c", 13)
    second = bytearray(tail[descriptor:-1])
    second[1:5] = (1000).to_bytes(2, "little") + (700).to_bytes(2, "little")
    assert sizes.image_size(bytes(grown[:-1] + second + b";")) == (1016, 716)


# ---------------------------------------------------------------- the property
@PROPERTY
@given(pages=st.integers(1, 60), count=st.integers(0, 3), unused=st.integers(0, 5), escape=st.booleans(),
       model=st.sampled_from(["claude-sonnet-4", "gpt-4o", "gemini-2.5-flash", "my-local-model"]))
def test_a_pdf_reserves_at_least_its_pages(pages, count, unused, escape, model):
    data = files.pdf(pages, count=count, unused=unused, escape=escape)
    assert counted(chat_with(file_part(data), model), model) >= page_bill(model, pages)


@PROPERTY
@given(seconds=st.integers(1, 40), rate=st.sampled_from([8000, 16000, 44100]),
       said_rate=st.one_of(st.none(), st.integers(1, 2**32 - 1)),
       said_size=st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_a_wav_reserves_at_least_its_samples(seconds, rate, said_rate, said_size):
    data = files.wav(seconds, rate, said_rate, said_size)
    assert counted(chat_with(audio_part(data, "wav")), "gpt-4o-audio-preview") >= seconds * AUDIO_TOKENS_PER_SECOND


@PROPERTY
@given(frames=st.integers(0, 400), said_frames=st.integers(0, 2**32 - 1), said_ms=st.integers(0, 10**9),
       junk=st.binary(max_size=64), form=st.sampled_from(["mp3", "audio/mpeg", "audio/mp3"]))
def test_an_mp3_reserves_at_least_its_frames(frames, said_frames, said_ms, junk, form):
    data = files.mp3(frames, said_frames, said_ms, junk)
    billed = math.ceil(Fraction(frames + 1) * 1152 / 44100 * AUDIO_TOKENS_PER_SECOND)
    part = audio_part(data, form) if form == "mp3" else {"inline_data": {"mime_type": form, "data": b64(data)}}
    assert counted(chat_with(part, "gemini-2.5-flash"), "gemini-2.5-flash") >= billed


SCREENS = st.tuples(st.integers(1, 64), st.integers(1, 64))
FRAMES = st.tuples(st.integers(65, 400), st.integers(65, 400))
MODELS = st.sampled_from(["claude-sonnet-4", "gpt-4o", "gpt-4o-mini", "gemini-2.5-flash", "qwen2.5-vl"])


@PROPERTY
@given(kind=st.sampled_from(["gif", "apng", "webp"]), screen=SCREENS, frame=FRAMES, count=st.integers(1, 3),
       model=MODELS)
def test_an_animation_reserves_at_least_its_largest_frame(kind, screen, frame, count, model):
    """(A PNG or WebP of one frame is a still image: its header is its decoded size, so two frames at least.)"""
    data = getattr(files, kind)(screen, frame, count if kind == "gif" else count + 1)
    billed = family_of(model).image.tokens(frame, None)
    assert counted(chat_with(image_part(data, f"image/{kind.replace('apng', 'png')}"), model), model) >= billed


# ---------------------------------------------------------------- every door and part type
PDF = files.pdf(100)
PDF_B64 = b64(PDF)
GIF_B64 = b64(files.gif((1, 1), (1024, 1024)))  # gpt-4o: 765
PAGES = page_bill("gpt-4o", 100)


@pytest.mark.parametrize("body", [
    chat_with(file_part(PDF), "gpt-4o"),  # chat `file`
    chat_with({"type": "file", "file": {"file_data": "data:application/octet-stream;base64, \n" + PDF_B64}}),
    chat_with({"type": "file", "file": {"file_data": "data:text/plain;base64," + b64(b"\n" * 100 + PDF)}}),
    {"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "data:application/pdf;base64,"
                                             + PDF_B64}]}]},  # Responses `input_file`
    {"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": PDF_B64}}]}]},  # Messages, relayed
    {"contents": [{"parts": [{"inline_data": {"mime_type": "application/pdf", "data": PDF_B64}}]}]},  # Google REST
    {"contents": [{"parts": [{"inlineData": {"mimeType": "application/pdf", "data": PDF_B64}}]}]},  # Google SDKs
    {"input": [{"type": "document", "data": PDF_B64, "mime_type": "application/pdf"}]},  # Interactions content
    {"content": [{"type": "resource", "resource": {"uri": "file:///a.pdf", "mimeType": "application/pdf",
                                                   "blob": PDF_B64}}]},  # an MCP tool result's resource
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}}]}]}]},
])
def test_every_door_counts_the_pdf_decoded(body):
    assert counted(body, "gpt-4o") == PAGES


@pytest.mark.parametrize("body", [
    chat_with(image_part(files.gif((1, 1), (1024, 1024))), "gpt-4o"),  # chat `image_url`
    {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/gif;base64,"
                                             + GIF_B64}]}]},  # Responses `input_image`
    {"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/gif", "data": GIF_B64}}]}]},  # Messages `image`
    {"contents": [{"parts": [{"inline_data": {"mime_type": "image/gif", "data": GIF_B64}}]}]},  # Google
    {"input": [{"type": "image", "data": GIF_B64, "mime_type": "image/gif"}]},  # Interactions
    {"content": [{"type": "image", "data": GIF_B64, "mimeType": "image/gif"}]},  # an MCP tool result
    {"messages": [{"role": "user", "content": "see", "images": [GIF_B64]}]},  # Ollama
])
def test_every_door_counts_the_image_decoded(body):
    assert counted(body, "gpt-4o") == 765


@pytest.mark.parametrize("body", [
    chat_with(audio_part(files.wav(10, said_rate=2**31), "wav")),  # chat `input_audio`
    {"input": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {
        "data": b64(files.wav(10, said_rate=2**31)), "format": "wav"}}]}]},  # Responses `input_audio`
    {"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav",
                                             "data": b64(files.wav(10, said_rate=2**31))}}]}]},  # Google
    {"content": [{"type": "audio", "data": b64(files.wav(10, said_rate=2**31)), "mimeType": "audio/wav"}]},  # MCP
])
def test_every_door_counts_the_sound_decoded(body):
    assert counted(body, "gemini-2.5-flash") == 10 * AUDIO_TOKENS_PER_SECOND


def test_what_each_door_translates_to_reaches_the_decoded_count():
    """The chat request each translating door makes of its own parts (what the meter reads for it)."""
    messages = messages_to_chat({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": GIF_B64}}]}]})
    responses = responses_to_chat({"model": "gpt-4o", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_data": "data:application/pdf;base64," + PDF_B64, "filename": "a.pdf"},
        {"type": "input_image", "image_url": "data:image/gif;base64," + GIF_B64}]}]})
    google = google_to_chat({"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "application/pdf", "data": PDF_B64}},
        {"inlineData": {"mimeType": "image/gif", "data": GIF_B64}}]}]}, DoorArgs(model="gpt-4o"))
    # tool results carrying media: a Messages tool_result, a Responses function_call_output
    tool_result = messages_to_chat({"model": "gpt-4o", "max_tokens": 10, "messages": [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": GIF_B64}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}}]}]}]})
    tool_output = responses_to_chat({"model": "gpt-4o", "input": [
        {"type": "function_call", "call_id": "c1", "name": "read", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_image", "image_url": "data:image/gif;base64," + GIF_B64},
            {"type": "input_file", "file_data": "data:application/pdf;base64," + PDF_B64, "filename": "a.pdf"}]}]})
    for body in (messages, responses, google, tool_result, tool_output):
        assert worst_case("chat", body).media_tokens == PAGES + 765
    interactions, _ = interactions_to_chat({"model": "gpt-4o", "input": [
        {"type": "image", "data": GIF_B64, "mime_type": "image/gif"}]})
    ollama = ollama_to_chat({"model": "gpt-4o", "messages": [{"role": "user", "content": "see",
                                                                "images": [GIF_B64]}]})
    for body in (interactions, ollama):
        assert worst_case("chat", body).media_tokens == 765


# ---------------------------------------------------------------- bounds
def test_what_cannot_be_decoded_counts_the_most_and_never_below_the_setting():
    broken = chat_with(image_part(b"GIF89a" + b"\x00" * 40, "image/png"), "gpt-4o")
    assert media_of(broken, family_of("gpt-4o")).tokens == 4096  # its family's most is 1,445
    assert media_of(broken, family_of("gpt-4o", 500)).tokens == 1445
    assert media_of(broken, family_of("gpt-4o-mini", 500)).tokens == 48169
    deep = b"%PDF-1.7\n" + b"garbage" * 100
    assert counted(chat_with(file_part(deep), "gpt-4o"), "gpt-4o") == page_bill("gpt-4o", MOST_PAGES)


def test_a_decompression_bomb_is_refused_unread():
    screen = files.gif((1, 1), (64, 64))  # a frame's descriptor made to cover 60000x60000
    at = screen.index(b"\x2c", 13)
    bomb = screen[:at + 5] + (60000).to_bytes(2, "little") * 2 + screen[at + 9:]
    started = time.process_time()
    assert sizes.image_size(bomb) is None
    assert counted(chat_with(image_part(bomb), "claude-sonnet-4"), "claude-sonnet-4") == 4096
    assert time.process_time() - started < 1.0  # nothing decoded: a decoded canvas would be 14 GB


def test_an_animation_past_its_bounds_is_not_walked(monkeypatch):
    data = files.gif((8, 8), (8, 8), count=4)
    assert sizes.image_size(data) == (8, 8)
    monkeypatch.setattr(pictures, "MOST_FRAMES", 3)
    assert sizes.image_size(data) is None


def test_the_mp3_walk_is_bounded_and_counts_every_unframed_byte(monkeypatch):
    noise = b"\xff\xff" * 5000  # a sync every byte, no frame: all of it at the lowest bitrate
    assert sounds.mp3_seconds(noise) == len(noise) / sounds.LOWEST_BYTES_PER_SECOND
    monkeypatch.setattr(sounds, "MOST_STEPS", 10)
    assert sounds.mp3_seconds(files.mp3(100)) == len(files.mp3(100)) / sounds.LOWEST_BYTES_PER_SECOND


def test_a_request_without_media_loads_no_decoder():
    code = ("import sys; from argoproxy.meter.worst import worst_case; "
            "worst_case('chat', {'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': [{'type': 'text', "
            "'text': 'hi'}, {'type': 'image_url', 'image_url': {'url': 'https://example.com/a.png'}}]}]}); "
            "print(sorted(m for m in ('PIL', 'pypdf', 'wave') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_a_pdf_of_a_million_objects_is_not_read():
    assert sizes.pdf_pages(files.xref_stream(100)) == 1
    started = time.process_time()
    assert sizes.pdf_pages(files.xref_stream(1_000_000)) is None  # 5 MB of entries from 5 KB: pypdf took 0.6 s
    assert time.process_time() - started < 0.5


def test_a_decoder_stops_when_its_time_is_spent():
    started = time.process_time()
    with pytest.raises(OutOfTime):
        with cpu_bounded(0.05):
            while time.process_time() - started < 5:  # no read: only the watchdog stops it (5 s: it did not)
                pass
    assert time.process_time() - started < 1.0
    for _ in range(200):  # a block that ends in time leaves nothing pending behind it
        with cpu_bounded(10.0):
            pass
    assert sum(range(100_000)) == 4999950000


def test_a_request_decodes_for_a_bounded_time_then_counts_the_most(monkeypatch):
    monkeypatch.setattr(media, "MOST_DECODING_SECONDS", 0.0)
    body = chat_with(file_part(files.pdf(3)), "gpt-4o")
    body["messages"][0]["content"].append(image_part(files.gif((1, 1), (64, 64))))
    assert counted(body, "gpt-4o") == page_bill("gpt-4o", MOST_PAGES) + 4096


@pytest.mark.parametrize("header,length,seconds", [
    (b"\xff\xfb\x90\x00", 417, 1152 / 44100),  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
    (b"\xff\xfb\x92\x00", 418, 1152 / 44100),  # the same, padded
    (b"\xff\xf3\x80\x00", 208, 576 / 22050),  # MPEG-2 layer III, 64 kbit/s, 22.05 kHz
    (b"\xff\xe3\x18\x00", 72, 576 / 8000),  # MPEG-2.5 layer III, 8 kbit/s, 8 kHz: the smallest rate
    (b"\xff\xfd\x10\x00", 104, 1152 / 44100),  # MPEG-1 layer II, 32 kbit/s, 44.1 kHz
    (b"\xff\xff\x10\x00", 32, 384 / 44100),  # MPEG-1 layer I, 32 kbit/s, 44.1 kHz
])
def test_each_mpeg_frame_counts_its_samples(header, length, seconds):
    frames = (header + b"\x00" * (length - 4)) * 50
    assert sounds.mp3_seconds(frames) == pytest.approx(50 * seconds, rel=1e-12)
    # a frame of MPEG-2.5 other than layer III, a free-format bitrate: no frame, its bytes at the lowest bitrate
    for noise in (b"\xff\xe5\x18\x00" + b"\x00" * 100, b"\xff\xfb\x00\x00" + b"\x00" * 100):
        assert sounds.mp3_seconds(noise) == len(noise) / sounds.LOWEST_BYTES_PER_SECOND


def test_a_page_tree_of_missing_objects_is_read_for_a_bounded_cpu_time():
    hostile = files.missing_pages(200, 8_000_000)  # pypdf copies and searches 8 MB for each page: 3.5 s of CPU
    started = time.process_time()
    assert sizes.pdf_pages(hostile) is None  # stopped by the watchdog, not by a read (it reads nothing)
    assert time.process_time() - started < 1.0
    assert sizes.pdf_pages(files.missing_pages(0, 8_000_000)) is None and sizes.pdf_pages(files.pdf(3)) == 3


def test_a_request_of_many_hostile_parts_decodes_for_its_bound_in_all():
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64," + b64(files.missing_pages(
        200, 8_000_000)), "filename": "a.pdf"}}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": [part] * 6}]}
    started = time.process_time()
    assert counted(body, "gpt-4o") == 6 * page_bill("gpt-4o", MOST_PAGES)
    assert time.process_time() - started < 1.5  # 0.5 s in all, and the part that passed it (one took 3.7 s)


def test_a_wav_of_a_million_chunks_is_read_for_a_bounded_time():
    data = files.wav_of_chunks(2_000_000)  # `wave` skips each in Python: 1.7 s
    started = time.process_time()
    assert sizes.audio_seconds(data, "wav") is None
    assert time.process_time() - started < 1.0
    assert counted(chat_with(audio_part(data, "wav")), "gpt-4o-audio-preview") >= (
        len(data) / sounds.LOWEST_BYTES_PER_SECOND * AUDIO_TOKENS_PER_SECOND)


def test_an_mp3_hiding_a_chain_in_its_frames_payload_counts_the_hidden_one():
    outer = [files.LOUD_32K, files.LOUD_48K] * 100  # headers that disagree: no decoder locks on them
    data = files.interleaved_mp3(outer, files.QUIET, 52)
    hidden = files.chain_seconds(data, [files.QUIET] * (len(data) // 72), 52)
    assert hidden > 239 and files.chain_seconds(data, outer) == pytest.approx(6.0)  # the review's: 5.78 counted
    assert sounds.mp3_seconds(data) >= hidden


HEADERS = st.sampled_from([files.LOUD_32K, files.LOUD_48K, files.QUIET, (b"\xff\xfb\x90\x00", 417, 1152 / 44100),
                           (b"\xff\xf3\x80\x00", 208, 576 / 22050), (b"\xff\xfd\x10\x00", 104, 1152 / 44100)])


@PROPERTY
@given(outer=st.lists(HEADERS, min_size=1, max_size=30), inner=HEADERS, at=st.integers(0, 2000))
def test_interleaved_chains_never_count_below_the_longest(outer, inner, at):
    data = files.interleaved_mp3(outer, inner, at)
    longest = max(files.chain_seconds(data, outer), files.chain_seconds(data, [inner] * (len(data) // inner[1]), at))
    assert sounds.mp3_seconds(data) >= longest - 1e-9


def test_a_zipped_document_counts_its_decompressed_text():
    text = b"<w:p><w:r><w:t>the same sentence again and again</w:t></w:r></w:p>" * 30_000  # 2 MB, 7 KB zipped
    for data in (files.docx(text), files.docx(text, said_size=100)):  # what its headers say is not believed
        part = {"type": "file", "file": {"file_data": "data:application/vnd.openxmlformats-officedocument."
                                         "wordprocessingml.document;base64," + b64(data), "filename": "a.docx"}}
        assert len(data) < 20_000 and counted(chat_with(part, "gpt-4o"), "gpt-4o") >= len(text)
    assert counted({"inline_data": {"mime_type": "application/zip", "data": b64(files.docx(b"x" * 10))}},
                   "gemini-2.5-flash") >= len(files.docx(b"x" * 10))


def test_a_zip_bomb_counts_its_bound_undecompressed(monkeypatch):
    monkeypatch.setattr(zips, "MOST_BYTES", 1024 * 1024)
    bomb = files.docx(b"\x00" * 20_000_000)  # 20 MB in 20 KB
    assert sizes.unzipped_bytes(bomb) == zips.MOST_BYTES  # decompressed to the bound, and no further
    assert sizes.unzipped_bytes(files.docx(b"x" * 1000)) == 1000 + len(b"<Types/>")
    assert sizes.unzipped_bytes(b"PK\x05\x06" + b"\x00" * 18) == 0 and sizes.unzipped_bytes(b"plain") is None
    assert sizes.unzipped_bytes(files.docx(b"x" * 10), in_time=False) == zips.MOST_BYTES
    broken = bytearray(files.docx(b"x" * 1000))
    at = broken.index(b"word/document.xml") + 17
    broken[at:at + 4] = b"\xff" * 4  # its deflated data made unreadable
    assert sizes.unzipped_bytes(bytes(broken)) == zips.MOST_BYTES
