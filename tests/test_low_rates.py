"""The lowest rates: below what the narrowest network holds at the planned depth, the planner takes fewer
blocks a stage and rate control codes at fewer bits, so that short, small clips reach rates such as the
README's 0.025 bpp; below what the smallest network costs at the lowest depth, one line names the bound."""
from __future__ import annotations

import pytest

from nvcodec import codec, sizing
from nvcodec.compress.ratecontrol import MIN_BITS
from nvcodec.models import hinerv


def test_below_the_usual_floor_the_planner_takes_fewer_blocks_that_fit_at_the_lowest_depth():
    width, height, frames = 320, 192, 9            # CiscoVT: 0.025 bpp is 1,728 bytes
    budget = 0.025 * width * height * frames / 8
    plan = sizing.plan_for_bpp("hinerv", width, height, frames, 0.025, 6)
    assert plan.arch.widths[0] == min(stem for stem, _ in hinerv.FLOORS) and plan.arch.depths[0] < 3
    assert hinerv.predict_bytes(plan.arch, frames, MIN_BITS, 0.1) <= budget < plan.predicted_bytes
    # A higher rate keeps the usual depth of blocks.
    assert sizing.plan_for_bpp("hinerv", width, height, frames, 0.05, 6).arch.depths[0] == 3
    with pytest.raises(sizing.InfeasibleRate, match="smallest model"):
        sizing.plan_for_bpp("hinerv", width, height, frames, 0.005, 6)


def test_a_low_rate_file_lands_on_its_target(testdata, tmp_path, single_thread):
    report = codec.encode(testdata / "CiscoVT2people_320x192_5f.yuv", tmp_path / "c.dnv", bpp=0.04,
                          size=(320, 192), fps=12, epochs=2, prune_epochs=0, device="cpu", progress=False)
    assert report["params"] == sizing.plan_for_bpp("hinerv", 320, 192, 5, 0.04, 6).params
    assert abs(report["bpp"] / 0.04 - 1) <= 0.05, report["bpp"]
    frames, _ = codec.decode_to_array(tmp_path / "c.dnv", device="cpu")
    assert frames.shape == (5, 192, 320, 3)
