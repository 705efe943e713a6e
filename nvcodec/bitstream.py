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
packed by `pack_header`; DS-NeRV files add the numbers of static and dynamic codes and the
attention heads at its end (the model id says whether they are there). The reader checks every length against the bytes really present and every
CRC before anything is parsed, so a damaged file ends in a `BitstreamError` with one line.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .models.arch import MAX_FRAMES_PER_DYNAMIC_CODE, MODEL_IDS, Arch, ArchError
from .outputs import temp_file

MAGIC = b"DNV\x1a"
FORMAT_VERSION = 1
# STATIC and DYNAMIC are DS-NeRV's codes; INDEX and SEGMENT make a segmented file (see `segments`).
# GRID0, GRID1 and LOCAL are HiNeRV's feature grids.
SECTION_TAGS = {"HEAD": 1, "DECODER": 2, "CONTENT": 3, "DIFF": 4, "STATIC": 5, "DYNAMIC": 6,
                "INDEX": 7, "SEGMENT": 8, "GRID0": 9, "GRID1": 10, "LOCAL": 11}
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
_CODES = struct.Struct("<IIB")          # DS-NeRV only: static_codes, dynamic_codes, heads
_LEVEL = struct.Struct("<BH")           # HiNeRV only, per grid level: channels, frames per entry


def pack_header(h: Header) -> bytes:
    a = h.arch
    out = io.BytesIO()
    out.write(_FIXED.pack(MODEL_IDS[a.model], a.width, a.height, h.frames, h.fps.numerator,
                          h.fps.denominator, h.quant_bits))
    n = len(a.strides)
    out.write(struct.pack("<BB", n, a.head_kernel))
    out.write(bytes(a.strides) + bytes(a.kernels))
    out.write(struct.pack(f"<{n + 1}H", *a.widths))
    out.write(_DIFF.pack(a.emb_ch, a.diff_ch, a.fuse_stage, a.diff_up, a.diff_kernel, a.ccu_kernel))
    if a.model == "dsnerv":
        out.write(_CODES.pack(a.static_codes, a.dynamic_codes, a.heads))
    if a.model == "hinerv":
        out.write(bytes(a.depths) + bytes(a.expansions) + bytes([len(a.grid_ch)]))
        for ch, every in zip(a.grid_ch, a.grid_every):
            out.write(_LEVEL.pack(ch, every))
        out.write(_LEVEL.pack(a.local_ch, a.local_every))
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
        codes, hinerv = (0, 0, 1), {}
        if model_id == MODEL_IDS["dsnerv"]:
            codes = _CODES.unpack_from(data, pos); pos += _CODES.size
        if model_id == MODEL_IDS["hinerv"]:
            depths = tuple(data[pos:pos + n]); pos += n
            expansions = tuple(data[pos:pos + n]); pos += n
            levels = data[pos]; pos += 1
            grid = [_LEVEL.unpack_from(data, pos + i * _LEVEL.size) for i in range(levels)]
            pos += levels * _LEVEL.size
            local_ch, local_every = _LEVEL.unpack_from(data, pos); pos += _LEVEL.size
            hinerv = dict(depths=depths, expansions=expansions, grid_ch=tuple(c for c, _ in grid),
                          grid_every=tuple(e for _, e in grid), local_ch=local_ch, local_every=local_every)
    except (struct.error, IndexError):
        raise BitstreamError("header is truncated") from None
    if pos != len(data):
        raise BitstreamError("header has trailing bytes")
    names = {v: k for k, v in MODEL_IDS.items()}
    if model_id not in names:
        raise BitstreamError(f"unknown model id {model_id}")
    if not (1 <= frames <= MAX_FRAMES) or num == 0 or den == 0 or not (1 <= qbits <= 16):
        raise BitstreamError("header has an invalid frame count, frame rate or bit depth")
    if len(strides) != n or len(kernels) != n or any(len(v) != n for k, v in hinerv.items() if k in
                                                      ("depths", "expansions")):
        raise BitstreamError("header is truncated")
    if names[model_id] == "dsnerv" and not (1 <= codes[0] <= frames and 1 <= codes[1] <= frames):
        raise BitstreamError("header has more static or dynamic codes than frames")
    if names[model_id] == "dsnerv" and frames > 1 + (codes[1] - 1) * MAX_FRAMES_PER_DYNAMIC_CODE:
        # Each frame's input comes from its two nearest dynamic codes: a few codes cannot stand for
        # millions of frames (a small file that would decode forever).
        raise BitstreamError(f"header declares {frames} frames for {codes[1]} dynamic codes (at most "
                             f"{MAX_FRAMES_PER_DYNAMIC_CODE} frames per code)")
    try:
        arch = Arch(names[model_id], width, height, strides, tuple(widths), kernels, emb_ch, diff_ch,
                    fuse, diff_up, diff_k, ccu_k, head_kernel, *codes, **hinerv)
    except ArchError as e:
        raise BitstreamError(f"header describes an invalid network ({e})") from None
    return Header(arch, frames, Fraction(num, den), qbits)


# --- container ----------------------------------------------------------------------------------

_SECTION = struct.Struct("<BII")


def pack(header: Header, sections: dict[str, bytes]) -> bytes:
    """Serialize the header and the named sections into the bytes of a .dnv file."""
    items = [("HEAD", pack_header(header))] + [(k, v) for k, v in sections.items() if k != "HEAD"]
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


def unpack(data: bytes) -> tuple[Header, dict[str, bytes]]:
    head, payloads, _ = _split(data)
    header = unpack_header(head)
    payloads.pop("HEAD")
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
