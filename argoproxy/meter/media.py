"""The parts of a request that are not text, found in whatever shape its door writes them, and what they count by
the rules of the model's family (families.py): images, audio and files (documents).

The parts each shape carries:
- chat (and what every door the proxy translates becomes): `image_url` (a URL or a data: URL, `detail`),
  `input_audio` (base64 `data`, `format`), `file` (`file_data` as a data: URL, or a `file_id`);
- Responses: `input_image` (`image_url`, `detail`, or a `file_id`), `input_file` (`file_data`, `file_url`,
  `file_id`), `input_audio`;
- Messages: `image` and `document` blocks (`source`: base64, url, text, content or a file), no audio;
- Google: `inline_data` / `inlineData` (a MIME type and base64 data), `file_data` / `fileData` (a URI);
- Interactions and MCP tool results: `image`, `audio`, `document`, `video` contents with base64 `data` and a
  `mime_type` / `mimeType` (or a `uri`), and MCP's embedded `resource` with a base64 `blob`;
- Ollama: `images`, a list of base64 images.

Every inline part is decoded and measured by its format's decoder (sizes.py), never by its header: an image by
its decoded extent, a PDF by the pages in its page tree, a sound by its samples or frames. A part that cannot be
decoded within the meter's bounds counts the most a provider could bill for it: an image its family's most for
one image, and never less than METER_IMAGE_TOKENS; a PDF the most pages its family's maker takes; a sound its
bytes at 6 kbit/s. A part by URL or file id, which the proxy does not fetch: an image its family's most, anything
else that many pages. A sound counts 32 tokens a second; a PDF each page as its text and an image of it, every
page its tree holds (a maker that takes fewer refuses the request, and bills nothing); any other inline file as
its text.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from argoproxy.meter import sizes
from argoproxy.meter.families import AUDIO_BYTES_PER_SECOND, AUDIO_TOKENS_PER_SECOND, Family, family_of
from argoproxy.meter.tokens import count_text

MOST = 2**40


MOST_DECODING_SECONDS = 0.5  # CPU a request's parts are decoded for, in all; past it the rest count at most


@dataclass
class Media:
    """What a request's parts that are not text count: tokens, and how many of each kind (for the 429's words)."""
    tokens: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    until: float = field(default_factory=lambda: time.thread_time() + MOST_DECODING_SECONDS)

    def in_time(self) -> bool:
        """Whether the request's parts may still be decoded (past its time, each counts at most)."""
        return time.thread_time() < self.until

    def add(self, kind: str, tokens: int) -> None:
        self.tokens = min(self.tokens + tokens, MOST)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def described(self) -> str:
        """"3 images, 1 document" (empty: none)."""
        return ", ".join(f"{n:,} {kind}{'s' if n > 1 else ''}" for kind, n in self.kinds.items())


def media_tokens(body: Any, model: str | None) -> int:
    """What a request's parts that are not text count for `model` (a provider's own usage count of what it sent:
    ARGO's, whose images the proxy inlined, their sizes read)."""
    return media_of(body, family_of(model)).tokens


def media_of(body: Any, family: Family) -> Media:
    """Every part of `body` that is not text, counted by `family`'s rules (a walk over the parsed body, whose size
    the edge bounds)."""
    found = Media()
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if not _part(value, family, found, stack):
                stack.extend(v for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, (dict, list)))
    return found


def _part(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    """Count `d` when it is a part the meter knows (True: its members are not walked further)."""
    kind = d.get("type")
    typed = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if typed is not None and typed(d, family, found, stack):
        return True
    return _mime_data(d, family, found) or ("images" in d and _base64_images(d, family, found, stack))


def _chat_image(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    image = d.get("image_url")
    url = image if isinstance(image, str) else image.get("url") if isinstance(image, dict) else None
    detail = image.get("detail") if isinstance(image, dict) else None
    found.add("image", _image_url(url, detail, family, found))
    return True


def _input_image(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    found.add("image", _image_url(d.get("image_url"), d.get("detail"), family, found))
    return True


def _chat_audio(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    audio = d.get("input_audio")
    if isinstance(audio, dict):
        found.add("audio part", _audio(audio.get("data"), audio.get("format"), found))
    return True


def _chat_file(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    if not isinstance(d.get("file"), dict):
        return False
    _file(d["file"].get("file_data"), None, family, found)
    return True


def _input_file(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    _file(d.get("file_data"), None, family, found)
    return True


def _sourced_block(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    """A Messages image or document block (one without a source object is walked as any other)."""
    if not isinstance(d.get("source"), dict):
        return False
    _source(d["type"], d["source"], family, found, stack)
    return True


def _typed_data(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    """Interactions' and MCP's `image`, `audio`, `document` and `video` contents: base64 `data` of a MIME type, or
    a `uri` (not fetched)."""
    mime = d.get("mime_type", d.get("mimeType"))
    mime = mime if isinstance(mime, str) and mime else _TYPE_MIMES[d["type"]]
    if isinstance(d.get("data"), str):
        _inline(mime, d["data"], family, found)
        return True
    if isinstance(d.get("uri"), str):
        _unfetched(mime, family, found)
        return True
    return False


def _resource(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    """An MCP embedded resource: its base64 `blob` of a MIME type (a `text` resource is walked as text)."""
    resource = d.get("resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("blob"), str):
        return False
    mime = resource.get("mimeType", resource.get("mime_type"))
    _inline(mime if isinstance(mime, str) else "", resource["blob"], family, found)
    return True


def _block(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    """An `image` or `document`: a Messages block with a source, or an Interactions or MCP content."""
    return _sourced_block(d, family, found, stack) or _typed_data(d, family, found, stack)


# What an Interactions or MCP content of each type is when it names no MIME type.
_TYPE_MIMES = {"image": "image/", "audio": "audio/", "document": "application/pdf", "video": "video/"}
# The parts a `type` names, in the shapes of chat, Responses, Messages, Interactions and MCP: one look-up for any
# other object walked.
_BY_TYPE = {"image_url": _chat_image, "input_image": _input_image, "input_audio": _chat_audio, "file": _chat_file,
            "input_file": _input_file, "image": _block, "document": _block, "audio": _typed_data,
            "video": _typed_data, "resource": _resource}


def _mime_data(d: dict[str, Any], family: Family, found: Media) -> bool:
    """Google's inline_data (base64 of a MIME type) or file_data (a URI), in either spelling."""
    inline = d.get("inline_data", d.get("inlineData"))
    if isinstance(inline, dict):
        mime = inline.get("mime_type", inline.get("mimeType"))
        _inline(mime if isinstance(mime, str) else "", inline.get("data"), family, found)
        return True
    linked = d.get("file_data", d.get("fileData"))
    if isinstance(linked, dict):
        mime = linked.get("mime_type", linked.get("mimeType"))
        _unfetched(mime if isinstance(mime, str) else "", family, found)
        return True
    return False


def _base64_images(d: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> bool:
    """Ollama's `images`, a list of base64 images beside a message's other members (which are walked)."""
    images = d.get("images")
    if not (isinstance(images, list) and images and all(isinstance(i, str) for i in images)):
        return False
    for image in images:
        found.add("image", _inline_image(image, None, family, found))
    rest = [v for k, v in d.items() if k != "images" and isinstance(v, (dict, list))]
    stack.extend(rest)
    return True


def _image_url(url: Any, detail: Any, family: Family, found: Media) -> int:
    """An image by URL (its family's most: the proxy does not fetch it) or inline (its decoded size)."""
    detail = detail if isinstance(detail, str) else None
    inline = sizes.data_url(url) if isinstance(url, str) else None
    if inline is None:
        return family.image.tokens(None, detail)
    return _inline_image(inline[1], detail, family, found)


def _inline_image(data: str, detail: str | None, family: Family, found: Media) -> int:
    """A base64 image by its decoded extent (one the meter cannot decode: the most, never below the floor)."""
    size = sizes.image_size(sizes.decoded(data)) if found.in_time() else None
    return family.undecoded_image() if size is None else family.image.tokens(size, detail)


def _audio(data: Any, form: Any, found: Media) -> int:
    """A base64 sound: its decoded duration, or (a format not decoded) its bytes at the lowest bitrate."""
    if not isinstance(data, str):
        return 0
    raw = sizes.decoded(data) if found.in_time() else b""
    seconds = sizes.audio_seconds(raw, form.lower() if isinstance(form, str) else "") if raw else None
    if seconds is None:
        seconds = sizes.decoded_size(data) / AUDIO_BYTES_PER_SECOND
    return math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)


def _file(data: Any, mime: str | None, family: Family, found: Media) -> None:
    """A file part: inline (a data: URL) or not (a file id, a URL: a document of unknown pages)."""
    inline = sizes.data_url(data) if isinstance(data, str) else None
    if inline is None:
        found.add("document", family.most_pages * family.page())
        return
    _inline(inline[0], inline[1], family, found)


def _inline(mime: str, data: Any, family: Family, found: Media) -> None:
    """Base64 data of a MIME type: an image, a sound, a PDF or text."""
    if not isinstance(data, str):
        return
    mime = mime.lower()
    if mime.startswith("image/"):
        found.add("image", _inline_image(data, None, family, found))
    elif mime.startswith("audio/"):
        found.add("audio part", _audio(data, mime, found))
    else:
        _document(mime, sizes.decoded(data), sizes.decoded_size(data), family, found)


def _document(mime: str, raw: bytes, size: int, family: Family, found: Media) -> None:
    """A PDF (by its type, or by its bytes whatever its type says) by its pages; a zip archive (a DOCX, XLSX,
    PPTX) a token a byte its entries decompress to; anything else as its text, a token a byte where it is not
    UTF-8 or not decoded (`size`: its decoded bytes)."""
    if mime in ("application/pdf", "") or b"%PDF" in raw[:1024]:  # a reader finds the header in the first KB
        pages = sizes.pdf_pages(raw) if found.in_time() else None
        found.add("document", (pages or family.most_pages) * family.page())
        return
    unzipped = sizes.unzipped_bytes(raw, found.in_time()) if raw else None
    if unzipped is not None:  # a zipped document's text is extracted: a token a decompressed byte, at least
        found.add("file", max(unzipped, size))
        return
    try:
        found.add("file", count_text(raw.decode("utf-8")) if raw else size)
    except UnicodeDecodeError:
        found.add("file", len(raw))


def _unfetched(mime: str, family: Family, found: Media) -> None:
    """A part by URI the proxy does not read: an image at its family's most, anything else as a document of the
    most pages."""
    if mime.startswith("image/"):
        found.add("image", family.image.most)
    else:
        found.add("document", family.most_pages * family.page())


def _source(kind: str, source: dict[str, Any], family: Family, found: Media, stack: list[Any]) -> None:
    """A Messages image or document block's source."""
    form = source.get("type")
    media = source.get("media_type")
    media = media if isinstance(media, str) else ""
    if form == "base64":
        _inline(media or ("image/" if kind == "image" else "application/pdf"), source.get("data"), family, found)
    elif form == "text":  # a document's text (its source carries no `text` member the text count reads)
        data = source.get("data")
        found.add("document", count_text(data) if isinstance(data, str) else 0)
    elif form == "content":
        stack.append(source.get("content"))  # its text blocks were counted as text; its images are walked
    else:  # url, file: not fetched
        _unfetched("image/" if kind == "image" else "", family, found)
