"""benchmarks.sweep_bd: curves per sample format and variant, BD in both metrics where both sides have it."""
import json
import math

from benchmarks import sweep_bd


def report(color: str, bpp: float, psnr: float, psnr_yuv: float, *extra: str) -> dict:
    args = ["clip.mp4", "--bpp", str(bpp), "--preset", "fast", "--color", color.split()[0], *extra]
    return {"input": "/x/clip.mp4", "frames": 10, "model": "hinerv", "preset": "fast", "quant_bits": 6,
            "color": color, "bpp": bpp, "psnr": psnr, "psnr_yuv": psnr_yuv, "sweep_args": args}


def anchors(tmp_path, source_planes: bool):
    points = [{"clip": "clip.mp4", "frame_range": [0, None], "codec": "x265", "preset": "medium", "bpp": b,
               "psnr_rgb": 20 + 10 * math.log10(b), "psnr_yuv": 24 + 10 * math.log10(b),
               "input": "source 4:2:0, BT.601 limited range" if source_planes else "RGB -> 4:2:0, BT.601"}
              for b in (0.01, 0.03, 0.06, 0.12)]
    path = tmp_path / "rd.json"
    path.write_text(json.dumps({"points": points}))
    return sweep_bd.anchor_curves([path])


def test_formats_and_variants_are_separate_curves():
    reports = [report("yuv420 (BT.601)", b, 21 + 100 * b, 25 + 100 * b) for b in (0.025, 0.05)]
    reports += [report("rgb (source: BT.601)", b, 20 + 100 * b, 24 + 100 * b) for b in (0.025, 0.05)]
    reports += [report("yuv420 (BT.601)", b, 21 + 100 * b, 25 + 100 * b, "--train", "rate=true") for b in (0.025, 0.05)]
    keys = sorted(sweep_bd.curves(reports))
    assert [(k[4], k[6]) for k in keys] == [("rgb", ()), ("yuv420", ()), ("yuv420", ("--train", "rate=true"))]


def test_planner_settings_make_a_variant_of_their_own():
    default = [report("yuv420 (BT.601)", b, 21 + 100 * b, 25 + 100 * b) for b in (0.025, 0.05)]
    small_grids = [report("yuv420 (BT.601)", b, 22 + 100 * b, 26 + 100 * b) for b in (0.025, 0.05)]
    for r in small_grids:
        r["sweep_args"] = ["GRID_SHARE_GOAL=0.06", *r["sweep_args"]]
    keys = sorted(sweep_bd.curves(default + small_grids))
    assert [(k[0], k[6]) for k in keys] == [("clip.mp4", ()), ("clip.mp4", ("GRID_SHARE_GOAL=0.06",))]


def test_bd_in_both_metrics_and_only_against_the_same_planes(tmp_path):
    # PSNR linear in log-rate on both sides, so the interpolation is exact: BD-PSNR is the offset.
    points = [(b, 21 + 10 * math.log10(b), 26 + 10 * math.log10(b)) for b in (0.025, 0.05, 0.1)]
    same = anchors(tmp_path, source_planes=True)[("clip.mp4", (0, None), "x265", "medium")]
    rgb_bd, _ = sweep_bd.bd_pair(same, points, 1)
    yuv_bd, yuv_rate = sweep_bd.bd_pair(same, points, 2)
    assert abs(rgb_bd - 1.0) < 1e-6 and abs(yuv_bd - 2.0) < 1e-6 and yuv_rate < 0
    other = anchors(tmp_path, source_planes=False)[("clip.mp4", (0, None), "x265", "medium")]
    assert sweep_bd.bd_pair(other, points, 2) == (None, None)
    assert sweep_bd.bd_pair(other, points, 1)[0] is not None


def test_scores_replace_the_reports_psnrs():
    reports = [report("rgb (source: BT.601)", 0.05, 25.0, 29.0), report("rgb (source: BT.601)", 0.1, 27.0, 31.0)]
    sweep_bd.apply_scores(reports, ["a-rgb", "b-rgb"], {"a-rgb": {"psnr_rgb": 25.5, "psnr_yuv": 28.5}})
    assert (reports[0]["psnr"], reports[0]["psnr_yuv"]) == (25.5, 28.5)
    assert reports[1]["psnr_yuv"] is None     # not rescored: its encode report's YUV PSNR is another reference


def test_a_direct_encode_joins_the_curve_of_its_recorded_frames():
    """A report without a sweep's arguments (a plain `dnv encode --json`) is placed by its own `frame_range`; one
    with neither counts as the whole clip."""
    swept = report("yuv420 (BT.601)", 0.025, 30.0, 35.0, "--frames", "0:96")
    direct = {k: v for k, v in report("yuv420 (BT.601)", 0.05, 32.0, 37.0).items() if k != "sweep_args"}
    (key, points), = sweep_bd.curves([swept, dict(direct, frame_range=[0, 96])]).items()
    assert key[1] == (0, 96) and len(points) == 2
    (key,) = sweep_bd.curves([direct, dict(direct, bpp=0.1)])
    assert key[1] == (0, None)


def encode_report(bpp: float, psnr: float) -> dict:
    """A 4:2:0 report with every field an rd.json point takes."""
    return report("yuv420 (BT.601)", bpp, psnr, psnr + 4) | {
        "encode_seconds": 1.0, "width": 8, "height": 8, "ms_ssim": 0.9, "device": "cpu", "epochs": 3,
        "prune_epochs": 1, "params": 10, "target_bpp": bpp, "train_options": {"optimizer": "adam"}}


def test_supersede_keeps_the_old_default_as_its_own_curve(tmp_path):
    """--add-to with --supersede: the old points of the reports' curves become a variant (their own series in
    benchmarks.rd), the reports are added although their arguments repeat, and other curves are untouched."""
    from benchmarks import rd

    old = [sweep_bd.rd_point(encode_report(b, 21.0)) for b in (0.025, 0.05)]
    path = tmp_path / "rd.json"
    path.write_text(json.dumps({"points": [*old, dict(old[0], clip="other.mp4")]}))
    files = []
    for b in (0.025, 0.05):
        files.append(tmp_path / f"{b}.json")
        files[-1].write_text(json.dumps(encode_report(b, 22.0)))
    sweep_bd.main([*map(str, files), "--anchors", str(path), "--add-to", str(path), "--supersede", "goal0.25"])
    points = json.loads(path.read_text())["points"]
    assert len(points) == 5
    assert sorted(rd.series(p) for p in points if p["clip"] == "clip.mp4") == \
        ["dnv-hinerv-fast-yuv420"] * 2 + ["dnv-hinerv-fast-yuv420-goal0.25"] * 2
    assert [p["psnr_rgb"] for p in points if p["clip"] == "clip.mp4" and not p.get("variant")] == [22.0, 22.0]
    assert not any(p.get("variant") for p in points if p["clip"] == "other.mp4")


def test_add_to_refuses_reports_with_other_settings_than_the_defaults(tmp_path, capsys):
    """rd.json's dnv series are the encoder's defaults: a report of `--prune 0.2` must not join them."""
    import pytest

    path = tmp_path / "rd.json"
    path.write_text(json.dumps({"points": []}))
    files = []
    for b in (0.025, 0.05):
        files.append(tmp_path / f"{b}.json")
        files[-1].write_text(json.dumps(encode_report(b, 22.0) | {
            "sweep_args": ["clip.mp4", "--bpp", str(b), "--prune", "0.2"]}))
    with pytest.raises(SystemExit) as e:
        sweep_bd.main([*map(str, files), "--anchors", str(path), "--add-to", str(path)])
    assert "--prune 0.2" in str(e.value) and json.loads(path.read_text())["points"] == []
