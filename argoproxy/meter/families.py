"""What an image, a second of audio and a page of a document count in a model's input, by the family of the model
(its name), each rule from its maker's published one (docs/reservations.md has the table with its sources).
An image of a known size counts what its family's rule says for that size (rounded up where the rule scales it);
an image by a URL the proxy does not fetch counts its family's most for one image, and an inline one the meter
cannot decode that or METER_IMAGE_TOKENS, the larger. A model of no family here counts METER_IMAGE_TOKENS an
image.

Sources (read 2025):
- OpenAI, https://platform.openai.com/docs/guides/images-vision#calculating-costs: tiles (gpt-4o, gpt-4.1,
  gpt-4.5: 85 + 170 a 512-px tile, after the image is scaled to fit 2048x2048 and then its shortest side to 768;
  `detail: low` the base alone; gpt-4o-mini 2833 + 5667; o1, o1-pro, o3 75 + 150; gpt-5 70 + 140;
  computer-use-preview 65 + 129) or patches (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano:
  one token a 32x32 patch, at most 1,536 patches, times 1.62, 2.46, 1.72, 1.62, 2.46).
- Anthropic, https://docs.anthropic.com/en/docs/build-with-claude/vision#calculate-image-costs: width x height /
  750, an image whose long edge passes 1568 px or that would pass about 1,600 tokens scaled down first.
- Google, https://ai.google.dev/gemini-api/docs/image-understanding#technical-details-image: 258 tokens for an
  image of at most 384x384, else 258 a 768x768 tile; Vertex AI scales an image to fit 3072x3072 first
  (https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/image-understanding).
- Qwen2-VL and Qwen2.5-VL, https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct: one token a 28x28 area, 4 to
  16,384 of them (the processor's min_pixels and max_pixels), and 2 around the image.
- Llama 3.2 Vision, https://huggingface.co/meta-llama/Llama-3.2-11B-Vision-Instruct (its preprocessor: 560-px
  tiles, at most 4; (560/14)^2 + 1 = 1,601 tokens a tile).
- Gemma 3, https://ai.google.dev/gemma/docs/core: 256 tokens an image (SigLIP at 896x896).
- Pixtral, https://mistral.ai/news/pixtral-12b: 16x16 patches of an image fit within 1024x1024, one break token a
  row of patches.
- LLaVA-NeXT, https://llava-vl.github.io/blog/2024-01-30-llava-next/: at most 5 views of 576 tokens (2,880).
- Audio: Google counts 32 tokens a second (https://ai.google.dev/gemini-api/docs/audio#technical-details), the
  most any maker publishes; OpenAI publishes no rate for gpt-4o's audio input: every family is held to 32.
- Documents: Anthropic counts a PDF page's text (1,500 to 3,000 tokens) and an image of the page
  (https://docs.anthropic.com/en/docs/build-with-claude/pdf-support), as OpenAI's file inputs do
  (https://platform.openai.com/docs/guides/pdf-files). OpenAI takes at most 100 pages a request, Anthropic 600
  on its 1M-token models (100 on the others), Google 1,000: a document whose pages are not known counts its
  family's most (a family of no maker here: 1,000).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Protocol

AUDIO_TOKENS_PER_SECOND = 32  # Gemini's published rate, the highest published (the bound for every family)
AUDIO_BYTES_PER_SECOND = 750  # a sound's bytes no decoder here plays: 6 kbit/s, the lowest bitrate the makers' codecs
# reach (Opus; MP3's is 8 kbit/s)
PAGE_TEXT_TOKENS = 3000  # a PDF page's text at most (Anthropic's 1,500-3,000)
MOST_PAGES = 100  # a document whose pages are not known: the most OpenAI takes in a request (others: Family)
DEFAULT_IMAGE_TOKENS = 4096  # METER_IMAGE_TOKENS's default


class ImageRule(Protocol):
    @property
    def most(self) -> int:
        """What an image of unknown size counts."""

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int: ...


def _fit(width: int, height: int, longest: int) -> tuple[float, float]:
    """The size scaled down (never up) so that neither side passes `longest`."""
    scale = min(1.0, longest / max(width, height))
    return width * scale, height * scale


@dataclass(frozen=True)
class Tiles:
    """OpenAI's tile rule: fit 2048x2048, shortest side to 768, `base` + `tile` a 512-px tile; `low`: base."""
    base: int
    tile: int

    @property
    def most(self) -> int:
        return self.base + 8 * self.tile  # 768x2048 after scaling: 2 x 4 tiles, the most any image makes

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if detail == "low":
            return self.base
        if size is None:
            return self.most
        width, height = _fit(*size, 2048)
        short = min(width, height)
        if short > 768:
            width, height = width * 768 / short, height * 768 / short
        return self.base + self.tile * math.ceil(width / 512) * math.ceil(height / 512)


@dataclass(frozen=True)
class Patches:
    """One token a `side`-px patch, at most `cap` patches, times `times`, plus `extra` (OpenAI's mini models,
    Qwen-VL)."""
    side: int
    cap: int
    times: float = 1.0
    extra: int = 0

    @property
    def most(self) -> int:
        return math.ceil(self.cap * self.times) + self.extra

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if size is None:
            return self.most
        patches = min(math.ceil(size[0] / self.side) * math.ceil(size[1] / self.side), self.cap)
        return math.ceil(max(patches, 1) * self.times) + self.extra


@dataclass(frozen=True)
class Area:
    """Anthropic's: width x height / `per`, after fitting `longest`, at most `cap`."""
    per: int
    longest: int
    cap: int

    @property
    def most(self) -> int:
        return self.cap

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if size is None:
            return self.cap
        width, height = _fit(*size, self.longest)
        return min(math.ceil(width * height / self.per), self.cap)


@dataclass(frozen=True)
class SquareTiles:
    """Google's (and Llama 3.2 Vision's): `each` a `side`-px tile after fitting `longest`, at most `tiles` of
    them; an image within `small` px both ways is one tile."""
    side: int
    each: int
    longest: int
    tiles: int
    small: int = 0

    @property
    def most(self) -> int:
        return self.each * self.tiles

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if size is None:
            return self.most
        if size[0] <= self.small and size[1] <= self.small:
            return self.each
        width, height = _fit(*size, self.longest)
        return self.each * min(self.tiles, math.ceil(width / self.side) * math.ceil(height / self.side))


@dataclass(frozen=True)
class PatchRows:
    """Pixtral's: a `side`-px patch a token after fitting `longest`, and one break token a row."""
    side: int
    longest: int

    @property
    def most(self) -> int:
        per_side = math.ceil(self.longest / self.side)
        return per_side * per_side + per_side

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if size is None:
            return self.most
        width, height = _fit(*size, self.longest)
        rows = math.ceil(height / self.side)
        return math.ceil(width / self.side) * rows + rows


@dataclass(frozen=True)
class Flat:
    """A fixed count an image, whatever its size."""
    most: int

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        return self.most


@dataclass(frozen=True)
class Family:
    name: str
    image: ImageRule
    floor: int = DEFAULT_IMAGE_TOKENS  # METER_IMAGE_TOKENS: an inline image the meter cannot decode counts no less
    most_pages: int = MOST_PAGES  # a document whose pages are not known: the most its maker takes in a request

    def page(self) -> int:
        """A PDF page at most: its text and an image of it (of a size the proxy does not know)."""
        return PAGE_TEXT_TOKENS + self.image.most

    def undecoded_image(self) -> int:
        """An inline image the meter cannot decode within its bounds (a bomb, a broken or unknown format): the
        most its family bills for one image, and never less than METER_IMAGE_TOKENS."""
        return max(self.image.most, self.floor)


OPENAI_TILES = Tiles(85, 170)
# A pattern searched in the model's name (lower case) -> its family; the first that matches wins (the more specific
# first). A name may carry a provider's prefix (`openai/gpt-4o`, `anthropic.claude-...`).
FAMILIES: tuple[tuple[re.Pattern[str], Family], ...] = tuple((re.compile(pattern), family) for pattern, family in (
    (r"gpt-?4o-?mini", Family("openai gpt-4o-mini", Tiles(2833, 5667))),
    (r"gpt-?(4\.?1|5)-?nano", Family("openai nano", Patches(32, 1536, 2.46))),
    (r"gpt-?(4\.?1|5)-?mini", Family("openai mini", Patches(32, 1536, 1.62))),
    (r"(^|[/.:])o4-mini", Family("openai o4-mini", Patches(32, 1536, 1.72))),
    (r"computer-use", Family("openai computer-use", Tiles(65, 129))),
    (r"gpt-?5", Family("openai gpt-5", Tiles(70, 140))),
    (r"(^|[/.:])o[13](-|$)", Family("openai o-series", Tiles(75, 150))),
    (r"gpt-|gpt4|chatgpt", Family("openai", OPENAI_TILES)),
    (r"claude", Family("anthropic", Area(750, 1568, 1600), most_pages=600)),
    (r"gemini", Family("google", SquareTiles(768, 258, 3072, 16, small=384), most_pages=1000)),
    (r"gemma-?[34]", Family("gemma 3", Flat(256))),
    (r"qwen", Family("qwen-vl", Patches(28, 16384, 1.0, extra=2))),
    (r"llama-?(3\.2|4)", Family("llama vision", SquareTiles(560, 1601, 2240, 4))),
    (r"pixtral|mistral-(small|medium)", Family("pixtral", PatchRows(16, 1024))),
    (r"llava", Family("llava", Flat(2880))),
))


def family_of(model: str | None, unknown_image_tokens: int = DEFAULT_IMAGE_TOKENS) -> Family:
    """The family whose rules a model's input is counted by (a name no family claims: METER_IMAGE_TOKENS an
    image)."""
    name = model.lower()[:256] if isinstance(model, str) else ""
    if name:
        for pattern, family in FAMILIES:
            if pattern.search(name):
                return family if unknown_image_tokens == family.floor else replace(family, floor=unknown_image_tokens)
    return Family("unknown", Flat(unknown_image_tokens), unknown_image_tokens, most_pages=1000)
