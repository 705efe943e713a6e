"""Fuzz the .dnv reader: mutate valid files and check that every case ends well.

A seeded mutation loop. Each case takes one of a few small valid .dnv files (tiny CPU encodes of
carphone, made once and cached: DNeRV, HNeRV, DS-NeRV, and a segmented file), applies one to three
mutations, and runs it through what `dnv decode` and `dnv info` run: for a single-segment file
`decoding.load`, then `decoding.render` of the first, second and last frame; for a segmented file
`codec.info` (the INDEX and the first segment), then `codec.decode_to_array` of the whole file and of
its last frame alone (the INDEX, then each segment read from its offset, loaded and rendered).
Mutations: truncation, bit flips, byte sets, deletions and insertions, splices of sections or byte
ranges from another valid file, inflated length fields, edited header fields, dropped / duplicated /
reordered sections. In a segmented file these hit the sections inside one segment, the list of
segments (dropped, duplicated, reordered, retagged, spliced from another file; the INDEX rewritten to
match, mostly), or the INDEX itself (its video fields, count, and entries' first frames, frame counts,
offsets and lengths). Most cases get their section framing rebuilt with correct lengths and forged
CRCs, so that the mutation reaches the parsers behind the CRC check; the rest are raw (the framing
itself mutated, CRCs forged where the framing still parses, or not at all).

Every case runs in a worker process with an address-space limit (RLIMIT_AS) and a time limit (CPU
time: --time-limit seconds plus the decoding arithmetic the header declares at FLOPS_PER_SECOND, and
WALL_FACTOR times that in wall-clock time, so that a busy machine does not make false hangs), and
ends as one of:
    decoded    the file loaded and the frames rendered (uint8, the header's size; a segmented file: as
               many frames as its segments' headers hold, and the last the same when decoded alone)
    rejected   BitstreamError / CodecError with a one-line message (the reason is tallied)
    bug        any other exception, or an error message that is not one line
    memory     MemoryError or an allocator failure, or the case raised the worker's peak memory by more
               than --mem-case MB beyond what decoding a frame of the header's network takes (which
               the reader checks against the memory available)
    timeout    the case ran past its time limit
    crash      the worker died (signal, abort)
Anything but decoded / rejected is a bug; those files are saved under --findings. A case that
crashes or times out is first run once more in a fresh worker (on a shared machine a worker can be
killed from outside, or starved); only a second failure counts, and the report lists the reruns.

    python3 -m benchmarks.fuzz_dnv --cases 20000 --out benchmarks/results/fuzz
    python3 -m benchmarks.fuzz_dnv --replay 1234          # rerun one case in this process, with the traceback
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import random
import re
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

MAGIC = b"DNV\x1a"
SECTION = struct.Struct("<BII")
INDEX, SEGMENT = 7, 8                   # section tags of a segmented file (layout in nvcodec.segments)
COLOR_TAG = 12                          # the COLOR section's tag (nvcodec.bitstream; not imported: workers stay light)
INDEX_HEAD = struct.Struct("<HHIIII")   # width, height, fps_num, fps_den, total_frames, count
INDEX_ENTRY = struct.Struct("<IIQI")    # first_frame, frames, offset, length
CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "carphone_qcif_16f.mp4"  # runs from a clone
FLOPS_PER_SECOND = 1e9     # a slow CPU core: the time allowed for the arithmetic a header declares
WALL_FACTOR = 10           # a case may take this many times its CPU limit in wall-clock time (busy machine)
INTERESTING_U8 = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 63, 64, 127, 128, 200, 254, 255]
INTERESTING_U16 = [0, 1, 2, 16, 255, 256, 4095, 4096, 4097, 16383, 16384, 16385, 32767, 32768, 65535]
INTERESTING_U32 = [0, 1, 2, 4, 255, 65535, 65536, 1 << 20, (1 << 24) - 1, 1 << 28, (1 << 28) + 1,
                   (1 << 31) - 1, 1 << 31, 0xFFFFFFFE, 0xFFFFFFFF, 10_000_000, 10_000_001]


# --- seeds --------------------------------------------------------------------------------------

def seed_specs() -> list[tuple]:
    """(model, frames, bpp, frame size crop[, frames a segment or None[, training options]]): small, varied seeds of
    every model (each model's `fuzz_seeds`): odd sizes, more frames, a segmented file, rate-aware training."""
    from nvcodec.models import SPECS   # here: spawned workers import this module, not torch
    return [(name, *seed) for name, spec in SPECS.items() for seed in spec.fuzz_seeds]


def make_seeds(folder: Path, clip: Path = CLIP, specs=None, epochs: int = 3) -> list[Path]:
    """Encode the seed files (a few seconds each, on the CPU) unless `folder` has them already."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = seed_specs() if specs is None else specs
    seeds = []
    for i, (model, frames, bpp, crop, *rest) in enumerate(specs):
        segment_frames = rest[0] if rest else None
        train_options = rest[1] if len(rest) > 1 else {}
        # Both sample formats: the clip's own 4:2:0 planes (a COLOR section), or RGB (two of every four seeds).
        color = "rgb" if i % 4 >= 2 else "yuv420"
        name = (f"{model}_{frames}f_{bpp:g}bpp" + (f"_{crop[0]}x{crop[1]}" if crop else "")
                + (f"_seg{segment_frames}" if segment_frames else "")
                + "".join(f"_{k}{v}" for k, v in sorted(train_options.items())) + f"_{color}.dnv")
        path = folder / name
        if not path.is_file():
            from nvcodec import codec
            source = clip
            if crop:
                source = folder / f"crop_{crop[0]}x{crop[1]}.y4m"
                if not source.is_file():
                    from nvcodec.video import read_video, write_video
                    video, info = read_video(clip, frame_range=(0, frames))
                    write_video(source, video[:, : crop[1], : crop[0]].copy(), info.fps)
            codec.encode(source, path, bpp=bpp, model=model, frame_range=(0, frames), device="cpu",
                         epochs=epochs, prune_epochs=1, progress=False, segment_frames=segment_frames,
                         train_options=train_options, color=color)
        seeds.append(path)
    return seeds


# --- container surgery (lenient: works on files the reader would refuse) -------------------------

def split_sections(data: bytes) -> tuple[bytes, list[list]]:
    """(prefix of 6 bytes, [[tag, bytearray payload], ...]) of a well-formed file."""
    pos, out = 6, []
    for _ in range(data[5]):
        tag, length, _ = SECTION.unpack_from(data, pos)
        pos += SECTION.size
        out.append([tag, bytearray(data[pos:pos + length])])
        pos += length
    return data[:6], out


def join_sections(prefix: bytes, sections: list[list]) -> bytes:
    """Rebuild the framing: the section count, every length and every CRC right (forged)."""
    out = bytearray(prefix[:5] + bytes([len(sections) & 0xFF]))
    for tag, payload in sections:
        out += SECTION.pack(tag & 0xFF, len(payload), zlib.crc32(payload)) + payload
    return bytes(out)


def is_segmented(data: bytes) -> bool:
    """What `segments.is_segmented` says of a file with these bytes (the first section is an INDEX)."""
    return len(data) > 6 and data[:4] == MAGIC and data[6] == INDEX


def section_starts(data: bytes) -> list[int]:
    """Offsets of the sections whose framing fits in the file, in order: as many as the count byte
    says, or in a segmented file (count 0) every one up to the end."""
    starts, pos = [], 6
    count = data[5] if len(data) > 6 and not (data[5] == 0 and data[6] == INDEX) else len(data)
    while len(starts) < count and pos + SECTION.size <= len(data):
        length = SECTION.unpack_from(data, pos)[1]
        if pos + SECTION.size + length > len(data):
            break
        starts.append(pos)
        pos += SECTION.size + length
    return starts


def forge_crcs(data: bytes) -> bytes:
    """Rewrite the CRC of every section whose declared length still fits in the file."""
    out = bytearray(data)
    for pos in section_starts(data):
        _, length, _ = SECTION.unpack_from(out, pos)
        payload = out[pos + SECTION.size: pos + SECTION.size + length]
        struct.pack_into("<I", out, pos + 5, zlib.crc32(payload))
    return bytes(out)


def split_segmented(data: bytes) -> tuple[bytes, bytearray, list[list]]:
    """(prefix, INDEX payload, [[tag, bytearray payload], ...] of the SEGMENTs) of a well-formed segmented file."""
    sections = []
    for pos in section_starts(data):
        tag, length, _ = SECTION.unpack_from(data, pos)
        sections.append([tag, bytearray(data[pos + SECTION.size: pos + SECTION.size + length])])
    return data[:6], sections[0][1], sections[1:]


def singles(data: bytes) -> list[bytes]:
    """A file's single-segment .dnv files: itself, or the segments of a segmented file."""
    return [bytes(s[1]) for s in split_segmented(data)[2]] if is_segmented(data) else [data]


def segment_frames(segment: bytes) -> int:
    """The frame count in a segment's HEAD (1 where there is none to read)."""
    return struct.unpack_from("<I", segment, 20)[0] if len(segment) >= 24 and segment[6] == 1 else 1


def index_for(index: bytes, segments: list[list]) -> bytearray:
    """The INDEX that matches these segments (as `segments.pack_segmented` writes it): count, entries
    (first frame, the frames in the segment's header, offset, length) and total frames; the video
    fields (width, height, frame rate) kept from `index`."""
    pos = 6 + SECTION.size + INDEX_HEAD.size + INDEX_ENTRY.size * len(segments)
    entries, first = bytearray(), 0
    for _, payload in segments:
        frames = segment_frames(payload)
        entries += INDEX_ENTRY.pack(first & 0xFFFFFFFF, frames, pos + SECTION.size, len(payload))
        first, pos = first + frames, pos + SECTION.size + len(payload)
    return bytearray(index[:12]) + struct.pack("<II", first & 0xFFFFFFFF, len(segments)) + entries


def join_segmented(prefix: bytes, index: bytes, segments: list[list]) -> bytes:
    """A segmented file: the framing rebuilt (every length and CRC right), the INDEX as given."""
    data = bytearray(join_sections(prefix, [[INDEX, index]] + segments))
    data[5] = 0         # a segmented file's count byte: the INDEX says what follows
    return bytes(data)


# --- mutations ----------------------------------------------------------------------------------

def _pick(rng: random.Random, sections):
    return rng.choice(sections) if sections else None


def _interesting(rng: random.Random, size: int, current: int | None = None) -> int:
    pool = {1: INTERESTING_U8, 2: INTERESTING_U16, 4: INTERESTING_U32}[size]
    roll = rng.random()
    if current is not None and roll < 0.3:
        return max(0, min((1 << (8 * size)) - 1, current + rng.choice([-2, -1, 1, 2, 8, 64, 1024])))
    if roll < 0.8:
        return rng.choice(pool)
    return rng.getrandbits(8 * size)


def m_bitflip(rng, sections, other):
    s = _pick(rng, sections)
    if s and s[1]:
        for _ in range(rng.choice([1, 1, 2, 3, 8])):
            i = rng.randrange(len(s[1]) * 8)
            s[1][i // 8] ^= 1 << (i % 8)


def m_byteset(rng, sections, other):
    s = _pick(rng, sections)
    if s and s[1]:
        for _ in range(rng.randint(1, 4)):
            s[1][rng.randrange(len(s[1]))] = _interesting(rng, 1)


def m_truncate(rng, sections, other):
    s = _pick(rng, sections)
    if s:
        del s[1][rng.randrange(len(s[1]) + 1):]


def m_delete(rng, sections, other):
    s = _pick(rng, sections)
    if s and s[1]:
        i = rng.randrange(len(s[1]))
        del s[1][i:i + rng.choice([1, 2, 4, 16, 256])]


def m_insert(rng, sections, other):
    s = _pick(rng, sections)
    if s:
        i = rng.randrange(len(s[1]) + 1)
        n = rng.choice([1, 2, 4, 16, 1000])
        s[1][i:i] = rng.randbytes(n) if rng.random() < 0.5 else bytes([_interesting(rng, 1)]) * n


def m_field(rng, sections, other):
    """Set a 1-, 2- or 4-byte little-endian field to an edge value (header fields, scales, lengths)."""
    heads = [s for s in sections if s[0] == 1]
    s = heads[0] if heads and rng.random() < 0.5 else _pick(rng, sections)
    size = rng.choice([1, 2, 4])
    if s and len(s[1]) >= size:
        i = rng.randrange(len(s[1]) - size + 1)
        cur = int.from_bytes(s[1][i:i + size], "little")
        s[1][i:i + size] = _interesting(rng, size, cur).to_bytes(size, "little")


def head_fields(head: bytes) -> list[tuple[str, int, int]]:
    """(name, offset, size) of every field of a HEAD payload (layout in nvcodec.bitstream)."""
    fields = [("model", 0, 1), ("width", 1, 2), ("height", 3, 2), ("frames", 5, 4), ("fps_num", 9, 4),
              ("fps_den", 13, 4), ("quant_bits", 17, 1), ("nstages", 18, 1), ("head_kernel", 19, 1)]
    n = head[18] if len(head) > 18 else 0
    fields += [(f"stride{i}", 20 + i, 1) for i in range(n)] + [(f"kernel{i}", 20 + n + i, 1) for i in range(n)]
    fields += [(f"width{i}", 20 + 2 * n + 2 * i, 2) for i in range(n + 1)]
    pos = 20 + 2 * n + 2 * (n + 1)
    fields += [(k, pos + i, 1) for i, k in enumerate(("emb_ch", "diff_ch", "fuse_stage", "diff_up",
                                                       "diff_kernel", "ccu_kernel"))]
    if head and head[0] == 2:       # DS-NeRV: the numbers of static and dynamic codes, attention heads
        fields += [("static_codes", pos + 6, 4), ("dynamic_codes", pos + 10, 4), ("heads", pos + 14, 1)]
    return [f for f in fields if f[1] + f[2] <= len(head)]


def m_color(rng, sections, other):
    """Change a byte of the COLOR section (sample format, matrix, range, primaries, transfer), or add one."""
    colors = [s for s in sections if s[0] == COLOR_TAG]
    if not colors:
        sections.insert(min(1, len(sections)), [COLOR_TAG, bytearray([1, 1, 1, 1, 1])])
        return
    payload = colors[0][1]
    if payload:
        i = rng.randrange(len(payload))
        payload[i] = rng.choice([_interesting(rng, 1), payload[i] + 1 & 255, rng.randrange(24)])


def m_header(rng, sections, other):
    """Change one header field: an edge value, or a scaled one (a grown count still decodes)."""
    heads = [s for s in sections if s[0] == 1]
    if not heads or not head_fields(heads[0][1]):
        return
    head = heads[0][1]
    if rng.random() < 0.25 and len(head) >= 5:   # a bigger frame: width and height together
        w, h = struct.unpack_from("<HH", head, 1)
        k = rng.choice([2, 4, 8, 16, 32, 64, 128])
        struct.pack_into("<HH", head, 1, min(w * k, 65535), min(h * k, 65535))
        return
    name, off, size = rng.choice(head_fields(head))
    cur = int.from_bytes(head[off:off + size], "little")
    if rng.random() < 0.5:
        new = cur * rng.choice([2, 3, 4, 8, 16, 64, 1000]) + rng.choice([0, 0, 1, 7])
    else:
        new = _interesting(rng, size, cur)
    head[off:off + size] = (new % (1 << (8 * size))).to_bytes(size, "little")


def m_inflate(rng, sections, other):
    """Find u32 fields that look like the length of what follows them (entropy blobs) and change them."""
    s = _pick(rng, sections)
    if not s:
        return
    p = s[1]
    spots = [i for i in range(len(p) - 3) if 0 < struct.unpack_from("<I", p, i)[0] <= len(p) - i - 4]
    if spots:
        i = rng.choice(spots)
        cur = struct.unpack_from("<I", p, i)[0]
        new = rng.choice([cur + 1, cur - 1, cur + rng.randint(2, 1 << 16), 0, 0xFFFFFFFF, 1 << 28,
                          len(p), _interesting(rng, 4)])
        struct.pack_into("<I", p, i, new & 0xFFFFFFFF)


def m_splice_section(rng, sections, other):
    """Put another file's section (same tag mostly) in place of one of ours."""
    s, o = _pick(rng, sections), _pick(rng, other)
    if s and o:
        same = [x for x in other if x[0] == s[0]]
        if same and rng.random() < 0.7:
            o = rng.choice(same)
        s[1] = bytearray(o[1])
        if rng.random() < 0.2:
            s[0] = o[0]


def m_splice_bytes(rng, sections, other):
    s, o = _pick(rng, sections), _pick(rng, other)
    if s and o and s[1] and o[1]:
        i, j = rng.randrange(len(s[1])), rng.randrange(len(o[1]))
        n = rng.choice([1, 4, 16, 64, 512])
        s[1][i:i + n] = o[1][j:j + n]


def m_sections(rng, sections, other):
    """Drop, duplicate, reorder or retag sections."""
    if not sections:
        return
    op = rng.randrange(5)
    i = rng.randrange(len(sections))
    if op == 0:
        del sections[i]
    elif op == 1:
        sections.insert(rng.randrange(len(sections) + 1), [sections[i][0], bytearray(sections[i][1])])
    elif op == 2:
        rng.shuffle(sections)
    elif op == 3:
        sections[i][0] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, COLOR_TAG, 255])
    else:
        sections.append([rng.choice([2, 3, 4, 5, 6, 8, 9, COLOR_TAG]),
                         bytearray(rng.randbytes(rng.choice([0, 5, 8, 100])))])


def m_index(rng, sections, other):
    """Edit a field of a segmented file's INDEX: width, height, frame rate, total frames, count, or an
    entry's first frame, frames, offset or length. A changed frame count is half the time carried
    into the later entries' first frames and the total, so that the INDEX still adds up."""
    index = sections[0][1]
    entries = max(0, (len(index) - INDEX_HEAD.size) // INDEX_ENTRY.size)
    if entries and rng.random() < 0.7:
        i = rng.randrange(entries)
        base = INDEX_HEAD.size + INDEX_ENTRY.size * i
        off, size = rng.choice([(base, 4), (base + 4, 4), (base + 8, 8), (base + 16, 4)])
        if off == base + 4 and rng.random() < 0.5:
            cur = struct.unpack_from("<I", index, off)[0]
            new = _interesting(rng, 4, cur)
            struct.pack_into("<I", index, off, new)
            for pos in [12] + [INDEX_HEAD.size + INDEX_ENTRY.size * j for j in range(i + 1, entries)]:
                struct.pack_into("<I", index, pos, (struct.unpack_from("<I", index, pos)[0] + new - cur) & 0xFFFFFFFF)
            return
    else:
        off, size = rng.choice([(0, 2), (2, 2), (4, 4), (8, 4), (12, 4), (16, 4)])
    if off + size > len(index):
        return
    cur = int.from_bytes(index[off:off + size], "little")
    if size == 8:
        new = rng.choice([cur - 9, cur - 1, cur + 1, cur + 9, 0, 1 << 32, 1 << 63, (1 << 64) - 1,
                          _interesting(rng, 4, cur)])
    else:
        new = _interesting(rng, size, cur)
    index[off:off + size] = (new % (1 << (8 * size))).to_bytes(size, "little")


STRUCTURAL = [m_bitflip, m_byteset, m_truncate, m_delete, m_insert, m_field, m_header, m_header, m_inflate,
              m_splice_section, m_splice_bytes, m_sections, m_color]


def raw_mutation(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """Mutations of the file as bytes, framing included."""
    b = bytearray(data)
    kind = rng.choice(["raw_truncate", "raw_bitflip", "raw_length", "raw_count", "raw_head"])
    if kind == "raw_truncate":
        del b[rng.randrange(len(b) + 1):]
    elif kind == "raw_bitflip":
        for _ in range(rng.choice([1, 2, 4])):
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif kind == "raw_length" and section_starts(b):    # a section's length field
        i = rng.choice(section_starts(b)) + 1
        cur = struct.unpack_from("<I", b, i)[0]
        struct.pack_into("<I", b, i, rng.choice([cur + 1, cur - 1, 0, 0xFFFFFFFF, len(b), _interesting(rng, 4)])
                         & 0xFFFFFFFF)
    elif kind == "raw_count":
        b[5] = _interesting(rng, 1)
    elif kind == "raw_head":        # magic and version
        b[rng.randrange(6)] = _interesting(rng, 1)
    return kind, bytes(b)


def mutate_segmented(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, list[str]]:
    """Mutations of a segmented file: inside one segment (the mutations of a single-segment file), of
    the list of segments, or of the INDEX. After changes to the segments the INDEX is mostly
    rewritten to match them (so that they reach the segments' decoding); INDEX edits come last."""
    prefix, index, segs = split_segmented(data)
    others = [[SEGMENT, bytearray(s)] for s in singles(other)]
    kinds, index_edits, touched = ["segmented"], [], False
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        roll = rng.random()
        if roll < 0.45:             # inside one segment
            s = _pick(rng, segs)
            fn = rng.choice(STRUCTURAL)
            try:
                inner_prefix, inner = split_sections(bytes(s[1]))
            except (TypeError, IndexError, struct.error):       # no segment, or one no longer a .dnv
                continue
            fn(rng, inner, split_sections(bytes(_pick(rng, others)[1]))[1])
            s[1] = bytearray(join_sections(inner_prefix, inner))
            kinds.append(fn.__name__[2:])
        elif roll < 0.6:            # the list of segments
            fn = rng.choice([m_sections, m_sections, m_splice_section])
            fn(rng, segs, others)
            kinds.append("segment_" + fn.__name__[2:])
        else:                       # the INDEX
            index_edits.append(rng.choice([m_index, m_index, m_index, m_bitflip, m_truncate, m_insert, m_inflate]))
            name = index_edits[-1].__name__[2:]
            kinds.append("index" if name == "index" else "index_" + name)
        touched = touched or roll < 0.6
    if touched:
        if rng.random() < 0.8:
            index = index_for(index, segs)
        else:
            kinds.append("stale_index")
    for fn in index_edits:
        fn(rng, [[INDEX, index]], [])
    return join_segmented(prefix, index, segs), kinds


def seed_of(case: int, seeds: int, master_seed: int = 0) -> int:
    """The number of the seed file that case `case` mutates (the first draw of `mutate`)."""
    return random.Random(f"{master_seed}:{case}").randrange(seeds)


def mutate(seeds: list[bytes], case: int, master_seed: int = 0) -> tuple[bytes, list[str]]:
    """The file of case number `case`: deterministic in (seeds, case, master_seed)."""
    rng = random.Random(f"{master_seed}:{case}")
    a = rng.randrange(len(seeds))
    b = rng.randrange(len(seeds))
    if is_segmented(seeds[a]):
        if rng.random() < 0.8:
            data, kinds = mutate_segmented(rng, seeds[a], seeds[b])
            if rng.random() < 0.1:
                kind, data = raw_mutation(rng, data)
                kinds.append(kind)
        else:
            kind, data = raw_mutation(rng, seeds[a])
            kinds = ["segmented", kind]
            if rng.random() < 0.5:
                data = forge_crcs(data)
                kinds.append("forged")
        return data, kinds
    prefix, sections = split_sections(seeds[a])
    _, other = split_sections(singles(seeds[b])[0])
    kinds = []
    if rng.random() < 0.8:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            fn = rng.choice(STRUCTURAL)
            fn(rng, sections, other)
            kinds.append(fn.__name__[2:])
        data = join_sections(prefix, sections)
        if rng.random() < 0.1:
            kind, data = raw_mutation(rng, data)
            kinds.append(kind)
    else:
        kind, data = raw_mutation(rng, seeds[a])
        kinds.append(kind)
        if rng.random() < 0.5:
            data = forge_crcs(data)
            kinds.append("forged")
    return data, kinds


# --- running one case ---------------------------------------------------------------------------

def decode_flops(arch) -> int:
    """Arithmetic of decoding one frame (2 x the multiply-adds of every convolution)."""
    import torch

    from nvcodec.memory import decoder_input_shapes_example
    from nvcodec.models import Decoder
    total = 0

    def count(m, _inputs, out):
        nonlocal total
        total += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    with torch.device("meta"), torch.no_grad():
        decoder = Decoder(arch)
        for m in decoder.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.register_forward_hook(count)
        decoder(*decoder_input_shapes_example(arch))
    return total


def run_case(data: bytes, on_loaded=None) -> tuple[str, str]:
    """Load and render like `dnv decode`; (outcome, detail). Raises nothing but what a bug raises.

    `on_loaded(loaded)` is called between loading and rendering (the harness extends the time limit
    by the work the header declares: a valid header may describe a big frame and a wide network).
    """
    import numpy as np
    import torch

    from nvcodec import bitstream, decoding
    from nvcodec.codec import CodecError

    try:
        if is_segmented(data):
            return run_segmented(data, on_loaded)
        bitstream.section_sizes(data)
        loaded = decoding.load(data, torch.device("cpu"))
        if on_loaded is not None:
            on_loaded(loaded)
        n = loaded.header.frames
        for idx in sorted({0, min(1, n - 1), n - 1}):
            (out,) = decoding.render(loaded, torch.device("cpu"), batch=1, frames=range(idx, idx + 1))
            assert out.shape == (1, loaded.header.height, loaded.header.width, 3) and out.dtype == np.uint8
            if loaded.header.arch.color.yuv:    # what PNG output and --ref scoring do with the colour description
                from nvcodec.video import yuv_to_rgb
                assert yuv_to_rgb(out, loaded.header.arch.color).shape == out.shape
        return "decoded", ""
    except (bitstream.BitstreamError, CodecError) as e:
        message = str(e)
        if not message.strip() or "\n" in message.strip():
            return "bug", f"{type(e).__name__} without a one-line message: {message!r}"
        return "rejected", message


def run_segmented(data: bytes, on_loaded=None) -> tuple[str, str]:
    """`run_case` of a segmented file, from a file as `dnv info` and `dnv decode` read it: `codec.info`
    (the INDEX and the first segment), `codec.decode_to_array` of every frame (each segment read from
    the offset the INDEX gives, loaded and rendered) and of the last frame alone (random access).
    Decoded means every frame is there once: as many as the segments' headers hold."""
    from unittest import mock

    import numpy as np

    from nvcodec import codec, decoding

    load, held = decoding.load, []

    def load_and_declare(*args, **kwargs):
        loaded = load(*args, **kwargs)
        held.append(loaded.header.frames)
        if on_loaded is not None:
            on_loaded(loaded)
        return loaded

    with tempfile.TemporaryDirectory() as folder, mock.patch.object(decoding, "load", load_and_declare):
        path = Path(folder) / "case.dnv"
        path.write_bytes(data)
        codec.info(path)
        held.clear()
        frames, meta = codec.decode_to_array(path, device="cpu", batch=1)
        n = meta["coded_frames"]
        assert frames.shape == (n, meta["height"], meta["width"], 3) and frames.dtype == np.uint8
        assert sum(held) == n, f"{n} frames decoded from segments that hold {held} frames"
        last, _ = codec.decode_to_array(path, device="cpu", batch=1, frame_range=(n - 1, n))
        assert np.array_equal(last, frames[-1:]), "the last frame decodes differently alone"
    return "decoded", ""


def reason_key(message: str) -> str:
    """A rejection message with its numbers taken out, to tally the reasons."""
    return re.sub(r"\d+", "N", message)[:90]


def _worker(conn, seed_paths, master_seed, mem_limit):
    import resource

    if mem_limit:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    import torch
    torch.set_num_threads(1)
    import nvcodec.decoding  # noqa: F401 - imported before the first case, whose time limit excludes it
    seeds = [Path(p).read_bytes() for p in seed_paths]
    conn.send(("ready",))
    while True:
        case = conn.recv()
        if case is None:
            return
        data, kinds = mutate(seeds, case, master_seed)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        def declare_work(loaded):
            from nvcodec.memory import decode_bytes_per_frame
            arch = loaded.header.arch
            conn.send(("work", 3 * decode_flops(arch) / FLOPS_PER_SECOND, decode_bytes_per_frame(arch) / 2**20))

        try:
            outcome, detail = run_case(data, declare_work)
        except MemoryError:
            outcome, detail = "memory", "MemoryError"
        except Exception as e:  # noqa: BLE001 - that is what we are looking for
            text = " ".join(str(e).split())[:200]
            outcome = "memory" if "alloc" in text.lower() else "bug"
            detail = f"{type(e).__name__}: {text}"
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        conn.send(("result", case, outcome, detail, kinds, grown_mb))


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (Linux; elsewhere the wall clock, so limits are then wall-clock)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


class Pool:
    """Workers fed one case at a time; a worker that times out or dies is replaced."""

    def __init__(self, jobs, seed_paths, master_seed, mem_limit):
        self.ctx = mp.get_context("spawn")
        self.args = (seed_paths, master_seed, mem_limit)
        self.slots = [self._start() for _ in range(jobs)]

    def _start(self):
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, *self.args), daemon=True)
        proc.start()
        child.close()
        if not parent.poll(600) or parent.recv() != ("ready",):    # a loaded machine may take a while
            raise RuntimeError("a fuzz worker did not start")
        return {"proc": proc, "conn": parent, "case": None}

    def restart(self, i):
        self.slots[i]["proc"].kill()
        self.slots[i]["proc"].join()
        self.slots[i] = self._start()

    def close(self):
        for s in self.slots:
            try:
                s["conn"].send(None)
            except OSError:
                pass
            s["proc"].join(timeout=5)
            if s["proc"].is_alive():
                s["proc"].kill()


def fuzz(seed_paths, cases, start, master_seed, jobs, time_limit, mem_limit, mem_case_mb, findings: Path,
         log=print):
    counts = collections.Counter()
    reasons = collections.Counter()
    by_kind = collections.defaultdict(collections.Counter)
    by_seed = collections.defaultdict(collections.Counter)
    bugs = []
    seeds = [Path(p).read_bytes() for p in seed_paths]
    pool = Pool(jobs, seed_paths, master_seed, mem_limit)
    pending = iter(range(start, start + cases))
    retry, first_failure, reruns = collections.deque(), {}, []
    done, started = 0, time.time()

    def record(case, outcome, detail, kinds, grown_mb=0.0):
        nonlocal done
        kinds = kinds or mutate(seeds, case, master_seed)[1]
        if case in first_failure:
            reruns.append({"case": case, "first": first_failure[case], "then": outcome})
        if outcome in ("decoded", "rejected") and grown_mb > mem_case_mb:
            outcome, detail = "memory", f"peak memory grew by {grown_mb:.0f} MB ({outcome}: {detail})"
        counts[outcome] += 1
        for k in set(kinds):
            by_kind[k][outcome] += 1
        by_seed[Path(seed_paths[seed_of(case, len(seeds), master_seed)]).name][outcome] += 1
        if outcome == "rejected":
            reasons[reason_key(detail)] += 1
        elif outcome != "decoded":
            bugs.append({"case": case, "outcome": outcome, "detail": detail, "mutations": kinds})
            findings.mkdir(parents=True, exist_ok=True)
            (findings / f"case{case}_{outcome}.dnv").write_bytes(mutate(seeds, case, master_seed)[0])
            log(f"  case {case}: {outcome}: {detail} ({'+'.join(kinds)})")
        done += 1
        if done % 1000 == 0:
            log(f"{done}/{cases} cases, {time.time() - started:.0f} s: {dict(counts)}")

    def fail(i, outcome, detail):
        """A crash or timeout: once, the case runs again in a fresh worker (an outside kill or a stalled
        machine is not the decoder's doing); the second time it counts."""
        case = pool.slots[i]["case"]
        if case in first_failure:
            record(case, outcome, detail, [])
        else:
            first_failure[case] = f"{outcome}: {detail}"
            retry.append(case)
            log(f"  case {case}: {outcome} ({detail}); running it again in a fresh worker")
        pool.restart(i)
        feed(i)

    def feed(i):
        case = retry.popleft() if retry else next(pending, None)
        slot = pool.slots[i]
        slot["case"], slot["declared_mb"] = case, 0.0
        slot["limit"], slot["cpu0"], slot["wall0"] = time_limit, cpu_seconds(slot["proc"].pid), time.time()
        if case is not None:
            slot["conn"].send(case)

    for i in range(len(pool.slots)):
        feed(i)
    while any(s["case"] is not None for s in pool.slots):
        for i, slot in enumerate(pool.slots):
            if slot["case"] is None:
                continue
            if slot["conn"].poll(0.01):
                try:
                    message = slot["conn"].recv()
                except (EOFError, OSError):
                    fail(i, "crash", f"worker died (exit code {slot['proc'].exitcode})")
                    continue
                if message[0] == "work":   # the header declares this much arithmetic and memory: allow for it
                    slot["limit"] += message[1]
                    slot["declared_mb"] = message[2]
                    continue
                _, case, outcome, detail, kinds, grown = message
                record(case, outcome, detail, kinds, grown - slot["declared_mb"])
                if outcome == "memory" or grown > 256:
                    pool.restart(i)   # start the next case from a fresh high-water mark
                feed(i)
            elif not slot["proc"].is_alive():
                fail(i, "crash", f"worker died (exit code {slot['proc'].exitcode})")
            elif (cpu_seconds(slot["proc"].pid) - slot["cpu0"] > slot["limit"]
                  or time.time() - slot["wall0"] > WALL_FACTOR * slot["limit"]):
                fail(i, "timeout", f"over {slot['limit']:.0f} s of CPU or {WALL_FACTOR}x that of wall clock")
    pool.close()
    return {"counts": counts, "reasons": reasons, "by_kind": by_kind, "by_seed": by_seed, "bugs": bugs,
            "reruns": reruns, "seconds": time.time() - started}


# --- report -------------------------------------------------------------------------------------

def write_report(out: Path, result: dict, args, command: str, seed_names: list[str]) -> None:
    from benchmarks.common import machine, write_file   # here: spawned workers import this module, not torch

    ran_on = machine()
    counts = result["counts"]
    total = sum(counts.values())
    report = {
        "cases": total, "outcomes": dict(counts.most_common()),
        "bugs": len(result["bugs"]), "bug_cases": result["bugs"][:50], "reruns": result["reruns"],
        "rejection_reasons": dict(result["reasons"].most_common(40)),
        "by_mutation": {k: dict(v) for k, v in sorted(result["by_kind"].items())},
        "by_seed": {k: dict(result["by_seed"].get(k, {})) for k in seed_names},
        "command": command, "master_seed": args.seed, "first_case": args.start,
        "time_limit_s": args.time_limit, "address_space_limit_mb": args.mem_limit,
        "per_case_memory_growth_limit_mb": args.mem_case, "jobs": args.jobs,
        "seconds": round(result["seconds"], 1), "machine": ran_on["machine"], "date": ran_on["date"],
        "python": ran_on["python"], "torch": ran_on["torch"], "seed_files": seed_names,
    }
    write_file(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    lines = [
        "# Fuzzing the .dnv reader", "",
        f"`{command}` on {report['machine']}, {report['date']} (Python {report['python']}, torch {report['torch']}).",
        "", f"**{total:,} cases in {report['seconds']:.0f} s; {report['bugs']} bugs.** Each case: one of "
        f"{len(seed_names)} valid seed files ({', '.join(seed_names)}), one to three mutations, then "
        "`decoding.load` and `decoding.render` of the first, second and last frame (a segmented file: "
        "`codec.info`, then `codec.decode_to_array` of every frame and of the last one alone, as `dnv info` "
        "and `dnv decode` read it: the INDEX, then each segment from its offset), in a worker limited to "
        f"{args.mem_limit} MB of address space and {args.time_limit:g} s of CPU time (plus the decoding "
        f"arithmetic the header declares, at {FLOPS_PER_SECOND:.0e} flop/s; {WALL_FACTOR}x that in wall-clock "
        "time). A case that adds more than "
        f"{args.mem_case:g} MB to the worker's peak memory beyond what decoding one frame of its header's "
        "network takes (the amount the reader checks against the memory available) counts as a memory bug.",
        "",
        "| outcome | cases | share |", "|---|---:|---:|",
    ]
    for k in ("decoded", "rejected", "bug", "memory", "timeout", "crash"):
        lines.append(f"| {k} | {counts.get(k, 0):,} | {100 * counts.get(k, 0) / max(total, 1):.2f} % |")
    lines += ["", "What stopped the rejected files (numbers replaced by N; the 15 most frequent):", "",
              "| reason | cases |", "|---|---:|"]
    lines += [f"| {r} | {n:,} |" for r, n in result["reasons"].most_common(15)]
    lines += ["", "Outcomes by seed file:", "", "| seed | decoded | rejected | other |", "|---|---:|---:|---:|"]
    for k in seed_names:
        v = result["by_seed"].get(k, {})
        other = sum(n for o, n in v.items() if o not in ("decoded", "rejected"))
        lines.append(f"| {k} | {v.get('decoded', 0):,} | {v.get('rejected', 0):,} | {other:,} |")
    lines += ["", "Outcomes by mutation (a case may stack several; `segmented`: every case of the segmented "
              "seed, `index*`: edits of its INDEX, `segment_*`: of its list of segments):", "",
              "| mutation | decoded | rejected | other |", "|---|---:|---:|---:|"]
    for k, v in sorted(result["by_kind"].items()):
        other = sum(n for o, n in v.items() if o not in ("decoded", "rejected"))
        lines.append(f"| {k} | {v.get('decoded', 0):,} | {v.get('rejected', 0):,} | {other:,} |")
    if result["reruns"]:
        lines += ["", f"{len(result['reruns'])} cases crashed or ran out of time once and were run again in a "
                  "fresh worker (first outcome; outcome of the second run):", ""]
        lines += [f"- case {r['case']}: {r['first']}; then {r['then']}" for r in result["reruns"][:30]]
    if result["bugs"]:
        lines += ["", "Bug cases (rerun one with `--replay CASE`):", ""]
        lines += [f"- case {b['case']}: {b['outcome']}: {b['detail']}" for b in result["bugs"][:30]]
    write_file(out.with_suffix(".md"), "\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--start", type=int, default=0, help="first case number")
    p.add_argument("--seed", type=int, default=0, help="master seed of the mutations")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--time-limit", type=float, default=20.0, help="CPU seconds per case (plus the declared work)")
    p.add_argument("--mem-limit", type=int, default=4096, help="address space of a worker, MB")
    p.add_argument("--mem-case", type=float, default=512, help="most MB a case may add to the peak")
    p.add_argument("--seeds", type=Path, default=Path(tempfile.gettempdir()) / "dnv_fuzz_seeds")
    p.add_argument("--findings", type=Path, default=Path(tempfile.gettempdir()) / "dnv_fuzz_findings")
    p.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    p.add_argument("--replay", type=int, default=None, help="run one case here and show its traceback")
    args = p.parse_args(argv)

    seed_paths = [str(x) for x in make_seeds(args.seeds)]
    seeds = [Path(x).read_bytes() for x in seed_paths]
    if args.replay is not None:
        data, kinds = mutate(seeds, args.replay, args.seed)
        print(f"case {args.replay}: {'+'.join(kinds)}, {len(data)} bytes")
        print(run_case(data))
        return
    print(f"{args.cases} cases from {len(seeds)} seeds, {args.jobs} workers", flush=True)
    result = fuzz(seed_paths, args.cases, args.start, args.seed, args.jobs, args.time_limit,
                  args.mem_limit * 2**20, args.mem_case, args.findings, log=lambda m: print(m, flush=True))
    counts = result["counts"]
    print(f"done: {sum(counts.values())} cases in {result['seconds']:.0f} s: {dict(counts)}")
    if args.out:
        command = "python3 -m benchmarks.fuzz_dnv " + " ".join(argv if argv is not None else sys.argv[1:])
        write_report(args.out, result, args, command, [Path(x).name for x in seed_paths])
    sys.exit(1 if result["bugs"] else 0)


if __name__ == "__main__":
    main()
