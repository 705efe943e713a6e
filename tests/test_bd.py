"""Bjøntegaard delta: analytic cases and JCTVC-E137's published worked examples."""
import math

import pytest

from benchmarks.bd import bd_psnr, bd_rate

# Anchor on an exactly linear log-rate model: PSNR = 30 + 6 dB per doubling of the rate.
# PCHIP reproduces a straight line exactly, so the answers below are exact.
SLOPE = 6.0 / math.log(2.0)  # dB per unit of ln(rate)
RATES = [0.01, 0.02, 0.04, 0.08, 0.16]
PSNRS = [30.0 + SLOPE * math.log(r / RATES[0]) for r in RATES]


def test_identical_curves_give_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)


def test_same_quality_at_80_percent_of_the_rate():
    rates_b = [0.8 * r for r in RATES]
    assert bd_rate(RATES, PSNRS, rates_b, PSNRS) == pytest.approx(-20.0, abs=1e-9)
    # At equal rate, B is ahead by the PSNR that 1/0.8 times the rate buys on the line.
    assert bd_psnr(RATES, PSNRS, rates_b, PSNRS) == pytest.approx(-SLOPE * math.log(0.8), abs=1e-9)


def test_half_a_db_better_everywhere():
    psnr_b = [p + 0.5 for p in PSNRS]
    assert bd_psnr(RATES, PSNRS, RATES, psnr_b) == pytest.approx(0.5, abs=1e-9)
    # 0.5 dB is 1/12 of a doubling: B needs 2^(-1/12) of the bits, i.e. -5.6126 %.
    expected = (2.0 ** (-0.5 / 6.0) - 1.0) * 100.0
    assert expected == pytest.approx(-5.6126, abs=1e-4)
    assert bd_rate(RATES, PSNRS, RATES, psnr_b) == pytest.approx(expected, abs=1e-9)


def test_jctvc_e137_worked_examples():
    """JCTVC-E137's two cases, as carried by Netflix VMAF's bd_rate_calculator_test.py
    (expected -0.00465215420752807 and -0.018779823450567612 as fractions, i.e. -0.4652 % and
    -1.8780 %; checked there to 4 decimals of the fraction, matched here to 1e-9 %)."""
    a = [(108048.8736, 43.6471), (61279.976, 40.3953), (33905.6656, 37.247), (18883.6928, 34.2911)]
    b = [(108061.2784, 43.6768), (61299.9936, 40.4232), (33928.7472, 37.2761), (18910.912, 34.3147)]
    assert bd_rate(*zip(*a), *zip(*b)) == pytest.approx(-0.465215420752807, abs=1e-9)
    a = [(40433.8848, 37.5761), (7622.7456, 35.3756), (2394.488, 33.8977), (1017.6184, 32.0603)]
    b = [(40370.12, 37.5982), (7587.0024, 35.4025), (2390.0944, 33.9194), (1017.0984, 32.0822)]
    assert bd_rate(*zip(*a), *zip(*b)) == pytest.approx(-1.8779823450567612, abs=1e-9)


def test_order_of_points_does_not_matter():
    rates_b = [0.8 * r for r in RATES]
    assert bd_rate(RATES[::-1], PSNRS[::-1], rates_b, PSNRS) == pytest.approx(-20.0, abs=1e-9)


def test_no_overlap_or_too_few_points_gives_none():
    far = [r * 1000 for r in RATES]
    high = [p + 100 for p in PSNRS]
    assert bd_psnr(RATES, PSNRS, far, PSNRS) is None      # rates do not overlap
    assert bd_rate(RATES, PSNRS, RATES, high) is None     # PSNRs do not overlap
    assert bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS) is None
    assert bd_psnr(RATES, PSNRS, [], []) is None


def test_two_points_are_accepted_and_dominated_points_dropped():
    rates_b = [0.8 * r for r in RATES]
    assert bd_rate(RATES, PSNRS, rates_b[1:3], PSNRS[1:3]) == pytest.approx(-20.0, abs=1e-9)
    # A point with more bits and less PSNR than its neighbour is not on the curve.
    noisy_r, noisy_p = RATES + [0.05], PSNRS + [PSNRS[2] - 1.0]
    assert bd_rate(noisy_r, noisy_p, rates_b, PSNRS) == pytest.approx(-20.0, abs=1e-9)


def test_rd_summary_per_clip_and_average(tmp_path):
    """rd.py's BD table and outputs from synthetic points: dnv at 80 % of x265's rate everywhere."""
    import json

    from benchmarks import rd

    points = []
    for clip in ("a.mp4", "b.mp4"):
        for rate, psnr in zip(RATES, PSNRS):
            common = {"clip": clip, "frame_range": [0, None], "psnr_rgb": psnr, "psnr_yuv": psnr + 4,
                      "ms_ssim": 0.95, "bpp_container": rate, "encode_seconds": 1.0,
                      "decode_seconds": 0.1, "device": "cpu", "frames": 10, "width": 64, "height": 48}
            # b.mp4's anchors coded an RGB conversion (as for a folder of JPEGs): no YUV figure against them.
            source = "source 4:2:0, BT.601 limited range" if clip == "a.mp4" else "RGB -> 4:2:0, BT.601 limited range"
            points.append({**common, "codec": "x265", "preset": "medium", "crf": 30, "bpp": rate, "input": source})
            points.append({**common, "codec": "dnv", "preset": "medium", "epochs": 5,
                           "target_bpp": rate, "bpp": 0.8 * rate})
    points.append({"clip": "a.mp4", "frame_range": [0, None], "codec": "dnv", "preset": "medium",
                   "epochs": 5, "target_bpp": 0.001, "skipped": "CodecError: infeasible"})
    data = {"points": points, "bd": [], "meta": {"command": "test", "date": "today", "machine": "m",
                                                  "gpu": "none", "torch": "t", "av": "a",
                                                  "ffmpeg": "f", "epochs": 5}}
    rd.save(tmp_path, data)
    bd_rows = json.loads((tmp_path / "rd.json").read_text())["bd"]
    assert {(r["clip"], r["test"], r["anchor"]) for r in bd_rows} == {
        ("a.mp4", "dnv-medium-e5", "x265-medium"), ("b.mp4", "dnv-medium-e5", "x265-medium"),
        ("average", "dnv-medium-e5", "x265-medium")}
    for r in bd_rows:
        assert r["bd_rate_percent"] == pytest.approx(-20.0, abs=1e-9)
        if r["clip"] == "b.mp4":
            assert r["bd_rate_yuv_percent"] is None and r["bd_psnr_yuv_db"] is None
        else:
            assert r["bd_rate_yuv_percent"] == pytest.approx(-20.0, abs=1e-9)
    average = next(r for r in bd_rows if r["clip"] == "average")
    assert average["clips_bd_rate_percent"] == 2 and average["clips_bd_rate_yuv_percent"] == 1
    text = (tmp_path / "rd.md").read_text()
    assert "-20.00" in text and "skipped: CodecError: infeasible" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "rd_a.png").stat().st_size > 0
