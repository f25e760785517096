"""A sound's duration from what a decoder plays, never a header's length:

- WAV: read by the standard library's `wave` (PCM), its duration every byte of the file taken as a sample at the
  sample rate and width it declares (a data chunk whose size says less, or a byte rate that lies, is not believed);
- MP3: what frames a decoder could play, at the most: every frame header in the file is read (a Xing or VBRI
  frame's count and an ID3 tag's TLEN are not), and a decoder plays frames that follow each other with headers that
  agree (the same version, layer and sample rate, as ffmpeg locks on). Chains of such frames may be interleaved (a
  chain of 8 kbit/s frames hidden in the payload of one of 320 kbit/s), so the count is the longest any set of
  frames not overlapping could play (each chained frame, whatever chain it is of), plus every byte no chained frame
  holds, outside a leading ID3 tag, at the lowest bitrate (no sound hides between frames; nor does a frame no
  other agrees with, which plays less than its bytes at that bitrate). No library walks every frame, so the walk
  is here: small, and bounded (MOST_STEPS headers; past them the file counts at the lowest bitrate).

Both are read within MOST_SECONDS of CPU (deadline.py; `wave` walks a chunk at a time, and a file may hold
millions). Any other format, a WAV `wave` cannot read, or a sound not read in time: None, and the meter counts
its bytes at the lowest bitrate.
"""

from __future__ import annotations

import bisect
import functools
import io
import re
import wave

from argoproxy.meter.deadline import OutOfTime, cpu_bounded
from argoproxy.meter.families import AUDIO_BYTES_PER_SECOND as LOWEST_BYTES_PER_SECOND
MOST_RATE = 768_000  # a WAV's sample rate past this is not a sound a provider plays
MOST_STEPS = 400_000  # MP3 frame headers read at most (a 64 MiB file of 160-byte frames)
MOST_SECONDS = 0.2  # CPU time a sound is read for

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
_TICKS = 14_112_000  # a second in ticks, a whole number of samples at every rate (their least common multiple)
_SYNC = re.compile(rb"\xff(?=[\xe0-\xff])")  # where a frame header may begin (eleven bits set)


def seconds(data: bytes, form: str) -> float | None:
    """The duration of `data`: a WAV (its bytes say RIFF WAVE) by its samples, an MP3 (`form` says mp3 or mpeg)
    by its frames; both, the longer (a decoder may go by either)."""
    try:
        with cpu_bounded(MOST_SECONDS):
            found = [wav_seconds(data)] if data[:4] == b"RIFF" and data[8:12] == b"WAVE" else []
            if "mp3" in form or "mpeg" in form:
                found.append(mp3_seconds(data))
    except OutOfTime:
        return None
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
    """The longest that frames not overlapping, each of a chain, could play, plus the bytes no chained frame holds
    at the lowest bitrate (a file of more than MOST_STEPS headers: all of it)."""
    frames = _frames(data)
    if frames is None:
        return len(data) / LOWEST_BYTES_PER_SECOND
    chained = _chained(frames)
    unframed = len(data) - _id3_length(data) - _held(chained, _id3_length(data))
    return _longest(chained) / _TICKS + max(unframed, 0) / LOWEST_BYTES_PER_SECOND


def _frames(data: bytes) -> dict[int, tuple[int, int, int]] | None:
    """Every frame whose header is in `data` and whose bytes are all there: its start, and its end, duration (in
    ticks) and what a decoder locks on; None: more than MOST_STEPS syncs."""
    headers, size = _headers(), len(data)
    found: dict[int, tuple[int, int, int]] = {}
    for steps, sync in enumerate(_SYNC.finditer(data, 0, size - 3)):
        if steps >= MOST_STEPS:
            return None
        at = sync.start()
        frame = headers.get(data[at + 1] << 8 | data[at + 2])
        if frame is not None and at + frame[0] <= size:
            found[at] = at + frame[0], frame[1], frame[2]
    return found


@functools.cache
def _headers() -> dict[int, tuple[int, int, int]]:
    """Each frame header's second and third bytes (as one number): its bytes, its duration in ticks and what a
    decoder locks on (version, layer, sample rate). Read once: a look-up per sync, not a parse."""
    found = {}
    for key in range(0xE000, 0x10000):
        frame = _frame(key >> 8, key & 0xFF)
        if frame is not None:
            length, samples, rate = frame
            found[key] = length, samples * (_TICKS // rate), (key >> 8 & 0x1E) << 2 | key >> 2 & 3
    return found


def _chained(frames: dict[int, tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(start, end, ticks) of the frames a decoder locks on, by start: each followed, or preceded, by a frame
    whose header agrees."""
    chained: set[int] = set()
    for at, (end, _, lock) in frames.items():
        after = frames.get(end)
        if after is not None and after[2] == lock:
            chained.update((at, end))
    return [(at, *frames[at][:2]) for at in sorted(chained)]


def _longest(chained: list[tuple[int, int, int]]) -> int:
    """The most ticks a set of chained frames not overlapping plays (weighted interval scheduling, from the
    last frame back: the best from each frame on either skips it or plays it and the best after its end)."""
    starts = [at for at, _, _ in chained]
    best = [0] * (len(chained) + 1)
    for k in range(len(chained) - 1, -1, -1):
        _, end, ticks = chained[k]
        best[k] = max(best[k + 1], ticks + best[bisect.bisect_left(starts, end, k + 1)])
    return best[0]


def _held(chained: list[tuple[int, int, int]], tag: int) -> int:
    """Bytes past a leading tag of `tag` bytes that some chained frame holds."""
    held, reach = 0, tag
    for at, end, _ in chained:
        if end > max(at, reach):
            held += end - max(at, reach)
            reach = end
    return held


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
