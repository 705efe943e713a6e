"""Hostile .dnv files: a fast subset of benchmarks/fuzz_dnv.py (which runs 10,000s of cases), and the
bugs it found. Every mutated file must decode or be refused with one line, never anything else."""
from __future__ import annotations

import struct
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from benchmarks.fuzz_dnv import (join_sections, join_segmented, make_seeds, mutate, run_case,
                                  split_sections, split_segmented)
from nvcodec import bitstream, memory
from nvcodec.compress import entropy
from nvcodec.compress.quantize import SCALE_INDEX_MAX
from nvcodec.models import Arch, ArchError
from nvcodec.segments import pack_segmented

# Little memory, so that a header declaring a big frame is refused quickly instead of decoded slowly.
SMALL_MEMORY = 256 * 2**20

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def seeds(testdata, tmp_path_factory):
    """Tiny encodes of a 64x48 crop: DNeRV on 3 frames, HNeRV on 2, DS-NeRV and HiNeRV on 3 (HiNeRV also trained
    for rate, so that its file holds the learned entropy models), each trained for one epoch; and a segmented file of
    the first two (frames 0-2 and 3-4)."""
    folder = tmp_path_factory.mktemp("seeds")
    specs = [("dnerv", 3, 8.0, (64, 48)), ("hnerv", 2, 10.0, (64, 48)), ("dsnerv", 3, 12.0, (64, 48)),
             ("hinerv", 3, 12.0, (64, 48)), ("hinerv", 3, 12.0, (64, 48), None, {"rate": True})]
    files = [p.read_bytes() for p in make_seeds(folder, testdata / "carphone_qcif_16f.mp4", specs, 1)]
    fps = bitstream.unpack(files[0])[0].fps
    return files + [pack_segmented(64, 48, fps, [(0, files[0]), (3, files[1])])]


def check(data: bytes):
    with mock.patch.object(memory, "available_bytes", lambda device: SMALL_MEMORY):
        outcome, detail = run_case(data)
    assert outcome in ("decoded", "rejected"), detail
    return outcome, detail


def test_seeds_decode(seeds):
    for data in seeds:
        assert check(data)[0] == "decoded"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.integers(0, 2**32 - 1))
def test_mutated_files_decode_or_fail_with_one_line(seeds, case):
    check(mutate(seeds, case)[0])


def edit_head(data: bytes, offset: int, fmt: str, *values) -> bytes:
    prefix, sections = split_sections(data)
    struct.pack_into(fmt, sections[0][1], offset, *values)
    return join_sections(prefix, sections)      # right lengths, forged CRCs


def test_header_declaring_a_huge_frame_is_refused_before_allocating(seeds):
    """Found by the fuzzer: more width and height in a header still decode (the embeddings' entropy
    blobs decode a larger count), and the frame was allocated: gigabytes from a 9 kB file."""
    outcome, detail = check(edit_head(seeds[0], 1, "<HH", 3072, 3072))
    assert outcome == "rejected" and "decoding one 3072x3072 frame needs" in detail and "GiB" in detail


def test_every_kernel_is_checked(seeds):
    with pytest.raises(ArchError):
        Arch("hnerv", 64, 64, (2, 2), (8, 8, 8), (1, 3), head_kernel=0)
    assert check(edit_head(seeds[0], 19, "<B", 9)) == ("rejected", "header describes an invalid network "
                                                               "(stride or kernel out of range)")


def test_non_finite_quantization_scales_are_refused(seeds):
    # The weights' scales are log-grid indices (always finite); a table's are float16.
    prefix, sections = split_sections(seeds[0])
    table = next(s for s in sections if s[0] not in (1, 2, 12) and s[1][0] in (0, 1))
    struct.pack_into("<H", table[1], 1, 0x7C00)         # the table's first float16 offset: +inf
    outcome, detail = check(join_sections(prefix, sections))
    assert outcome == "rejected" and "non-finite" in detail


def test_weight_scale_indices_out_of_range_are_refused(seeds):
    prefix, sections = split_sections(seeds[0])
    decoder = next(s for s in sections if s[0] == 2)
    assert decoder[1][0] == 3                           # the first tensor's scales are on the log grid
    modes = 0
    while decoder[1][modes] == 3:
        modes += 1
    length = struct.unpack_from("<I", decoder[1], modes)[0]
    constant = entropy.encode_symbols(np.full(1, SCALE_INDEX_MAX + 1))     # every index one past the grid
    decoder[1] = decoder[1][:modes] + struct.pack("<I", len(constant)) + constant + decoder[1][modes + 4 + length:]
    assert check(join_sections(prefix, sections)) == ("rejected", "DECODER section has a scale index out of range")


def edit_index(data: bytes, offset: int, fmt: str, *values) -> bytes:
    prefix, index, segments = split_segmented(data)
    struct.pack_into(fmt, index, offset, *values)
    return join_segmented(prefix, index, segments)      # forged CRCs


def test_index_frame_counts_must_match_the_segments(seeds):
    """Found by the fuzzer: an INDEX whose frame counts were edited so that they still add up made
    `dnv decode` render as many frames as the INDEX said, repeating a segment's last frame (gigabytes
    from a 50 kB file when decoded to an array) or leaving frames out."""
    for frames in (1, 1000):
        data = edit_index(seeds[-1], 12, "<I", 3 + frames)       # the total ...
        data = edit_index(data, 20 + 20 + 4, "<I", frames)       # ... and the frames of entry 1 (2 in its header)
        assert check(data) == ("rejected", f"segment at frame 3 holds 2 frames, the index says {frames}")


def test_index_offsets_must_point_past_the_index(seeds):
    """Found by the fuzzer: an entry's offset under 9 made `read_segment` seek before the start of the
    file (OSError: Invalid argument)."""
    for offset in (0, 8, 9, 20):
        assert check(edit_index(seeds[-1], 20 + 8, "<Q", offset)) == (
            "rejected", "segment index entry 0 is inconsistent with the file")


def test_every_byte_of_a_learned_table_section_changed_decodes_or_fails_with_one_line(seeds):
    """The rate-aware seed's first table section (transform 2 or 3: step, side information, stream), each byte
    replaced in turn."""
    from nvcodec import codec

    data = seeds[4]
    assert codec.info_of_bytes("seed", data)["learned_tensors"] > 0
    prefix, sections = split_sections(data)
    index = next(i for i, (tag, payload) in enumerate(sections)
                 if bitstream.TAG_NAMES[tag].startswith("GRID") and payload[0] in (2, 3))
    payload = bytes(sections[index][1])
    for pos in range(len(payload)):
        for value in (payload[pos] ^ 0x01, 0xFF):
            sections[index][1] = bytearray(payload[:pos] + bytes([value]) + payload[pos + 1:])
            check(join_sections(prefix, sections))
