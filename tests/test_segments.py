"""Segmented files: planning, the index, random access to one segment, and damage detection."""
from fractions import Fraction

import numpy as np

import pytest

from nvcodec import bitstream
from nvcodec.bitstream import BitstreamError, Header
from nvcodec.segments import is_segmented, pack_segmented, read_index, read_segment, read_segments
from nvcodec.sizing import plan_for_params


@pytest.mark.parametrize("total,size", [(1, 300), (2, 300), (301, 300), (302, 300), (30, 3), (7, 2), (9, 2)])
def test_read_segments_covers_every_frame_once(total, size):
    frames = [np.full((2, 2, 3), i, np.int32) for i in range(total)]
    parts = list(read_segments(iter(frames), size))
    assert [n for n, _, _ in parts] == list(range(len(parts)))
    got = np.concatenate([p for _, _, p in parts])[:, 0, 0, 0]
    assert got.tolist() == list(range(total))
    assert all(first == n * size for n, first, _ in parts)
    lengths = [len(p) for _, _, p in parts]
    assert all(n == size for n in lengths[:-1]) and lengths[-1] <= size + 1
    if total >= 2:
        assert lengths[-1] >= 2


def _segment(frames: int, tag: bytes) -> bytes:
    arch = plan_for_params("dnerv", 64, 48, 5000).arch
    return bitstream.pack(Header(arch, frames, Fraction(25), 8), {"DECODER": tag * 10, "CONTENT": tag, "DIFF": tag})


def test_many_segments_round_trip_and_random_access(tmp_path):
    lengths = [3, 3, 2] * 40  # 120 segments: more than one byte's worth of sections
    segs, first = [], 0
    for i, n in enumerate(lengths):
        segs.append((first, _segment(n, bytes([i % 256]))))
        first += n
    path = tmp_path / "long.dnv"
    path.write_bytes(pack_segmented(64, 48, Fraction(25), segs))
    assert is_segmented(path)
    index = read_index(path)
    assert index.total_frames == sum(lengths) and len(index.entries) == len(lengths)
    wanted = index.segments_for(100, 104)
    assert [i for i, _ in wanted] == [i for i, (f, d) in enumerate(segs)
                                      if f < 104 and f + bitstream.unpack(d)[0].frames > 100]
    for i, entry in wanted:
        assert read_segment(path, entry) == segs[i][1]


def test_damaged_segmented_files(tmp_path):
    segs = [(0, _segment(3, b"a")), (3, _segment(4, b"b"))]
    data = pack_segmented(64, 48, Fraction(25), segs)
    path = tmp_path / "x.dnv"
    index_end = 6 + 9 + 24 + 2 * 20
    for bad, fragment in [(data[:20], "truncated"), (data[:8] + bytes([data[8] ^ 1]) + data[9:], "index"),
                          (data[:index_end + 30] + bytes([data[index_end + 30] ^ 4]) + data[index_end + 31:], "crc")]:
        path.write_bytes(bad)
        with pytest.raises(BitstreamError, match=f"(?i){fragment}"):
            index = read_index(path)
            for entry in index.entries:
                read_segment(path, entry)
