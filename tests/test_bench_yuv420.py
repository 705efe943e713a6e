"""The benchmarks of issue 19: RGB against YUV 4:2:0 coding (benchmarks/yuv420.py), and rd.py's dnv series by
sample format with BD figures in both PSNRs. No encodes here (test_color.py has them)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import rd
from benchmarks.yuv420 import source_options, table


def point(codec, bpp, rgb, yuv, **extra):
    return {"clip": "c.mp4", "frame_range": [0, None], "codec": codec, "preset": extra.pop("preset", "medium"),
            "bpp": bpp, "bpp_container": bpp, "psnr_rgb": rgb, "psnr_yuv": yuv, "ms_ssim": 0.9, "encode_seconds": 1.0,
            "device": "cpu", **extra}


def test_rd_keeps_yuv420_points_in_their_own_series_with_bd_in_both_psnrs():
    db = lambda b: 10 * math.log10(b)   # noqa: E731 - PSNR linear in log-rate: BD-PSNR is the offset
    anchor = [point("x265", b, 30 + db(b), 32 + db(b), crf=20, input="source 4:2:0, BT.601 limited range")
              for b in (0.5, 1, 2, 4)]
    rgb = [point("dnv", b, 29 + db(b), 31 + db(b), model="hinerv", preset="fast", color="rgb", target_bpp=b)
           for b in (0.6, 1.2, 2.4)]
    yuv = [point("dnv", b, 29 + db(b), 31.5 + db(b), model="hinerv", preset="fast", color="yuv420",
                 target_bpp=b) for b in (0.6, 1.2, 2.4)]
    assert rd.series(yuv[0]) == "dnv-hinerv-fast-yuv420" and rd.series(rgb[0]) == "dnv-hinerv-fast"
    rows = {r["test"]: r for r in rd.compute_bd(anchor + rgb + yuv) if r["clip"] == "c.mp4"}
    rgb_row, yuv_row = rows["dnv-hinerv-fast"], rows["dnv-hinerv-fast-yuv420"]
    assert rgb_row["bd_psnr_db"] < -0.9 and rgb_row["bd_psnr_yuv_db"] < -0.9      # 1 dB below the anchor
    assert yuv_row["bd_psnr_db"] == pytest.approx(rgb_row["bd_psnr_db"], abs=1e-9)  # the same in RGB
    assert yuv_row["bd_psnr_yuv_db"] - rgb_row["bd_psnr_yuv_db"] == pytest.approx(0.5, abs=0.02)
    assert "BD-PSNR dB YUV" in rd.render_md({"meta": {"command": "x", "date": "d", "machine": "m", "gpu": "g",
                                                      "torch": "t", "av": "a", "ffmpeg": "f"},
                                             "points": anchor + yuv, "bd": rd.compute_bd(anchor + yuv)})


def test_rd_asks_for_a_dnv_point_again_in_another_sample_format():
    old = point("dnv", 0.05, 30, 31, model="hinerv", target_bpp=0.05)       # before the sample format existed
    new = point("dnv", 0.05, 30, 31, model="hinerv", target_bpp=0.05, color="yuv420")
    present = lambda have, color: rd._present(have, "dnv", "medium", 0.05, None, "hinerv", color)  # noqa: E731
    assert present([old], "rgb") and not present([old], "yuv420") and not present([old], "source")
    assert present([new], "yuv420") and present([new], "source") and not present([new], "rgb")


def test_job_arguments_are_parsed_as_dnv_encode_parses_them():
    source, options = source_options(["clip.yuv", "--size", "320x192", "--fps", "12", "--frames", "0:8",
                                      "--bpp", "0.1", "--color", "rgb"])
    assert source == "clip.yuv" and options["size"] == (320, 192) and options["frame_range"] == (0, 8)
    assert float(options["fps"]) == 12 and options["pix_fmt"] == "yuv420p"


def test_the_table_pairs_each_clip_and_gives_the_differences():
    jobs = [("a-0.1-rgb", []), ("a-0.1-yuv420", []), ("b-rgb", []), ("b-yuv420", []), ("a-0.1-mse-yuv420", [])]
    fig = lambda rgb, yuv: {"bpp": 0.1, "psnr_rgb": rgb, "psnr_yuv": yuv, "ms_ssim": 0.9}  # noqa: E731
    figures = {"a-0.1-rgb": fig(30, 31), "a-0.1-yuv420": fig(30.2, 32), "b-rgb": fig(20, 21), "b-yuv420": fig(20, 22),
               "a-0.1-mse-yuv420": fig(29.9, 31.5)}
    md = table(Path("out"), jobs, figures, {"command": "c", "machine": "m", "gpu": "g", "torch": "t", "date": "d"})
    assert "| a-0.1 | 0.1000 / 0.1000 | 30.00 / 30.20 (+0.20) | 31.00 / 32.00 (+1.00) |" in md
    assert "| a-0.1-mse | 0.1000 / 0.1000 | 30.00 / 29.90 (-0.10) | 31.00 / 31.50 (+0.50) |" in md
    assert "| **mean of 2 pairs** | | (+0.10) | (+1.00) |" in md
