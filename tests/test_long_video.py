"""Segmented encodes on the CPU: many segments, index, random access, and a 2-process encode."""
import json

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nvcodec import codec, metrics, segments
from nvcodec.cli import main
from nvcodec.video import read_video

FAST = dict(bpp=4.0, epochs=3, prune_epochs=1, device="cpu", progress=False, frame_range=(0, 11))


@pytest.fixture(scope="module")
def clip(testdata):
    return testdata / "carphone_qcif_16f.mp4"


@pytest.fixture(scope="module")
def segmented(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "long.dnv"
    # The thread count a worker of a 2-process CPU encode gets, so that the 2-process test can ask
    # for identical bytes: a CPU convolution's result depends on how many threads share its sums.
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        report = codec.encode(clip, out, segment_frames=3, **FAST)
    finally:
        torch.set_num_threads(threads)
    return out, report


def test_segments_in_the_file_and_the_report(segmented):
    out, report = segmented
    assert segments.is_segmented(out)
    index = segments.read_index(out)
    # 11 frames in segments of 3: 3, 3, 3, then 2 (a 1-frame tail would be joined to its neighbour)
    assert [e.frames for e in index.entries] == [3, 3, 3, 2]
    assert [s["frames"] for s in report["segments"]] == [3, 3, 3, 2]
    assert report["bytes"] == out.stat().st_size and report["frames"] == 11
    assert report["bpp"] == pytest.approx(out.stat().st_size * 8 / (176 * 144 * 11))
    info = codec.info(out)
    assert info["segments"] == 4 and info["frames"] == 11


def test_decode_agrees_with_encode_and_random_access(segmented, clip, tmp_path):
    out, report = segmented
    dec = codec.decode(out, tmp_path / "all.mkv", ref=clip, ref_range=(0, 11), device="cpu")
    assert abs(dec["psnr"] - report["psnr"]) < 0.01
    everything, _ = codec.decode_to_array(out, device="cpu")
    part, meta = codec.decode_to_array(out, device="cpu", frame_range=(4, 8))
    assert meta["frames"] == 4 and np.array_equal(part, everything[4:8])
    # Random access measured against the right source frames.
    r = codec.decode(out, None, ref=clip, ref_range=(0, 11), frame_range=(4, 8), device="cpu")
    source, _ = read_video(clip, frame_range=(4, 8))
    assert r["frames"] == 4 and r["psnr"] == pytest.approx(metrics.psnr(everything[4:8], source), abs=1e-9)


def test_random_access_reads_only_needed_segments(segmented, monkeypatch):
    out, _ = segmented
    read = []
    original = segments.read_segment
    monkeypatch.setattr(segments, "read_segment", lambda path, e: read.append(e.first_frame) or original(path, e))
    codec.decode_to_array(out, device="cpu", frame_range=(6, 8))
    assert read == [6]


def test_two_process_encode_matches_one_process(clip, tmp_path, segmented):
    out = tmp_path / "two.dnv"
    r = CliRunner().invoke(main, ["encode", str(clip), "-o", str(out), "--bpp", "4", "--epochs", "3",
                                  "--prune-epochs", "1", "--device", "cpu", "-q", "--frames", "0:11",
                                  "--segment-frames", "3", "--gpus", "2", "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["processes"] == 2 and len(report["segments"]) == 4
    # Same seeds, segments and thread count: the same networks whichever process trained them.
    assert out.read_bytes() == segmented[0].read_bytes()
