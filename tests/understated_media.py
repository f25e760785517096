"""Media files whose headers understate their content, in every way their formats allow, for the meter's tests and
bench/meter_decoding.py: a PDF whose names are #-escaped, whose /Count lies and which holds page objects no page
tree reaches; a WAV whose byte rate and data size lie; a GIF, an APNG and an animated WebP whose logical screen
is smaller than their frames; an MP3 whose Xing frame and ID3 tag give a length that lies, or whose frames hide a
second chain in their payload; a DOCX whose text deflate packs small. Each maker returns the bytes. And files past
the meter's bounds: a cross-reference of a million entries, in a table or a 5 KB stream; a page tree naming
objects the cross-reference lacks (pypdf searches the whole file for each); a WAV of a million empty chunks."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

from PIL import Image


def escaped(name: str) -> str:
    """A PDF name with every letter after the first written as #xx (legal PDF: a reader decodes it)."""
    return name[:2] + "".join(f"#{ord(c):02X}" for c in name[2:])


def pdf(pages: int, count: int = 1, unused: int = 1, escape: bool = True) -> bytes:
    """A PDF of `pages` pages in its page tree, whose root says `/Count count`, plus `unused` page objects no tree
    holds; its names #-escaped (`/T#79#70#65`) when `escape`."""
    n = escaped if escape else (lambda s: s)
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    page = f"<< {n('/Type')} {n('/Page')} {n('/Parent')} 2 0 R {n('/MediaBox')} [0 0 612 792] >>"
    objects = [f"<< {n('/Type')} {n('/Catalog')} {n('/Pages')} 2 0 R >>",
               f"<< {n('/Type')} {n('/Pages')} {n('/Kids')} [{kids}] {n('/Count')} {count} >>"]
    objects += [page] * pages + ["<< /Type /Page /MediaBox [0 0 612 792] >>"] * unused
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _one_page() -> tuple[bytes, list[int]]:
    """A one-page PDF's objects (before its cross-reference) and their offsets."""
    head = pdf(1, escape=False).split(b"xref")[0]
    return head, [m.start() for m in re.finditer(rb"\d+ 0 obj", head)]


def xref_table(entries: int) -> bytes:
    """A one-page PDF whose cross-reference table lists `entries` more (free) objects."""
    head, offsets = _one_page()
    size = len(offsets) + 1 + entries
    return (head + f"xref\n0 {size}\n0000000000 65535 f \n".encode()
            + b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets) + b"0000000000 65535 f \n" * entries
            + f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{len(head)}\n%%EOF\n".encode())


def xref_stream(entries: int) -> bytes:
    """A one-page PDF whose compressed cross-reference stream (a few KB) lists `entries` more objects."""
    head, offsets = _one_page()
    rows = b"\x00" * 5 + b"".join(b"\x01" + struct.pack(">I", o) for o in offsets) + b"\x00" * 5 * entries
    raw = zlib.compress(rows, 9)
    return (head + f"{len(offsets) + 1} 0 obj\n<< /Type /XRef /Size {len(offsets) + 2 + entries} /W [1 4 0] "
            f"/Root 1 0 R /Filter /FlateDecode /Length {len(raw)} >>\nstream\n".encode() + raw
            + f"\nendstream\nendobj\nstartxref\n{len(head)}\n%%EOF\n".encode())


def missing_pages(pages: int, pad: int) -> bytes:
    """A PDF of `pad` bytes of comment whose page tree names `pages` pages, none of them in its cross-reference
    (the review's mkpdf.py): pypdf copies and searches the whole file for each."""
    kids = " ".join(f"{1000 + i} 0 R" for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    out += b"%" + b"x" * pad + b"\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def wav(seconds: float, rate: int = 16000, said_rate: int | None = None, said_size: int | None = None) -> bytes:
    """A 16-bit mono PCM WAV of `seconds`, whose byte rate and data size say what `said_*` say (the truth if
    None)."""
    samples = b"\x01\x00" * int(rate * seconds)
    size = len(samples) if said_size is None else said_size
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2 if said_rate is None else said_rate, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", size) + samples)



def wav_of_chunks(chunks: int) -> bytes:
    """A PCM WAV whose `chunks` empty chunks before its data chunk `wave` skips one at a time."""
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + fmt + b"junk\x00\x00\x00\x00" * chunks + b"data" + struct.pack("<I", 4) + b"\x00" * 4
    return b"RIFF" + struct.pack("<I", len(body)) + body


def docx(text: bytes, said_size: int | None = None) -> bytes:
    """A zip archive holding `text` as word/document.xml (deflated), whose headers say it is `said_size` bytes
    (the truth if None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("word/document.xml", text)
    data = bytearray(out.getvalue())
    if said_size is not None:  # the uncompressed size in its local header and its central directory's entry
        for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
            for header in re.finditer(re.escape(signature), data):
                if data[header.start() + name_at:].startswith(b"word/"):
                    struct.pack_into("<I", data, header.start() + size_at, said_size)
    return bytes(data)

def _animation(frames: list[Image.Image], fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], **options)
    return out.getvalue()


def _frames(width: int, height: int, count: int) -> list[Image.Image]:
    return [Image.new("RGB", (width, height), (40 * i % 256, 90, 200)) for i in range(count)]


def gif(screen: tuple[int, int], frame: tuple[int, int], count: int = 1) -> bytes:
    """A GIF of `count` frames of `frame` size whose logical screen says `screen` (Pillow writes the frames; the
    screen's words are then changed)."""
    data = bytearray(_animation(_frames(*frame, count), "GIF", duration=100, loop=0))
    data[6:10] = struct.pack("<HH", *screen)
    return bytes(data)


def apng(screen: tuple[int, int], frame: tuple[int, int], count: int = 2) -> bytes:
    """An APNG of `count` frames of `frame` size whose IHDR says `screen` (its CRC made right)."""
    data = bytearray(_animation(_frames(*frame, count), "PNG", duration=100, default_image=False))
    data[16:24] = struct.pack(">II", *screen)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def webp(screen: tuple[int, int], frame: tuple[int, int], count: int = 2) -> bytes:
    """An animated WebP of `count` frames of `frame` size whose VP8X canvas says `screen`."""
    data = bytearray(_animation(_frames(*frame, count), "WEBP", duration=100, lossless=True))
    assert data[12:16] == b"VP8X"
    data[24:30] = (screen[0] - 1).to_bytes(3, "little") + (screen[1] - 1).to_bytes(3, "little")
    return bytes(data)


# MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes and 1,152 samples a frame
MP3_FRAME = b"\xff\xfb\x90\x00" + b"\x00" * 413
MP3_FRAME_SECONDS = 1152 / 44100


def mp3(frames: int, said_frames: int = 1, said_ms: int = 1000, junk: bytes = b"") -> bytes:
    """An MP3 of `frames` frames of audio after a Xing frame that says `said_frames` and an ID3v2 tag whose TLEN
    says `said_ms` (and `junk` between the tag and the frames)."""
    tlen = b"\x00" + str(said_ms).encode()
    frame = b"TLEN" + struct.pack(">I", len(tlen)) + b"\x00\x00" + tlen
    size = len(frame)
    tag = b"ID3\x03\x00\x00" + bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    xing = bytearray(MP3_FRAME)
    xing[36:48] = b"Xing" + struct.pack(">II", 1, said_frames)  # flags: frame count present
    return tag + frame + junk + bytes(xing) + MP3_FRAME * frames


def mp3_seconds(frames: int) -> float:
    """What a decoder plays of mp3(frames): every frame, the Xing frame's silence too."""
    return (frames + 1) * MP3_FRAME_SECONDS


# MPEG-1 layer III 320 kbit/s frames at 32 and 48 kHz (1,440 and 960 bytes, 1,152 samples), and MPEG-2.5 layer III
# 8 kbit/s frames at 8 kHz (72 bytes, 576 samples): the longest and the shortest playing frame per byte.
LOUD_32K, LOUD_48K = (b"\xff\xfb\xe8\x00", 1440, 1152 / 32000), (b"\xff\xfb\xe4\x00", 960, 1152 / 48000)
QUIET = (b"\xff\xe3\x18\x00", 72, 576 / 8000)


def interleaved_mp3(outer: list[tuple[bytes, int, float]], inner: tuple[bytes, int, float], at: int) -> bytes:
    """The frames of `outer` one after the other from byte 0, with a chain of `inner` frames from byte `at` to the
    end written over their payload (its headers inside theirs, the review's way of hiding a sound: chain A of
    MPEG-1 frames whose sample rates disagree, chain B of 8 kbit/s frames a decoder locks on)."""
    data = bytearray(b"".join(header + b"\x00" * (length - 4) for header, length, _ in outer))
    for start in range(at, len(data) - inner[1] + 1, inner[1]):
        data[start:start + 4] = inner[0]
    return bytes(data)


def chain_seconds(data: bytes, frames: list[tuple[bytes, int, float]], at: int = 0) -> float:
    """What a decoder locked on the chain of `frames` from `at` plays: each frame whose header is still there,
    up to the first that is not."""
    played = 0.0
    for header, length, seconds in frames:
        if data[at:at + 4] != header or at + length > len(data):
            break
        played, at = played + seconds, at + length
    return played
