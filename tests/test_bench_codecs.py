"""Benchmark codec wrappers on 6 frames of a real clip (carphone QCIF): fast, CPU only."""
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from benchmarks.codecs import (
    SvtAv1, X264, X265, Dnv, crf_sweep, info_sei_bytes, load_source_yuv, source_rate)
from nvcodec.video import read_video

CLIP = "carphone_qcif_16f.mp4"
LOW_CRF = {"x264": 18, "x265": 18, "svt-av1": 20}
HIGH_CRF = {"x264": 35, "x265": 35, "svt-av1": 50}


@pytest.fixture(scope="module")
def carphone(testdata):
    """(frames (6,144,176,3) uint8, fps) of the carphone clip."""
    frames, info = read_video(testdata / CLIP, frame_range=(0, 6))
    return frames, info.fps


@pytest.mark.parametrize("codec", [X264("medium"), X265("medium"), SvtAv1("medium")], ids=repr)
def test_round_trip_quality_and_rate(carphone, codec):
    frames, fps = carphone
    good = codec.run(frames, fps, LOW_CRF[codec.name])
    poor = codec.run(frames, fps, HIGH_CRF[codec.name])
    assert (good["frames"], good["height"], good["width"]) == (6, 144, 176)
    assert good["psnr_rgb"] > 30 and good["psnr_yuv"] > 30 and good["ms_ssim"] > 0.95
    assert poor["bpp"] < good["bpp"] and poor["psnr_rgb"] < good["psnr_rgb"]
    for r in (good, poor):
        assert 0 < r["bpp"] < r["bpp_container"]
        assert r["encode_seconds"] > 0 and r["decode_seconds"] > 0
    if codec.name in ("x264", "x265"):
        assert good["info_sei_bytes"] > 100  # the version string, excluded from bpp


@pytest.mark.parametrize("cls", [X264, X265, SvtAv1])
def test_odd_size_counts_the_original_pixels(carphone, cls):
    frames = carphone[0][:, :143, :175]
    r = cls("medium").run(frames, carphone[1], 20)
    assert (r["width"], r["height"]) == (175, 143)
    assert r["psnr_rgb"] > 30
    nbytes = r["bpp"] * 175 * 143 * 6 / 8
    assert abs(nbytes - round(nbytes)) < 1e-6  # a whole number of bytes over 175 x 143 x 6


@pytest.mark.parametrize("clip, frame_range, colour", [
    (CLIP, (2, 8), "BT.601 limited range"),
    ("openh264_1920x1080_fullrange_5f.264", (0, 1), "BT.601 full range"),  # yuvj420p, untagged
])
def test_source_frames_beat_the_rgb_round_trip(testdata, clip, frame_range, colour):
    """Anchors fed the source's own 4:2:0 frames pay for coding only; the record says so."""
    frames, info = read_video(testdata / clip, frame_range=frame_range)
    source, why = load_source_yuv(testdata / clip, frame_range, frames)
    assert source is not None, why
    assert source.colour.describe() == colour and len(source.planes) == len(frames)
    direct = X264("medium").run(frames, info.fps, 12, source=source)
    via_rgb = X264("medium").run(frames, info.fps, 12)
    assert direct["input"].startswith("source 4:2:0") and via_rgb["input"].startswith("RGB")
    assert direct["psnr_rgb"] > via_rgb["psnr_rgb"] + 0.5


def test_a_headerless_yuv_file_gives_its_own_frames(testdata):
    """Raw I420 (`rd --size`): the frames are the file's, from the range's first, BT.601 limited as nvcodec reads
    them; a ground truth one frame off is refused."""
    clip = testdata / "CiscoVT2people_320x192_5f.yuv"
    frames, _ = read_video(clip, frame_range=(1, 4), size=(320, 192), fps=12)
    source, why = load_source_yuv(clip, (1, 4), frames)
    assert source is not None, why
    assert source.colour.describe() == "BT.601 limited range" and len(source.planes) == 3
    raw = np.fromfile(clip, np.uint8).reshape(5, 288, 320)
    assert all(np.array_equal(p, raw[1 + i]) for i, p in enumerate(source.planes))
    assert load_source_yuv(clip, (0, 3), frames)[0] is None


def test_rd_reads_a_size_for_headerless_clips():
    from benchmarks import rd

    assert rd.parser().parse_args(["x.yuv", "--size", "320x192", "--bpp", "0.1"]).size == (320, 192)
    with pytest.raises(SystemExit):
        rd.parser().parse_args(["x.yuv", "--size", "320", "--bpp", "0.1"])


def test_source_frames_are_refused_when_they_are_not_the_ground_truth(carphone, testdata):
    frames, _ = carphone
    assert load_source_yuv(testdata / CLIP, (1, 7), frames)[0] is None  # shifted by one frame
    assert load_source_yuv(testdata / CLIP, (0, 6), frames[:, :143])[0] is None  # odd size


def test_crf_sweep_lands_near_the_target(carphone):
    frames, fps = carphone
    points = crf_sweep(X264("medium"), frames, fps, [0.15], tolerance=0.15, tries=3)
    assert len(points) == 1
    assert abs(points[0]["bpp"] / 0.15 - 1) < 0.3, points[0]


def test_crf_sweep_covers_several_targets(carphone):
    frames, fps = carphone
    targets = [0.1, 0.3]
    points = crf_sweep(X265("medium"), frames, fps, targets)
    rates = [p["bpp"] for p in points]
    assert rates == sorted(rates) and len(points) == 2
    assert all(abs(r / t - 1) < 0.3 for r, t in zip(rates, targets)), rates


def test_info_sei_is_found_in_annex_b():
    sei_h264 = b"\x00\x00\x00\x01\x06\x05\x10" + b"x" * 16 + b"\x80"   # user data unregistered
    sps = b"\x00\x00\x00\x01\x67\x64\x00\x1e"
    other_sei = b"\x00\x00\x01\x06\x01\x01\x00\x80"                    # pic timing: kept
    assert info_sei_bytes(sps + sei_h264 + other_sei, "h264") == len(sei_h264)
    sei_hevc = b"\x00\x00\x01\x4e\x01\x05\x04abcd\x80"                # prefix SEI, type 5
    assert info_sei_bytes(sei_hevc + sps, "hevc") == len(sei_hevc)


def test_dnv_wrapper_with_a_stand_in_codec(carphone, monkeypatch, tmp_path):
    """The wrapper's record shape and its infeasible-target path, with a fake nvcodec.codec."""
    frames, _ = carphone
    fake = types.ModuleType("nvcodec.codec")

    def encode(input_path, output_path, bpp, **kw):
        if bpp < 0.01:
            raise ValueError(f"target bpp {bpp} is infeasible for this clip")
        Path(output_path).write_bytes(b"\0" * 100)
        return {"bpp": 0.1, "encode_seconds": 1.5, "device": "cpu", "psnr": 40.0, "params": 123}

    def decode_to_array(path, device="auto"):
        return frames, {"decode_seconds": 0.25, "device": "cpu"}

    fake.encode, fake.decode_to_array = encode, decode_to_array
    monkeypatch.setitem(sys.modules, "nvcodec.codec", fake)
    r = Dnv(epochs=1).run(tmp_path / "clip.mp4", frames, 0.05, frame_range=(0, 6))
    assert r["codec"] == "dnv" and r["target_bpp"] == 0.05
    assert r["bpp"] == pytest.approx(100 * 8 / (176 * 144 * 6))
    assert r["psnr_rgb"] == 100.0 and r["decode_seconds"] == 0.25
    skipped = Dnv().run(tmp_path / "clip.mp4", frames, 0.001)
    assert "infeasible" in skipped["skipped"] and "bpp" not in skipped


def test_rd_merge_adds_only_missing_points(tmp_path):
    """Two runs on two GPUs, each with its own --out, become one rd.json without duplicates."""
    from benchmarks import rd

    def point(codec, target, bpp, psnr):
        return {"clip": "c.mp4", "frame_range": [0, None], "codec": codec, "preset": "fast" if codec == "dnv"
                else "medium", "epochs": None, "target_bpp": target, "crf": None if codec == "dnv" else 30,
                "bpp": bpp, "bpp_container": bpp, "psnr_rgb": psnr, "psnr_yuv": psnr, "ms_ssim": 0.9,
                "encode_seconds": 1.0, "decode_seconds": 0.1, "device": "cpu"}

    anchors = [point("x264", None, b, 30 + 40 * b) for b in (0.01, 0.03, 0.06, 0.12)]
    out = tmp_path / "main"
    args = rd.parser().parse_args(["--out", str(out), "--merge", str(tmp_path / "other.json")])
    run_a, run_b = rd.machine_meta(args), {**rd.machine_meta(args), "date": "later"}
    main = {"points": anchors + [point("dnv", 0.025, 0.024, 28.0)], "bd": [], "meta": {**run_a, "runs": [run_a]}}
    other = {"points": anchors + [point("dnv", 0.05, 0.049, 29.0), point("dnv", 0.1, 0.098, 31.0)],
             "bd": [], "meta": {**run_b, "runs": [run_a, run_b]}}
    out.mkdir()
    (out / "rd.json").write_text(json.dumps(main))
    (tmp_path / "other.json").write_text(json.dumps(other))
    data = rd.run(args)
    dnv = sorted(p["target_bpp"] for p in data["points"] if p["codec"] == "dnv")
    assert dnv == [0.025, 0.05, 0.1]
    assert len(data["points"]) == len(anchors) + 3
    assert data["meta"]["runs"] == [run_a, run_b]
    assert any(r["clip"] == "c.mp4" and r["anchor"] == "x264-medium" for r in data["bd"])



def test_source_rate_counts_the_sources_own_bytes(testdata):
    """The source's own coded rate over a frame range: its video packets (display order) or its image files."""
    import av
    with av.open(str(testdata / CLIP)) as c:
        total = sum(p.size for p in c.demux(c.streams.video[0]))
    whole = source_rate(testdata / CLIP)
    assert whole["coded"] == "h264" and whole["bpp"] == pytest.approx(8 * total / (16 * 176 * 144))
    head, tail = source_rate(testdata / CLIP, (0, 5)), source_rate(testdata / CLIP, (5, None))
    assert 5 * head["bpp"] + 11 * tail["bpp"] == pytest.approx(16 * whole["bpp"])    # the ranges split the bytes
    assert head["bpp"] > tail["bpp"]                  # the first frames hold the intra frame
    folder = testdata / "bunny_854x480_jpg"
    files = sorted(folder.glob("*.jpg"))
    jpeg = source_rate(folder, (1, 3))
    assert jpeg["coded"] == "jpeg"
    assert jpeg["bpp"] == pytest.approx(8 * sum(f.stat().st_size for f in files[1:3]) / (2 * 854 * 480))
    assert source_rate(testdata / "CiscoVT2people_320x192_5f.yuv") == {"coded": "raw"}


def test_rd_tables_name_each_clips_source(testdata):
    """A run records its clip's source; the clip's section of rd.md says what it is."""
    from benchmarks import rd
    point = {"clip": CLIP, "frame_range": [0, 8], "codec": "x264", "preset": "medium", "crf": 30, "bpp": 0.1,
             "bpp_container": 0.1, "psnr_rgb": 30.0, "psnr_yuv": 31.0, "ms_ssim": 0.9, "encode_seconds": 1.0,
             "decode_seconds": 0.1, "device": "cpu", "width": 176, "height": 144, "frames": 8}
    data = {"points": [point], "bd": [], "meta": {}}
    rd.record_source(data, testdata / CLIP, (0, 8), log=lambda m: None)
    rate = source_rate(testdata / CLIP, (0, 8))["bpp"]
    meta = {"command": "x", "date": "d", "machine": "m", "gpu": "g", "torch": "t", "av": "a", "ffmpeg": "f"}
    md = rd.render_md({**data, "meta": {**data["meta"], **meta}})
    assert f"the source is h264 at {rate:.4f} bpp over these frames" in md


def test_rd_average_counts_clips_run_at_other_epoch_budgets():
    """A clip run at fewer epochs ('dnv-fast-e40') still counts in the preset's mean ('dnv-fast*')."""
    from benchmarks import rd

    def point(clip, codec, bpp, psnr, epochs=None):
        return {"clip": clip, "codec": codec, "preset": "fast" if codec == "dnv" else "medium",
                "epochs": epochs, "bpp": bpp, "psnr_rgb": psnr, "psnr_yuv": psnr}

    points = []
    for clip, shift, epochs in (("a.mp4", 0.0, None), ("b.mp4", 1.0, 40)):
        points += [point(clip, "x264", b, 30 + 40 * b + shift) for b in (0.01, 0.03, 0.06, 0.12)]
        points += [point(clip, "dnv", b, 30 + 40 * (b / 2) + shift, epochs) for b in (0.02, 0.05, 0.1)]
    rows = {(r["clip"], r["test"]): r for r in rd.compute_bd(points) if r["anchor"] == "x264-medium"}
    per_clip = [rows[("a.mp4", "dnv-fast")]["bd_rate_percent"], rows[("b.mp4", "dnv-fast-e40")]["bd_rate_percent"]]
    assert all(v is not None and v > 0 for v in per_clip)
    both = rows[("average", "dnv-fast*")]
    assert both["clips_bd_rate_percent"] == 2
    assert both["bd_rate_percent"] == pytest.approx(sum(per_clip) / 2)
    assert rows[("average", "dnv-fast")]["clips_bd_rate_percent"] == 1


def test_rd_epoch_budgets_give_a_series_range_where_clip_length_changed_them():
    """A series whose points trained different epochs (short clips and small frames train more) shows the range."""
    from benchmarks import rd

    def point(clip, epochs, prune_epochs):
        return {"clip": clip, "codec": "dnv", "preset": "medium", "model": "hinerv", "color": "yuv420",
                "epochs_used": epochs, "prune_epochs_used": prune_epochs}

    text = rd._epoch_budgets([point("long.mp4", 300, 30), point("short.yuv", 2134, 214), point("mid", 384, 39)])
    assert text == ("dnv-hinerv-medium-yuv420: the medium preset's, 300 + 30 to 2134 + 214 pruning epochs "
                    "by clip length and frame size")
    one = rd._epoch_budgets([point("long.mp4", 300, 30)])
    assert one == "dnv-hinerv-medium-yuv420: the medium preset's, 300 + 30 pruning epochs"


def test_bunny_records_the_recipe_and_the_learning_curve(monkeypatch, tmp_path):
    """bunny.py's bookkeeping with a stand-in encode: recipe, curves, and --merge of both."""
    from benchmarks import bunny

    calls = []

    def encode(src, dst, **kw):
        calls.append(kw)
        return {"params": 10, "prune_epochs": 1, "batch": kw["batch"] or 2, "psnr_float_unpruned": 30.0,
                "psnr": 30.1, "bpp": 0.1, "bytes": 99, "train_seconds": 5.0, "train_frames_per_second": 26.4,
                "train_tflops": 1.0, "rollbacks": 0, "train_curves": [[20.0, 25.0, 30.0]],
                "train_curves_seconds": [[2.5, 3.0, 3.5]], "train_seconds_unpruned": 3.7,
                "train_steady_frames_per_second": 132.0,
                "train_options": {"batch": kw["batch"] or 1, "lr": 1e-3, "beta1": kw["train_options"].get("beta1", 0.9),
                                  "compile_mode": "reduce-overhead", "amp": kw["train_options"].get("amp", True),
                                  "loss": "l2"}}

    monkeypatch.setattr(bunny.codec, "encode", encode)
    monkeypatch.setattr(bunny.codec, "info", lambda path: {"widths": [16, 8]})
    monkeypatch.setattr(bunny, "center_crop_640x1280", lambda clip, folder: folder / "crop.mkv")
    run = lambda *args: monkeypatch.setattr(sys, "argv", ["bunny.py", *args]) or bunny.main()  # noqa: E731
    run("clip.mp4", "--sizes", "3M", "--epochs", "3", "--batch", "1", "--train", "beta1=0.5", "amp=false",
        "--out", str(tmp_path / "a"))
    assert calls[0]["train_options"] == {"beta1": 0.5, "amp": False} and calls[0]["batch"] == 1
    (rec,) = json.loads((tmp_path / "a" / "bunny.json").read_text())
    assert rec["recipe"] == "batch 1, lr 0.001, beta1 0.5, reduce-overhead, fp32"
    assert (rec["first_epoch_seconds"], rec["train_seconds_unpruned"], rec["train_seconds"]) == (2.5, 3.7, 5.0)
    assert rec["widths"] == [16, 8] and rec["train_fps_steady"] == 132.0
    assert rec["recipe"] in (tmp_path / "a" / "bunny.md").read_text()
    run("clip.mp4", "--sizes", "0.35M", "--epochs", "3", "--out", str(tmp_path / "b"))
    run("--merge", str(tmp_path / "a" / "bunny.json"), "--out", str(tmp_path / "b"))
    curves = json.loads((tmp_path / "b" / "bunny-curves.json").read_text())
    assert curves == {"0.35M batch 1, lr 0.001, beta1 0.9, reduce-overhead, bf16": [20.0, 25.0, 30.0],
                      "3M batch 1, lr 0.001, beta1 0.5, reduce-overhead, fp32": [20.0, 25.0, 30.0]}
    assert [r["size"] for r in json.loads((tmp_path / "b" / "bunny.json").read_text())] == ["0.35M", "3M"]


def test_train_probe_profile_reports_where_the_time_goes(monkeypatch, capsys):
    """train_probe.py --profile on the CPU: the encoder's own step, timed and profiled (a smoke test of the
    GPU-session tool, so that it does not first fail on the device)."""
    from benchmarks import train_probe
    demo = Path(__file__).resolve().parents[1] / "nvcodec" / "data" / "bunny_demo.mp4"
    monkeypatch.setattr(sys, "argv", ["train_probe.py", str(demo), "--frames", "12", "--bpp", "0.1", "--steps", "2",
                                      "--batches", "1", "--modes", "eager", "--profile", "2"])
    train_probe.main()
    out = capsys.readouterr().out
    assert "eager batch=1:" in out and "frames/s (warm-up" in out
    assert "320x180 12 frames" in out and "== hinerv" in out        # the default model, sized for 12 frames
    assert "first step" in out and "one fp32 evaluation of 12 frames" in out
    assert "profiled 2 steps" in out and "aten::convolution_backward" in out
