"""Hostile and odd videos: each gets the right result or one clear error line (README "Supported inputs").

The videos are made here with PyAV from a few carphone frames. Full encodes (one epoch) run where the
size matters to the codec; pixel formats, alpha and timing are checked where they are handled, in
reading, since everything after reading sees (T, H, W, 3) uint8 RGB.
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from click.testing import CliRunner

from nvcodec import codec, memory, metrics, sizing
from nvcodec.cli import main
from nvcodec.video import read_video

ONE_EPOCH = ["--epochs", "1", "--prune-epochs", "0", "--device", "cpu", "-q"]

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def source(testdata):
    frames, _ = read_video(testdata / "carphone_qcif_16f.mp4", frame_range=(0, 3))
    return frames


def sized(source, width, height, count):
    """`count` frames of carphone, tiled or cropped to width x height."""
    reps = (1, -(-height // source.shape[1]), -(-width // source.shape[2]), 1)
    return np.ascontiguousarray(np.tile(source[:count], reps)[:, :height, :width])


def write(path, frames, codec_name="ffv1", pix_fmt="yuv420p", pts_ms=None, **options):
    """Write RGB frames with PyAV; `pts_ms` gives each frame's time (variable frame rate)."""
    with av.open(str(path), "w") as c:
        stream = c.add_stream(codec_name, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if pts_ms is not None:
            stream.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return path


def encode_cli(path, out, *args):
    return CliRunner().invoke(main, ["encode", str(path), "-o", str(out), *ONE_EPOCH, *args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: ") and "Traceback" not in result.output, result.stderr
    assert sum(line.startswith("Error") for line in lines) == 1
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


# --- sizes: full encodes -----------------------------------------------------------------------------

def test_odd_size_and_two_frames(source, tmp_path):
    video = write(tmp_path / "odd.mkv", sized(source, 175, 143, 2))
    out = tmp_path / "odd.dnv"
    r = encode_cli(video, out, "--bpp", "4")
    assert r.exit_code == 0, r.output
    frames, report = codec.decode_to_array(out, device="cpu")
    assert frames.shape == (2, 143, 175, 3) and report["frames"] == 2


def test_tiny_frames(source, tmp_path):
    video = write(tmp_path / "tiny.mkv", sized(source, 16, 16, 2))
    r = encode_cli(video, tmp_path / "t.dnv")                 # the default 0.05 bpp cannot be reached
    assert_one_line_error(r, "smallest model", "bpp")
    assert not (tmp_path / "t.dnv").exists()
    r = encode_cli(video, tmp_path / "t.dnv", "--bpp", "150")
    assert r.exit_code == 0, r.output
    assert codec.decode_to_array(tmp_path / "t.dnv", device="cpu")[0].shape == (2, 16, 16, 3)


def test_one_pixel_frames(tmp_path):
    """A folder of 1x1 PNGs: absurd, but coded (MS-SSIM of 1-pixel frames used to crash the report)."""
    folder = tmp_path / "png"
    folder.mkdir()
    for i, value in enumerate((40, 200)):
        av.VideoFrame.from_ndarray(np.full((1, 1, 3), value, np.uint8), format="rgb24").to_image().save(
            folder / f"{i}.png")
    r = encode_cli(folder, tmp_path / "p.dnv", "--bpp", "30000")
    assert r.exit_code == 0, r.output
    assert codec.decode_to_array(tmp_path / "p.dnv", device="cpu")[0].shape == (2, 1, 1, 3)


def test_4k_frames_are_read_and_planned(source, tmp_path):
    """Two 3840x2160 frames: read at full size, planned, and the decode's memory known in advance.
    (A one-epoch CPU encode of this takes about a minute and 8.5 GB, too slow for the suite.)"""
    video = write(tmp_path / "4k.mkv", sized(source, 3840, 2160, 2))
    frames, info = read_video(video)
    assert frames.shape == (2, 2160, 3840, 3) and (info.width, info.height) == (3840, 2160)
    plan = sizing.plan_for_bpp("dnerv", 3840, 2160, 2, 0.05)
    assert plan.arch.padded_size[0] >= 2160 and plan.arch.padded_size[1] >= 3840
    assert 2**28 < memory.decode_bytes_per_frame(plan.arch) < 2**34


# --- pixel formats, alpha, timing: reading -----------------------------------------------------------

@pytest.mark.parametrize("name, codec_name, pix_fmt, note", [
    ("10bit.mkv", "ffv1", "yuv420p10le", "10-bit source (yuv420p10le) coded as 8-bit RGB"),
    ("444.mp4", "libx264", "yuv444p", None),
    ("yuva.mkv", "ffv1", "yuva420p", "alpha channel dropped"),
    ("rgba.mov", "png", "rgba", "alpha channel dropped"),
])
def test_pixel_formats(source, tmp_path, name, codec_name, pix_fmt, note):
    rgb = sized(source, 64, 48, 2)
    options = {"qp": "0"} if codec_name == "libx264" else {}
    frames, info = read_video(write(tmp_path / name, rgb, codec_name, pix_fmt, **options))
    assert frames.shape == rgb.shape and frames.dtype == np.uint8
    min_psnr = 30 if pix_fmt.startswith("yuv420") else 40      # 4:2:0 loses chroma detail, 4:4:4 and RGB do not
    assert metrics.psnr(frames, rgb) > min_psnr
    assert (note in info.notes) if note else not info.notes


def test_variable_frame_rate(source, tmp_path):
    video = write(tmp_path / "vfr.mkv", sized(source, 64, 48, 3), pts_ms=[0, 40, 200])
    frames, info = read_video(video)
    assert len(frames) == 3
    assert any(n.startswith("variable frame rate (frames 40 to 160 ms apart)") for n in info.notes), info.notes
    steady = read_video(write(tmp_path / "cfr.mkv", sized(source, 64, 48, 3)))[1]
    assert not any("variable" in n for n in steady.notes)


def test_notes_reach_the_user(source, tmp_path):
    video = write(tmp_path / "alpha.mkv", sized(source, 64, 48, 2), pix_fmt="yuva420p")
    r = encode_cli(video, tmp_path / "a.dnv", "--bpp", "30")
    assert r.exit_code == 0, r.output
    assert "note: alpha channel dropped" in r.stderr


# --- what cannot be encoded: one line each -----------------------------------------------------------

def test_cut_off_video_keeps_the_good_frames(source, tmp_path):
    whole = write(tmp_path / "whole.mkv", sized(source, 64, 48, 3))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    frames, info = read_video(cut)
    assert 1 <= len(frames) < 3 and np.array_equal(frames, read_video(whole)[0][: len(frames)])
    assert f"the video stops at {len(frames) * 0.04:.2f} s of the 0.12 s the file declares (file truncated?)" \
        in info.notes


@pytest.mark.parametrize("case", ["empty", "text", "audio only", "one frame", "cut before the first frame"])
def test_unusable_inputs_fail_with_one_line(source, tmp_path, case):
    path = tmp_path / "in.mp4"
    if case == "empty":
        path.write_bytes(b"")
        fragments = [str(path)]
    elif case == "text":
        path.write_text("this is not a video\n" * 50)
        fragments = [str(path), "not a video"]
    elif case == "audio only":
        with av.open(str(path), "w") as c:
            stream = c.add_stream("aac", rate=48000)
            for i in range(10):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, i * 1024
                for packet in stream.encode(frame):
                    c.mux(packet)
        fragments = [str(path), "no video stream"]
    elif case == "one frame":
        path = write(tmp_path / "one.mkv", sized(source, 64, 48, 1))
        fragments = ["at least 2"]
    else:
        data = write(tmp_path / "whole.mkv", sized(source, 64, 48, 3)).read_bytes()
        path = tmp_path / "cut.mkv"
        path.write_bytes(data[:300])
        fragments = [str(path)]
    r = encode_cli(path, tmp_path / "out.dnv")
    assert_one_line_error(r, *fragments)
    assert not (tmp_path / "out.dnv").exists()
