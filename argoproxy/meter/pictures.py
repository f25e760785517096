"""An image's size as Pillow decodes it: the largest extent any of its frames covers (a GIF's frames may pass its
logical screen, and a decoder shows them whole), never a header's word alone. Only the formats the makers take
are opened; an animation's frames are walked (each one decoded) within MOST_FRAMES and MOST_DECODED pixels, and a
canvas past MOST_PIXELS (MAX_IMAGE_PIXELS's default) is a decompression bomb, never decoded. None: the image cannot
be measured within these bounds."""

from __future__ import annotations

import io
import warnings

from PIL import Image

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")  # what OpenAI, Anthropic and Google take (an MPO opens as a JPEG)
MOST_PIXELS = 50_000_000  # a canvas larger than this is a bomb (MAX_IMAGE_PIXELS's default)
MOST_FRAMES = 1000  # an animation with more frames is not walked
MOST_DECODED = 200_000_000  # pixels decoded while walking an animation's frames, in all


def extent(data: bytes) -> tuple[int, int] | None:
    """(width, height) covering every frame of the image in `data`; None: not measurable within the bounds."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the bound is ours: MOST_PIXELS
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                return _frames(image)
    except Exception:  # noqa: BLE001 - any image Pillow refuses (a bomb, a broken frame) is not measured
        return None


def _frames(image: Image.Image) -> tuple[int, int] | None:
    """Walk the frames: Pillow grows a GIF's size to cover each frame it reaches (the frame before is decoded
    onto a canvas of the size already checked)."""
    frames = getattr(image, "n_frames", 1)
    if frames > MOST_FRAMES:
        return None
    width, height = image.size
    decoded = 0
    for frame in range(1, frames):
        decoded += width * height
        if width * height > MOST_PIXELS or decoded > MOST_DECODED:
            return None
        image.seek(frame)
        width, height = max(width, image.size[0]), max(height, image.size[1])
    if width <= 0 or height <= 0 or width * height > MOST_PIXELS:
        return None
    return width, height
