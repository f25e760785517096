"""An image's size as Pillow decodes it: the largest extent any of its frames covers (a GIF's frames may pass its
logical screen, and a decoder shows them whole), never a header's word alone. Only the formats the makers take
are opened. A still image is not decoded (its size is what its decoder fills); an animation's frames are walked,
each decoded onto a canvas, within MOST_FRAMES frames, a canvas of MOST_WALKED pixels and MOST_SECONDS of CPU
(deadline.py). An extent past MOST_PIXELS (MAX_IMAGE_PIXELS's default) is a decompression bomb. None: the image
cannot be measured within these bounds."""

from __future__ import annotations

import warnings

import io

from PIL import Image

from argoproxy.meter.deadline import OutOfTime, cpu_bounded

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")  # what OpenAI, Anthropic and Google take (an MPO opens as a JPEG)
MOST_PIXELS = 50_000_000  # an image larger than this is a bomb (MAX_IMAGE_PIXELS's default)
MOST_WALKED = 2048 * 2048  # an animation's canvas decoded while walking its frames (16 MiB as RGBA)
MOST_FRAMES = 1000  # an animation with more frames is not walked
MOST_SECONDS = 0.2  # CPU time an image is read for


def extent(data: bytes) -> tuple[int, int] | None:
    """(width, height) covering every frame of the image in `data`; None: not measurable within the bounds."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the bound is ours: MOST_PIXELS
            with cpu_bounded(MOST_SECONDS), Image.open(io.BytesIO(data), formats=FORMATS) as image:
                size = _frames(image) if getattr(image, "is_animated", False) else image.size
    except (Exception, OutOfTime):  # noqa: BLE001 - an image Pillow refuses (a bomb, a broken frame), or its time
        return None
    if size is None or size[0] <= 0 or size[1] <= 0 or size[0] * size[1] > MOST_PIXELS:
        return None
    return size


def _frames(image: Image.Image) -> tuple[int, int] | None:
    """Walk the frames: Pillow grows a GIF's size to cover each frame it reaches, decoding the frame before onto
    a canvas of the size already checked."""
    width, height = image.size
    for frame in range(1, MOST_FRAMES + 1):
        if width * height > MOST_WALKED:
            return None
        try:
            image.seek(frame)
        except EOFError:
            return width, height
        width, height = max(width, image.size[0]), max(height, image.size[1])
    return None
