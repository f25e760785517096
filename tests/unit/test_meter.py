"""The meter's rules for what is not text (argoproxy/meter/): images by the upstream model's family (each maker's
published rule, its own examples where it gives them), audio by duration, documents by pages, the parts each
door writes, and the worst case that holds them. Images are real files made by Pillow, measured as Pillow decodes
them (test_meter_decoded.py: files whose headers understate their content)."""

from __future__ import annotations

import base64
import io
import struct

import pytest
from PIL import Image

from argoproxy.meter import sizes
from argoproxy.meter.families import (AUDIO_TOKENS_PER_SECOND, MOST_PAGES, PAGE_TEXT_TOKENS, family_of)
from argoproxy.meter.media import media_of
from argoproxy.meter.used import used
from argoproxy.meter.worst import Asked, Spelled, worst_case


def image(width: int, height: int, fmt: str = "PNG", **options) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, fmt, **options)
    return base64.b64encode(out.getvalue()).decode()


def data_url(width: int, height: int, fmt: str = "PNG") -> str:
    return f"data:image/{fmt.lower()};base64,{image(width, height, fmt)}"


def pdf(pages: int) -> str:
    out = io.BytesIO()
    page = Image.new("RGB", (100, 100))
    page.save(out, "PDF", save_all=True, append_images=[page] * (pages - 1))
    return base64.b64encode(out.getvalue()).decode()


def wav(seconds: float, rate: int = 16000) -> str:
    samples = b"\x00\x00" * int(rate * seconds)
    head = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(samples))
    return base64.b64encode(head + samples).decode()


def chat(*parts: dict, model: str = "gpt-4o") -> dict:
    return {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, *parts]}]}


def image_part(url: str, detail: str | None = None) -> dict:
    return {"type": "image_url", "image_url": {"url": url, **({"detail": detail} if detail else {})}}


def counted(body: dict, model: str = "gpt-4o") -> int:
    return media_of(body, family_of(model)).tokens


# ---------------------------------------------------------------- sizes as decoded
@pytest.mark.parametrize("fmt,options", [("PNG", {}), ("JPEG", {}), ("GIF", {}), ("WEBP", {}),
                                         ("WEBP", {"lossless": True}),
                                         ("JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 30000})])
def test_an_image_size_is_its_decoded_size(fmt, options):
    assert sizes.image_size(sizes.decoded(image(1234, 567, fmt, **options))) == (1234, 567)


def test_what_cannot_be_decoded_is_no_size():
    assert sizes.image_size(b"not an image") is None
    assert sizes.image_size(sizes.decoded("%%% not base64")) is None
    assert sizes.image_size(sizes.decoded(image(64, 64, "BMP"))) is None  # a format the makers do not take
    # a page tree's /Count alone is not pages: no tree pypdf can walk, no pages known (counted at the most)
    assert sizes.pdf_pages(b"%PDF-1.7 << /Type /Pages /Count 12345678 >>") is None
    assert sizes.pdf_pages(b"%PDF-1.7 compressed objects only") is None


def test_pages_and_durations_are_read_from_the_bytes():
    assert sizes.pdf_pages(base64.b64decode(pdf(3))) == 3
    assert sizes.audio_seconds(base64.b64decode(wav(2.5)), "wav") == pytest.approx(2.5, abs=0.001)


# ---------------------------------------------------------------- images, by family
@pytest.mark.parametrize("model,size,detail,tokens", [
    # OpenAI's own examples: 1024x1024 high is 765; 2048x4096 high is 1105; low is 85
    ("gpt-4o", (1024, 1024), "high", 765),
    ("gpt-4o", (2048, 4096), "high", 1105),
    ("gpt-4o", (2048, 4096), "low", 85),
    ("gpt-4.1", (1024, 1024), "auto", 765),
    ("gpt-4o-mini", (1024, 1024), "high", 2833 + 4 * 5667),
    ("gpt-4o-mini", (1024, 1024), "low", 2833),
    ("o1", (1024, 1024), None, 75 + 4 * 150),
    # the patch rule: 1024x1024 is 32x32 = 1024 patches, times the model's multiplier
    ("gpt-4.1-mini", (1024, 1024), None, 1659),
    ("gpt-4.1-mini", (4000, 4000), None, 2489),  # at most 1,536 patches
    # Anthropic's examples: 1000x1000 about 1,334 tokens, 1092x1092 about 1,590; larger ones scaled to about 1,600
    ("claude-sonnet-4", (1000, 1000), None, 1334),
    ("claude-sonnet-4", (1092, 1092), None, 1590),
    ("claude-sonnet-4", (4000, 3000), None, 1600),
    # Google: 258 within 384x384, else 258 a 768-px tile
    ("gemini-2.5-flash", (384, 384), None, 258),
    ("gemini-2.5-flash", (1000, 1000), None, 4 * 258),
    # open-weight vision models
    ("Qwen/Qwen2.5-VL-7B-Instruct", (280, 560), None, 10 * 20 + 2),
    ("llama-3.2-11b-vision", (1000, 1000), None, 4 * 1601),
    ("gemma-3-27b-it", (3000, 3000), None, 256),
    ("pixtral-12b", (1024, 512), None, 64 * 32 + 32),
])
def test_an_inline_image_counts_by_its_model_family_and_size(model, size, detail, tokens):
    assert counted(chat(image_part(data_url(*size), detail)), model) == tokens


@pytest.mark.parametrize("model,most", [("gpt-4o", 85 + 8 * 170), ("gpt-4o-mini", 2833 + 8 * 5667),
                                        ("claude-opus-4", 1600), ("gemini-2.0-flash", 16 * 258),
                                        ("qwen2-vl-72b", 16384 + 2), ("o4-mini", 2642)])
def test_an_image_by_url_counts_its_family_most(model, most):
    assert counted(chat(image_part("https://example.com/cat.png")), model) == most
    assert counted(chat(image_part("https://example.com/cat.png", "low")), model) <= most


def test_a_model_of_no_known_family_counts_the_setting():
    body = chat(image_part(data_url(64, 64)), image_part("https://example.com/x.png"), model="my-local-model")
    assert media_of(body, family_of("my-local-model", 777)).tokens == 2 * 777
    assert worst_case("chat", body, bounds=Known(777)).media_tokens == 2 * 777


class Known:
    """Bounds with a METER_IMAGE_TOKENS of its own."""

    def __init__(self, image_tokens: int) -> None:
        self.image_tokens = image_tokens

    def supplied_limit(self, model):
        return None

    def context(self, model):
        return None


# ---------------------------------------------------------------- audio and documents
def test_audio_counts_its_duration_or_the_bound_of_its_bytes():
    two_seconds = {"type": "input_audio", "input_audio": {"data": wav(2.0), "format": "wav"}}
    assert counted(chat(two_seconds, model="gpt-4o-audio-preview")) == 2 * AUDIO_TOKENS_PER_SECOND
    mp3 = base64.b64encode(b"\xff\xfb" + b"\x00" * 7498).decode()  # no frame: 7,500 bytes at 6 kbit/s are 10 s
    assert counted(chat({"type": "input_audio", "input_audio": {"data": mp3, "format": "mp3"}})) == \
        10 * AUDIO_TOKENS_PER_SECOND


def test_a_pdf_counts_each_page_as_text_and_an_image():
    family = family_of("claude-sonnet-4")
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64," + pdf(3), "filename": "a.pdf"}}
    assert counted(chat(part), "claude-sonnet-4") == 3 * (PAGE_TEXT_TOKENS + family.image.most)
    by_id = {"type": "file", "file": {"file_id": "file-abc"}}
    assert counted(chat(by_id), "claude-sonnet-4") == 600 * (PAGE_TEXT_TOKENS + family.image.most)  # Anthropic's most


# ---------------------------------------------------------------- every door's own parts
PNG = image(1024, 1024)


@pytest.mark.parametrize("body", [
    {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64," + PNG,
                                               "detail": "high"}]}]},  # Responses
    {"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": PNG}}]}]},  # Messages
    {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]}]},  # Google (REST)
    {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}]},  # Google (SDKs)
    {"messages": [{"role": "user", "content": "see", "images": [PNG]}]},  # Ollama's /api/chat
    {"prompt": "see", "images": [PNG]},  # Ollama's /api/generate
])
def test_each_door_own_image_parts_are_counted(body):
    assert counted(body) == 765


def test_each_door_own_documents_and_urls_are_counted():
    family = family_of("gpt-4o")
    page = PAGE_TEXT_TOKENS + family.image.most
    messages = {"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf(2)}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}
    assert counted(messages) == 2 * page + MOST_PAGES * page + family.image.most
    responses = {"input": [{"role": "user", "content": [
        {"type": "input_file", "file_data": "data:application/pdf;base64," + pdf(4)},
        {"type": "input_file", "file_url": "https://example.com/b.pdf"}]}]}
    assert counted(responses) == 4 * page + MOST_PAGES * page
    google = {"contents": [{"parts": [{"file_data": {"file_uri": "https://example.com/c.png", "mime_type": "image/png"}}]}]}
    assert counted(google) == family.image.most


# ---------------------------------------------------------------- the worst case holds them
def test_the_worst_case_adds_the_media_to_the_input_and_says_so():
    text_only = worst_case("chat", chat(model="gpt-4o"))
    with_images = worst_case("chat", chat(*[image_part("https://example.com/x.png")] * 100, model="gpt-4o"))
    assert with_images.input == text_only.input + 100 * 1445
    assert with_images.output == text_only.output == 10
    assert "144,500 of them for 100 images" in with_images.described()


def test_a_relayed_body_in_its_door_own_shape_counts_its_parts():
    messages = Spelled(limits=(("max_tokens",),))
    body = {"model": "claude-sonnet-4", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}] * 3}]}
    assert worst_case(messages, body).media_tokens == 3 * 1600


def test_a_request_is_read_once_however_many_ask():
    reads = []

    def read():
        reads.append(1)
        return "chat", chat(image_part("https://example.com/x.png"))
    asked = Asked(read)
    assert asked.read_worst is None  # nothing read until something needs it
    first = asked.worst()
    assert asked.worst() is first and asked.read_worst is first and len(reads) == 1
    prices = []
    assert asked.most_nanos(lambda w: prices.append(w) or 123) == 123
    assert asked.most_nanos(lambda w: 456) == 123 and prices == [first] and asked.read_nanos == 123


# ---------------------------------------------------------------- what an answer cost
@pytest.mark.parametrize("usage,tokens", [
    ({"prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230}, (1200, 30)),
    ({"prompt_tokens": 1200, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 1000}}, (1200, 30)),
    # Anthropic's input_tokens leave out what was read from or written to the cache: the meter counts them
    ({"input_tokens": 10, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200, "output_tokens": 5},
     (1210, 5)),
    ({"input_tokens": 70, "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4}}, (70, 9)),
])
def test_an_answer_usage_is_read_whatever_its_shape(usage, tokens):
    reading = used(usage)
    assert (reading.input, reading.output) == tokens
