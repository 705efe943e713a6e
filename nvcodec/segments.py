"""Long videos: segments, each its own network, in one file with an index for random access.

A segmented .dnv is an ordinary container (see `bitstream`) whose first section is INDEX and whose
other sections are SEGMENTs. Each SEGMENT payload is a complete single-segment .dnv (its own HEAD,
DECODER and embeddings), so one segment decodes with exactly the code a short video uses.

INDEX payload (little-endian):
    width u16, height u16, fps_num u32, fps_den u32, total_frames u32, count u32
    count x (first_frame u32, frames u32, offset u64, length u32)
offset/length locate the SEGMENT section's payload in the file, so `read_segment` reads only the
bytes it needs (the INDEX itself sits at a fixed place right after the 6-byte file header).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .bitstream import (FORMAT_VERSION, MAGIC, SECTION_TAGS, BitstreamError, _SECTION, MAX_FRAMES, color_of)

DEFAULT_SEGMENT_FRAMES = 300
_INDEX_HEAD = struct.Struct("<HHIIII")
_ENTRY = struct.Struct("<IIQI")
MAX_SEGMENTS = 1_000_000


@dataclass(frozen=True)
class SegmentEntry:
    first_frame: int
    frames: int
    offset: int
    length: int


@dataclass(frozen=True)
class Index:
    width: int
    height: int
    fps: Fraction
    total_frames: int
    entries: tuple[SegmentEntry, ...]

    def segments_for(self, start: int, end: int) -> list[tuple[int, SegmentEntry]]:
        """(segment number, entry) of every segment overlapping frames [start, end)."""
        return [(i, e) for i, e in enumerate(self.entries)
                if e.first_frame < end and e.first_frame + e.frames > start]


def pack_segmented(width: int, height: int, fps: Fraction, segments: list[tuple[int, bytes]]) -> bytes:
    """File bytes from (first_frame, single-segment .dnv bytes) pairs, in frame order."""
    total = sum(_frames_of(data) for _, data in segments)
    index_len = _INDEX_HEAD.size + _ENTRY.size * len(segments)
    pos = len(MAGIC) + 2 + _SECTION.size + index_len
    entries, body = [], bytearray()
    for first, data in segments:
        entries.append(_ENTRY.pack(first, _frames_of(data), pos + _SECTION.size, len(data)))
        body += _SECTION.pack(SECTION_TAGS["SEGMENT"], len(data), zlib.crc32(data)) + data
        pos += _SECTION.size + len(data)
    index = _INDEX_HEAD.pack(width, height, fps.numerator, fps.denominator, total, len(segments)) + b"".join(entries)
    # The section count byte is 0 in a segmented file: the INDEX says what follows.
    head = MAGIC + struct.pack("<BB", FORMAT_VERSION, 0)
    return head + _SECTION.pack(SECTION_TAGS["INDEX"], len(index), zlib.crc32(index)) + index + bytes(body)


def _frames_of(single: bytes) -> int:
    from .bitstream import unpack
    return unpack(single)[0].frames


def is_segmented(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 2 + 1)
    return len(head) == len(MAGIC) + 3 and head[:4] == MAGIC and head[6] == SECTION_TAGS["INDEX"]


def read_index(path) -> Index:
    """Read and check only the file header and the INDEX section."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 2 + _SECTION.size)
        if len(head) < len(MAGIC) + 2 + _SECTION.size or head[:4] != MAGIC:
            raise BitstreamError("not a .dnv file (bad magic bytes)")
        if head[4] != FORMAT_VERSION:
            raise BitstreamError(f"unsupported .dnv format version {head[4]}")
        tag, length, crc = _SECTION.unpack_from(head, 6)
        if tag != SECTION_TAGS["INDEX"]:
            raise BitstreamError("file has no segment index")
        if length > size - len(head) or length < _INDEX_HEAD.size:
            raise BitstreamError("file is truncated (segment index)")
        payload = f.read(length)
    if zlib.crc32(payload) != crc:
        raise BitstreamError("segment index is corrupted (CRC mismatch)")
    width, height, num, den, total, count = _INDEX_HEAD.unpack_from(payload, 0)
    if count > MAX_SEGMENTS or len(payload) != _INDEX_HEAD.size + count * _ENTRY.size:
        raise BitstreamError("segment index has a bad length")
    if not (1 <= total <= MAX_FRAMES) or num == 0 or den == 0 or width == 0 or height == 0:
        raise BitstreamError("segment index has invalid video fields")
    entries, expected_first = [], 0
    first_offset = len(head) + length + _SECTION.size     # segments lie after the INDEX
    for i in range(count):
        e = SegmentEntry(*_ENTRY.unpack_from(payload, _INDEX_HEAD.size + i * _ENTRY.size))
        if (e.first_frame != expected_first or e.frames < 1 or e.offset < first_offset
                or e.offset + e.length > size):
            raise BitstreamError(f"segment index entry {i} is inconsistent with the file")
        expected_first += e.frames
        entries.append(e)
    if expected_first != total:
        raise BitstreamError("segment index frame counts do not add up")
    return Index(width, height, Fraction(num, den), total, tuple(entries))


def section_sizes(index: Index, file_bytes: int) -> dict[str, int]:
    """Bytes of a segmented file's parts, framing included: INDEX, all SEGMENTs, the container's own."""
    head = len(MAGIC) + 2
    index_bytes = _SECTION.size + _INDEX_HEAD.size + _ENTRY.size * len(index.entries)
    return {"INDEX": index_bytes, "SEGMENT": file_bytes - head - index_bytes, "container": head}


def read_segment(path, entry: SegmentEntry) -> bytes:
    """The bytes of one segment (a single-segment .dnv), read from its offset; CRC checked."""
    with open(path, "rb") as f:
        f.seek(entry.offset - _SECTION.size)
        framing = f.read(_SECTION.size)
        data = f.read(entry.length)
    if len(framing) != _SECTION.size or len(data) != entry.length:
        raise BitstreamError("file is truncated (segment)")
    tag, length, crc = _SECTION.unpack(framing)
    if tag != SECTION_TAGS["SEGMENT"] or length != entry.length:
        raise BitstreamError("segment index points at something that is not a segment")
    if zlib.crc32(data) != crc:
        raise BitstreamError("segment is corrupted (CRC mismatch)")
    frames = _frames_of(data)
    if frames != entry.frames:      # else the index would say how many frames are rendered (and repeated)
        raise BitstreamError(f"segment at frame {entry.first_frame} holds {frames} frames, the index says "
                             f"{entry.frames}")
    return data


def read_color(path, entry: SegmentEntry):
    """The sample format of a segment (`bitstream.color_of`), from its first bytes only."""
    with open(path, "rb") as f:
        f.seek(entry.offset)
        return color_of(f.read(min(entry.length, 512)))


def read_segments(reader, segment_frames: int):
    """Yield (segment number, first frame, frames array) from a frame iterator, one segment at a time.

    Segments start every `segment_frames` frames; a last segment of a single frame is joined to the
    one before it (a segment needs 2 frames). Holds at most `segment_frames + 2` frames, and gives the
    same segments to every reader of the video (the processes of a distributed encode).
    """
    import numpy as np

    buffer, number, first = [], 0, 0
    for frame in reader:
        buffer.append(frame)
        if len(buffer) == segment_frames + 2:
            yield number, first, np.stack(buffer[:segment_frames])
            number, first, buffer = number + 1, first + segment_frames, buffer[segment_frames:]
    if buffer:
        yield number, first, np.stack(buffer)
