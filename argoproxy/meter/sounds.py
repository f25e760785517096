"""A sound's duration from what a decoder plays, never a header's length:

- WAV: read by the standard library's `wave` (PCM), its duration every byte of the file taken as a sample at the
  sample rate and width it declares (a data chunk whose size says less, or a byte rate that lies, is not believed);
- MP3: the sum of its frames' durations, every frame header walked from the first byte to the last (a Xing or VBRI
  frame's count and an ID3 tag's TLEN are not read), and any byte no frame holds, outside a leading ID3 tag,
  counted as the lowest bitrate plays it (no sound hides between frames). No library walks every frame, so the
  walk is here: small, and bounded (MOST_STEPS headers read; past them the file counts at the lowest bitrate).

Any other format (or a WAV `wave` cannot read): None, and the meter counts its bytes at the lowest bitrate.
"""

from __future__ import annotations

import io
import wave

from argoproxy.meter.families import AUDIO_BYTES_PER_SECOND as LOWEST_BYTES_PER_SECOND
MOST_RATE = 768_000  # a WAV's sample rate past this is not a sound a provider plays
MOST_STEPS = 400_000  # MP3 frame headers read at most (a 64 MiB file of 160-byte frames)

# MPEG audio frame headers (ISO/IEC 11172-3, 13818-3): kbit/s by bitrate index, for MPEG-1 layers I, II, III and
# MPEG-2/2.5 layer I, and layers II and III; sample rates by version (MPEG-2.5, -, MPEG-2, MPEG-1).
_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES[(2, 3)] = _BITRATES[(2, 2)]
_RATES = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}


def seconds(data: bytes, form: str) -> float | None:
    """The duration of `data`: a WAV (its bytes say RIFF WAVE) by its samples, an MP3 (`form` says mp3 or mpeg)
    by its frames; both, the longer (a decoder may go by either)."""
    found = [wav_seconds(data)] if data[:4] == b"RIFF" and data[8:12] == b"WAVE" else []
    if "mp3" in form or "mpeg" in form:
        found.append(mp3_seconds(data))
    known = [s for s in found if s is not None]
    return max(known) if known else None


def wav_seconds(data: bytes) -> float | None:
    """Every byte from a PCM WAV's data chunk on a sample at its declared rate and width; None: `wave` cannot
    read it."""
    file = io.BytesIO(data)
    try:
        with wave.open(file) as sound:  # it reads the chunks up to the data chunk's header, and stops there
            rate: int = sound.getframerate()
            frame: int = sound.getnchannels() * sound.getsampwidth()
            start = file.tell()
    except (wave.Error, EOFError, ValueError, OverflowError):
        return None
    if not 0 < rate <= MOST_RATE or frame <= 0:
        return None
    return (len(data) - start) / (rate * frame)


def mp3_seconds(data: bytes) -> float:
    """Frames' durations in all, plus the bytes no frame holds at the lowest bitrate (a file of no frame: all of
    it)."""
    tag = _id3_length(data)
    at = played = steps = 0
    samples: dict[int, int] = {}  # samples played at each sample rate (summed exactly, divided once)
    while steps < MOST_STEPS:
        at = data.find(b"\xff", at)
        if at < 0 or at + 4 > len(data):
            unframed = (len(data) - tag - played) / LOWEST_BYTES_PER_SECOND
            return sum(count / rate for rate, count in samples.items()) + max(unframed, 0)
        steps += 1
        frame = _frame(data[at + 1], data[at + 2])
        if frame is None or at + frame[0] > len(data):
            at += 1
            continue
        length, count, rate = frame
        samples[rate] = samples.get(rate, 0) + count
        played += length if at >= tag else 0
        at += length
    return len(data) / LOWEST_BYTES_PER_SECOND


def _id3_length(data: bytes) -> int:
    """Bytes of a leading ID3v2 tag (its header's syncsafe size; metadata, not counted as sound: the frames
    within it are walked all the same)."""
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | data[9] & 0x7F
    return min(len(data), 10 + size + (10 if data[5] & 0x10 else 0))


def _frame(second: int, third: int) -> tuple[int, int, int] | None:
    """(bytes, samples, sample rate) of the frame whose header's second and third bytes these are; None: not a
    frame header (a free-format or reserved bitrate, a reserved version, layer or sample rate, MPEG-2.5 not of
    layer III)."""
    version, layer = (second >> 3) & 3, 4 - ((second >> 1) & 3)
    index, rate_index = third >> 4, (third >> 2) & 3
    if second & 0xE0 != 0xE0 or version == 1 or layer == 4 or not 0 < index < 15 or rate_index == 3:
        return None
    if version == 0 and layer != 3:  # MPEG-2.5 defines layer III alone: a decoder skips any other
        return None
    bitrate = _BITRATES[(1 if version == 3 else 2, layer)][index] * 1000
    rate = _RATES[version][rate_index]
    padding = (third >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384, rate
    samples = 1152 if layer == 2 or version == 3 else 576
    return samples // 8 * bitrate // rate + padding, samples, rate
