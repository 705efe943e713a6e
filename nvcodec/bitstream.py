"""The .dnv container.

Layout (all integers little-endian):

    magic      4 bytes  b"DNV\\x1a"
    version    u8       FORMAT_VERSION
    nsections  u8
    then nsections times:
      tag      u8       section type (SECTION_TAGS)
      length   u32      payload bytes
      crc32    u32      zlib.crc32 of the payload
      payload  length bytes

The first section is always HEAD: the header (video size, frame count, frame rate, architecture),
packed by `pack_header`; a model may add its own fields at its end (its `ModelSpec.pack_tail`: the
model id says which). An optional COLOR section (`nvcodec.color`) follows it: the sample format (RGB or YUV
4:2:0 planes) and the source's colour description; a file without one is RGB, as every file before it. The other sections are the decoder's weights and the model's input tables
(each model's `ModelSpec.tables` gives their tags). The reader checks every length against the bytes really present and every
CRC before anything is parsed, so a damaged file ends in a `BitstreamError` with one line.
"""
from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from . import color as colors
from .models import Arch, ArchError, spec_by_id, spec_of
from .models.registry import table_sections
from .outputs import temp_file

MAGIC = b"DNV\x1a"
FORMAT_VERSION = 1
# INDEX and SEGMENT make a segmented file (see `segments`); the models' tables come with the models.
CONTAINER_TAGS = {"HEAD": 1, "DECODER": 2, "INDEX": 7, "SEGMENT": 8, "COLOR": 12}
SECTION_TAGS = {**CONTAINER_TAGS, **{name: table.tag for name, table in table_sections().items()}}
assert len(set(SECTION_TAGS.values())) == len(SECTION_TAGS), "two sections share a tag"
TAG_NAMES = {v: k for k, v in SECTION_TAGS.items()}
MAX_FRAMES = 10_000_000


class BitstreamError(ValueError):
    """A .dnv file that cannot be read: one line saying why."""


@dataclass(frozen=True)
class Header:
    arch: Arch
    frames: int
    fps: Fraction
    quant_bits: int

    @property
    def width(self) -> int:
        return self.arch.width

    @property
    def height(self) -> int:
        return self.arch.height


# --- header -------------------------------------------------------------------------------------

_FIXED = struct.Struct("<BHHIIIB")      # model, width, height, frames, fps_num, fps_den, quant_bits
_DIFF = struct.Struct("<BBBBBB")        # emb_ch, diff_ch, fuse_stage, diff_up, diff_kernel, ccu_kernel


def pack_header(h: Header) -> bytes:
    a = h.arch
    out = io.BytesIO()
    spec = spec_of(a.model)
    out.write(_FIXED.pack(spec.model_id, a.width, a.height, h.frames, h.fps.numerator,
                          h.fps.denominator, h.quant_bits))
    n = len(a.strides)
    out.write(struct.pack("<BB", n, a.head_kernel))
    out.write(bytes(a.strides) + bytes(a.kernels))
    out.write(struct.pack(f"<{n + 1}H", *a.widths))
    out.write(_DIFF.pack(a.emb_ch, a.diff_ch, a.fuse_stage, a.diff_up, a.diff_kernel, a.ccu_kernel))
    out.write(spec.pack_tail(a))
    return out.getvalue()


def unpack_header(data: bytes) -> Header:
    try:
        model_id, width, height, frames, num, den, qbits = _FIXED.unpack_from(data, 0)
        pos = _FIXED.size
        n, head_kernel = struct.unpack_from("<BB", data, pos)
        pos += 2
        strides = tuple(data[pos:pos + n]); pos += n
        kernels = tuple(data[pos:pos + n]); pos += n
        widths = struct.unpack_from(f"<{n + 1}H", data, pos); pos += 2 * (n + 1)
        emb_ch, diff_ch, fuse, diff_up, diff_k, ccu_k = _DIFF.unpack_from(data, pos); pos += _DIFF.size
        spec = spec_by_id(model_id)
        tail = {}
        if spec is not None:
            tail, pos = spec.unpack_tail(data, pos, n)
    except (struct.error, IndexError):
        raise BitstreamError("header is truncated") from None
    if pos != len(data):
        raise BitstreamError("header has trailing bytes")
    if spec is None:
        raise BitstreamError(f"unknown model id {model_id}")
    if not (1 <= frames <= MAX_FRAMES) or num == 0 or den == 0 or not (1 <= qbits <= 16):
        raise BitstreamError("header has an invalid frame count, frame rate or bit depth")
    if len(strides) != n or len(kernels) != n:
        raise BitstreamError("header is truncated")
    problem = spec.check_header(tail, n, frames)
    if problem:
        raise BitstreamError(problem)
    try:
        arch = Arch(spec.name, width, height, strides, tuple(widths), kernels, emb_ch, diff_ch,
                    fuse, diff_up, diff_k, ccu_k, head_kernel, **tail)
    except ArchError as e:
        raise BitstreamError(f"header describes an invalid network ({e})") from None
    return Header(arch, frames, Fraction(num, den), qbits)


# --- container ----------------------------------------------------------------------------------

_SECTION = struct.Struct("<BII")


def pack(header: Header, sections: dict[str, bytes]) -> bytes:
    """Serialize the header and the named sections into the bytes of a .dnv file."""
    items = [("HEAD", pack_header(header))]
    if header.arch.color != colors.RGB:     # (RGB with nothing declared: the file as before COLOR existed)
        items.append(("COLOR", colors.pack(header.arch.color)))
    items += [(k, v) for k, v in sections.items() if k not in ("HEAD", "COLOR")]
    out = io.BytesIO()
    out.write(MAGIC + struct.pack("<BB", FORMAT_VERSION, len(items)))
    for name, payload in items:
        out.write(_SECTION.pack(SECTION_TAGS[name], len(payload), zlib.crc32(payload)))
        out.write(payload)
    return out.getvalue()


def section_sizes(data: bytes) -> dict[str, int]:
    """Bytes taken by each section in a file, framing included (the container's own bytes as 'container')."""
    _, _, spans = _split(data)
    sizes = {name: end - start + _SECTION.size for name, (start, end) in spans.items()}
    sizes["container"] = len(MAGIC) + 2
    return sizes


def _split(data: bytes):
    if len(data) < len(MAGIC) + 2 or data[:len(MAGIC)] != MAGIC:
        raise BitstreamError("not a .dnv file (bad magic bytes)")
    version, count = data[4], data[5]
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported .dnv format version {version} (this dnv reads {FORMAT_VERSION})")
    pos, spans, payloads = 6, {}, {}
    for _ in range(count):
        if pos + _SECTION.size > len(data):
            raise BitstreamError("file is truncated (section header missing)")
        tag, length, crc = _SECTION.unpack_from(data, pos)
        pos += _SECTION.size
        name = TAG_NAMES.get(tag)
        if name is None:
            raise BitstreamError(f"unknown section tag {tag}")
        if name in payloads:
            raise BitstreamError(f"section {name} appears twice")
        if pos + length > len(data):
            raise BitstreamError(f"file is truncated (section {name} needs {length} bytes, "
                                 f"{len(data) - pos} left)")
        payload = data[pos:pos + length]
        if zlib.crc32(payload) != crc:
            raise BitstreamError(f"section {name} is corrupted (CRC mismatch)")
        spans[name] = (pos, pos + length)
        payloads[name] = payload
        pos += length
    if pos != len(data):
        raise BitstreamError(f"{len(data) - pos} unexpected bytes after the last section")
    if "HEAD" not in payloads:
        raise BitstreamError("file has no header section")
    return payloads["HEAD"], payloads, spans


def color_of(prefix: bytes) -> colors.Color:
    """The sample format of a file from its first bytes (HEAD and COLOR come first; 512 are plenty): for a
    segmented file's random access, which should not read a whole segment to learn it. The COLOR payload's CRC is
    checked; the rest is checked when the segment is decoded."""
    if len(prefix) < len(MAGIC) + 2 or prefix[:len(MAGIC)] != MAGIC:
        raise BitstreamError("not a .dnv file (bad magic bytes)")
    pos = len(MAGIC) + 2
    for _ in range(min(prefix[5], 2)):
        if pos + _SECTION.size > len(prefix):
            break
        tag, length, crc = _SECTION.unpack_from(prefix, pos)
        pos += _SECTION.size
        if tag == SECTION_TAGS["COLOR"]:
            payload = prefix[pos:pos + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                raise BitstreamError("section COLOR is corrupted (CRC mismatch)")
            try:
                return colors.unpack(payload)
            except colors.ColorError as e:
                raise BitstreamError(str(e)) from None
        pos += length
    return colors.RGB


def unpack(data: bytes) -> tuple[Header, dict[str, bytes]]:
    head, payloads, _ = _split(data)
    header = unpack_header(head)
    payloads.pop("HEAD")
    if "COLOR" in payloads:
        try:
            color = colors.unpack(payloads.pop("COLOR"))
        except colors.ColorError as e:
            raise BitstreamError(str(e)) from None
        header = dataclasses.replace(header, arch=dataclasses.replace(header.arch, color=color))
    return header, payloads


def read_file(path) -> tuple[Header, dict[str, bytes], int]:
    """Read and validate a .dnv file: (header, sections, size in bytes)."""
    path = Path(path)
    if not path.is_file():
        raise BitstreamError(f"no such file: {path}")
    data = path.read_bytes()
    header, sections = unpack(data)
    return header, sections, len(data)


def write_atomic(path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file in the same folder, then rename: never a partial file."""
    path = Path(path)
    tmp = temp_file(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
