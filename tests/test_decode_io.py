"""Decoding to files and pipes: the threaded writer keeps every pixel, the report names what it measures,
y4m streams through standard output and input, and `dnv info` reads like ffprobe. CPU, tiny files."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from nvcodec import codec, segments, video
from nvcodec.color import Color
from nvcodec.background import BackgroundWriter
from nvcodec.cli import main
from nvcodec.video import VideoError, VideoWriter, read_video, write_video

ROOT = Path(__file__).resolve().parents[1]
# RGB: these pin the RGB path (conversions, pipes); the 4:2:0 path is tested in test_color.py.
TINY = dict(model="dnerv", bpp=2.0, frame_range=(0, 4), epochs=2, prune_epochs=0, device="cpu", progress=False,
            color="rgb")


@pytest.fixture(scope="module")
def carphone(testdata) -> Path:
    return testdata / "carphone_qcif_16f.mp4"


@pytest.fixture(scope="module")
def tiny(carphone, tmp_path_factory, single_thread) -> Path:
    """4 frames of carphone (176x144) at 2 bpp, 2 epochs: the pictures are poor, the file is real."""
    out = tmp_path_factory.mktemp("tiny") / "tiny.dnv"
    codec.encode(carphone, out, **TINY)
    return out


def _cli(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def _dnv(*args, **kwargs) -> subprocess.CompletedProcess:
    """`dnv ARGS` in a fresh process, this checkout's code, one torch thread (tiny networks)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nvcodec", *map(str, args)], env=env, capture_output=True,
                          **kwargs)


# --- the threaded writer keeps every pixel ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["png/", "mkv", "y4m", "mp4"])
def test_decode_to_file_is_what_the_writer_makes_of_decode_to_array(tiny, tmp_path, kind):
    """Decoding to a file (network and writer side by side) writes exactly what writing the decoded array in
    one piece writes: the same RGB for the lossless PNGs and FFV1 .mkv, the same bytes for .y4m and .mp4
    (same encoder settings)."""
    frames, _ = codec.decode_to_array(tiny, device="cpu")
    name = "png/" if kind == "png/" else f"rec.{kind}"
    codec.decode(tiny, f"{tmp_path}/{name}", device="cpu", batch=3)   # batches of 3: a batch split across writes
    if kind in ("png/", "mkv"):
        np.testing.assert_array_equal(read_video(tmp_path / name.rstrip("/"))[0], frames)
    else:
        write_video(tmp_path / f"direct.{kind}", frames, codec.info(tiny)["fps"])
        assert (tmp_path / name).read_bytes() == (tmp_path / f"direct.{kind}").read_bytes()


@pytest.fixture(scope="module")
def tiny420(carphone, tmp_path_factory, single_thread) -> Path:
    out = tmp_path_factory.mktemp("tiny420") / "tiny420.dnv"
    codec.encode(carphone, out, **{**TINY, "color": "yuv420"})
    return out


@pytest.mark.parametrize("kind", ["y4m", "mp4"])
def test_420_planes_go_to_a_video_file_packed_with_the_same_bytes(tiny420, tmp_path, kind, monkeypatch):
    """A 4:2:0 file decodes to .y4m/.mp4 as yuv420p planes packed on the device (no per-frame plane copies on
    the host): the same bytes as writing its decoded planes in one piece."""
    packed_writes = []
    original = video._ContainerSink.write_packed
    monkeypatch.setattr(video._ContainerSink, "write_packed",
                        lambda sink, frame: (packed_writes.append(frame.shape), original(sink, frame))[1])
    planes, _ = codec.decode_to_array(tiny420, device="cpu", planes=True)
    codec.decode(tiny420, tmp_path / f"rec.{kind}", device="cpu", batch=3)
    assert packed_writes == [(144 * 3 // 2, 176)] * 4
    write_video(tmp_path / f"direct.{kind}", planes, codec.info(tiny420)["fps"], info_color(tiny420))
    assert (tmp_path / f"rec.{kind}").read_bytes() == (tmp_path / f"direct.{kind}").read_bytes()


def info_color(path) -> Color:
    i = codec.info(path)
    return Color(i["color"], i["color_matrix"], i["color_range"], i["color_primaries"], i["color_trc"])


def test_y4m_pixels_are_the_bt601_conversion_of_the_decoded_frames(tiny, tmp_path):
    """Pinned independently of the writer's code: each frame is swscale's BT.601 limited-range 4:2:0 of the RGB."""
    frames, _ = codec.decode_to_array(tiny, device="cpu")
    codec.decode(tiny, tmp_path / "rec.y4m", device="cpu")
    with av.open(str(tmp_path / "rec.y4m")) as c:
        stored = [f for f in c.decode(video=0)]
    assert len(stored) == 4
    for rgb, frame in zip(frames, stored):
        want = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG")
        for got_plane, want_plane in zip(frame.planes, want.planes):
            rows = lambda p: np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]  # noqa: E731
            np.testing.assert_array_equal(rows(got_plane), rows(want_plane))


class _FailingSink:
    """Stands in for a VideoWriter whose encoder fails on the second batch."""

    def __init__(self, writer: VideoWriter):
        self.writer, self.batches = writer, 0

    def write(self, frames):
        self.batches += 1
        if self.batches == 2:
            raise VideoError(f"{self.writer.path}: encoding failed (disk full)")
        self.writer.write(frames)

    def close(self):
        self.writer.close()

    def abort(self):
        self.writer.abort()


def test_writer_thread_error_is_raised_in_the_caller_and_leaves_no_file(tmp_path):
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    writer = BackgroundWriter(_FailingSink(VideoWriter(tmp_path / "out.mp4", 16, 16, 25)))
    with pytest.raises(VideoError, match="disk full"):
        for _ in range(50):         # the error shows at a later write, or at close
            writer.write(frames)
        writer.close()
    assert list(tmp_path.iterdir()) == []       # neither out.mp4 nor its temporary file


def test_decode_writer_error_is_one_line_and_leaves_no_file(tiny, tmp_path, monkeypatch):
    import nvcodec.video as video

    def failing_write(self, rgb):
        raise av.error.FFmpegError(28, "No space left on device")
    monkeypatch.setattr(video._ContainerSink, "write", failing_write)
    r = _cli("decode", tiny, "-o", tmp_path / "rec.mp4", "--device", "cpu")
    assert r.exit_code == 1
    assert r.output.strip().count("\n") == 0 and r.output.startswith("Error: ") and "encoding failed" in r.output
    assert list(tmp_path.iterdir()) == []


def test_background_writer_holds_at_most_a_few_batches():
    """A slow writer makes the producer wait: batches in flight stay at the queue's depth (flat memory)."""
    in_flight, peak, lock = 0, 0, threading.Lock()

    class Slow:
        def write(self, frames):
            nonlocal in_flight
            time.sleep(0.01)
            with lock:
                in_flight -= 1

        def close(self):
            pass

        def abort(self):
            pass

    writer = BackgroundWriter(Slow(), depth=2)
    for _ in range(30):
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        writer.write(None)
    writer.close()
    assert in_flight == 0 and peak <= 2 + 2     # the queue, the one being written, the one being handed over


# --- the report names what it measures -------------------------------------------------------------

def test_decode_report_times(tiny, carphone, tmp_path):
    r = codec.decode(tiny, tmp_path / "rec.mp4", device="cpu")
    assert r["frames"] == 4
    assert r["decode_fps"] == pytest.approx(4 / r["decode_seconds"])
    assert r["neural_fps"] == pytest.approx(4 / r["neural_seconds"])
    # Loading and the network run one after the other in the caller: the whole decode holds both.
    assert r["load_seconds"] + r["neural_seconds"] <= r["decode_seconds"]
    assert 0 < r["write_seconds"] <= r["decode_seconds"]
    assert r["score_seconds"] == 0 and r["total_seconds"] == r["decode_seconds"]
    assert r["neural_tflops"] > 0 and "decode_tflops" not in r      # the network's rate, named so
    scored = codec.decode(tiny, None, ref=carphone, ref_range=(0, 4), device="cpu")
    assert scored["psnr"] > 0 and scored["score_seconds"] > 0 and scored["write_seconds"] == 0
    assert scored["total_seconds"] == pytest.approx(scored["decode_seconds"] + scored["score_seconds"])
    assert scored["decode_fps"] == pytest.approx(4 / scored["decode_seconds"])


def test_cli_decode_summary_names_each_figure(tiny, carphone, tmp_path):
    r = _cli("decode", tiny, "-o", tmp_path / "rec.y4m", "--ref", carphone, "--ref-frames", "0:4",
             "--device", "cpu", "--json", tmp_path / "d.json")
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "d.json").read_text())
    time_line = next(line for line in r.output.splitlines() if line.strip().startswith("time"))
    assert f"{d['decode_seconds']:.3f} s, {d['decode_fps']:.1f} frames/s on cpu" in time_line
    assert f"network {d['neural_seconds']:.3f} s ({d['neural_fps']:.1f} frames/s" in time_line
    assert f"writing {d['write_seconds']:.3f} s alongside" in time_line
    assert f"scoring --ref took {d['score_seconds']:.3f} s more" in r.output


# --- pipes ---------------------------------------------------------------------------------------

def test_decode_to_standard_output_is_the_y4m_file_and_nothing_else(tiny, tmp_path):
    codec.decode(tiny, tmp_path / "rec.y4m", device="cpu")
    p = _dnv("decode", tiny, "-o", "-", "--device", "cpu")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == (tmp_path / "rec.y4m").read_bytes()
    header = p.stdout.split(b"\n", 1)[0].decode()
    assert header.startswith("YUV4MPEG2 W176 H144 F30000:1001 ")
    assert "C420jpeg" in header and "XCOLORRANGE=LIMITED" in header   # swscale's centred 4:2:0, tv range
    assert "decoded 4 frames 176x144 -> standard output" in p.stderr.decode()


def test_y4m_round_trip_through_pipes(tiny, tmp_path, single_thread):
    """dnv decode F -o - | dnv encode - -o G: G is the file an encode of the same y4m from disk makes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    settings = ["--model", "dnerv", "--bpp", "2", "--epochs", "2", "--prune-epochs", "0", "--device", "cpu", "-q",
                "--color", "rgb"]
    decode = subprocess.Popen([sys.executable, "-m", "nvcodec", "decode", tiny, "-o", "-", "--device", "cpu"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    encode = subprocess.Popen([sys.executable, "-m", "nvcodec", "encode", "-", "-o", tmp_path / "back.dnv",
                               *settings], env=env, stdin=decode.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    decode.stdout.close()   # the encoder holds the pipe's reading end now
    enc_out, enc_err = encode.communicate(timeout=300)
    dec_err = decode.stderr.read()
    assert decode.wait(timeout=60) == 0, dec_err.decode()
    assert encode.returncode == 0, enc_err.decode()
    assert "encoded 4 frames 176x144" in enc_out.decode()
    back = codec.info(tmp_path / "back.dnv")
    assert (back["frames"], back["width"], back["height"], back["fps"]) == (4, 176, 144, "30000/1001")
    # The same frames from a file give the same .dnv, byte for byte (seeded training on the CPU).
    codec.decode(tiny, tmp_path / "rec.y4m", device="cpu")
    codec.encode(tmp_path / "rec.y4m", tmp_path / "from_file.dnv", **{**TINY, "frame_range": (0, None)})
    assert (tmp_path / "back.dnv").read_bytes() == (tmp_path / "from_file.dnv").read_bytes()


def test_encode_from_standard_input_that_is_not_a_video(tmp_path):
    r = _cli("encode", "-", "-o", tmp_path / "x.dnv", "--device", "cpu", input=b"hello, world\n" * 100)
    assert r.exit_code == 1 and r.output.startswith("Error: standard input: not a video stream")
    assert r.output.strip().count("\n") == 0
    assert not (tmp_path / "x.dnv").exists()
    r = _cli("encode", "-", "-o", tmp_path / "x.dnv", "--gpus", "2", input=b"")
    assert r.exit_code == 1 and "one process" in r.output


def test_decode_to_a_closed_pipe_is_one_line(tiny):
    p = subprocess.run(f"{sys.executable} -m nvcodec decode {tiny} -o - --device cpu | head -c 10 > /dev/null",
                       shell=True, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                       capture_output=True, executable="/bin/bash")
    err = p.stderr.decode()
    assert err.strip().splitlines() == ["Error: standard output was closed before the last frame"], err


# --- info ----------------------------------------------------------------------------------------

def _check_readable(text: str) -> None:
    assert "None" not in text and "null" not in text
    for internal in ("padded_size", "static_codes", "embedding_values", "fuse_stage", "format_version", "DECODER"):
        assert internal not in text
    for number in re.findall(r"\d+\.\d+", text):     # rounded: no long fractions
        assert len(number.replace(".", "").lstrip("0")) <= 5, number


def test_info_reads_like_ffprobe(tiny):
    r = _cli("info", tiny)
    assert r.exit_code == 0, r.output
    text = r.output
    _check_readable(text)
    rec = codec.info(tiny)
    size = tiny.stat().st_size
    bpp = re.search(r"Video: DNeRV, rgb \(source: [^)]+\), 176x144, 29.97 \(30000/1001\) fps, ([\d.]+) bpp, "
                    r"([\d,]+) bytes", text)
    assert float(bpp[1]) == pytest.approx(rec["bpp"], rel=1e-3) and bpp[2] == f"{size:,}"
    rate = re.search(r"Duration: 00:00:00.13, 4 frames, bitrate: ([\d,.]+) kb/s", text)
    assert float(rate[1].replace(",", "")) == pytest.approx(size * 8 / (4 / (30000 / 1001)) / 1000, rel=1e-3)
    assert len(rate[1].replace(",", "").replace(".", "")) == 4       # 4 significant digits
    coded = rec["sections"]["DECODER"] * 8 / rec["decoder_params"]      # the file's bits per weight, not the header's
    assert f"Decoder: {rec['decoder_params']:,} parameters, {coded:.2f} bits each as coded (--quant-bits 8" in text
    assert "content embeddings 4x16x" in text and "difference embeddings 4x2x" in text
    shares = [float(m) for m in re.findall(r"bytes +([\d.]+) %", text)]
    assert len(shares) == len(rec["sections"]) and sum(shares) == pytest.approx(100, abs=0.3)
    assert re.search(f"decoder weights +{rec['sections']['DECODER']:,} bytes", text)


def test_info_piped_to_a_reader_that_leaves_stops_quietly(tiny):
    """`dnv info F | head -1`: no "internal error" line when the pipe closes, and the shell's status for a writer
    killed by SIGPIPE."""
    import signal
    p = subprocess.Popen([sys.executable, "-m", "nvcodec", "info", str(tiny)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()        # the reader is gone before a line is written
    err = p.stderr.read()
    assert p.wait() == 128 + signal.SIGPIPE and err == b""


def test_info_json_is_the_full_record(tiny):
    r = _cli("info", tiny, "--json")
    assert r.exit_code == 0
    rec = json.loads(r.stdout)
    assert rec == json.loads(json.dumps(codec.info(tiny)))
    assert rec["bitrate"] == pytest.approx(tiny.stat().st_size * 8 * (30000 / 1001) / 4)
    assert rec["duration_seconds"] == pytest.approx(4 / (30000 / 1001)) and rec["frame_rate"] == 30000 / 1001
    assert sum(rec["sections"].values()) == tiny.stat().st_size
    assert rec["tables"]["CONTENT"][0] == 4 and rec["widths"] and rec["decoder_params"] > 0


def test_info_of_a_segmented_file(tiny, tmp_path):
    single = tiny.read_bytes()
    info = codec.info(tiny)
    path = tmp_path / "two.dnv"
    from fractions import Fraction
    path.write_bytes(segments.pack_segmented(176, 144, Fraction(30000, 1001), [(0, single), (4, single)]))
    rec = json.loads(_cli("info", path, "--json").stdout)
    assert rec["segments"] == 2 and rec["frames"] == 8 and sum(rec["sections"].values()) == path.stat().st_size
    assert [s["model"] for s in rec["segment_index"]] == ["dnerv", "dnerv"]
    assert rec["segment_index"][1]["decoder_params"] == info["decoder_params"]
    text = _cli("info", path).output
    _check_readable(text)
    assert "2 segments" in text and "Duration: 00:00:00.27, 8 frames" in text
    share = 100 * len(single) / path.stat().st_size
    assert f"frames 4-7: DNeRV, {info['decoder_params']:,} parameters, {len(single):,} bytes ({share:.1f} %)" in text
    assert "segment index" in text and "Sections of segment 0:" in text


def test_info_of_a_hinerv_file_names_its_grids(carphone, tmp_path, single_thread):
    path = tmp_path / "h.dnv"
    codec.encode(carphone, path, **{**TINY, "model": "hinerv"})
    r = _cli("info", path)
    assert r.exit_code == 0, r.output
    assert "Video: HiNeRV, rgb (source: " in r.output and ", 176x144" in r.output and "feature grid 1" in r.output and "local grid" in r.output
    assert sum(json.loads(_cli("info", path, "--json").stdout)["sections"].values()) == path.stat().st_size
