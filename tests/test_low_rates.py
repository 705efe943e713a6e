"""The lowest rates: below what the narrowest network holds at the planned depth, the planner takes fewer
blocks a stage and rate control codes at fewer bits, so that short, small clips reach rates such as the
README's 0.025 bpp; below what the smallest network costs at the lowest depth, one line names the bound."""
from __future__ import annotations

import math

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


def test_below_the_usual_floor_a_deeper_decoder_comes_before_wider_grids():
    # carphone, 120 frames at 0.01 bpp: three blocks a stage fit with the narrowest grids; "the largest that fits" by
    # bytes took two blocks and grids twice as wide (0.76 and 0.32 dB worse over two seeds,
    # benchmarks/results/planner_fallback_cpu_2026-12-07).
    plan = sizing.plan_for_bpp("hinerv", 176, 144, 120, 0.01, 6)
    assert (plan.arch.widths[0], plan.arch.depths[0], plan.arch.grid_ch) == (4, 3, (1, 2))


def test_below_the_usual_floor_the_grids_share_is_the_nearest_to_the_goal_of_those_that_fit():
    width, height, frames, bpp = 320, 192, 9, 0.025
    budget = bpp * width * height * frames / 8
    plan = sizing.plan_for_bpp("hinerv", width, height, frames, bpp, 6)
    bits = (MIN_BITS + 6) / 2
    stem, depth = plan.arch.widths[0], plan.arch.depths[0]
    fitting = [arch for scale in hinerv.GRID_SCALES
               if hinerv.predict_bytes(arch := hinerv.make_arch(width, height, plan.arch.strides, stem, scale,
                                                                 depth=depth), frames, bits, 0.1) <= budget]
    assert len({arch.grid_ch for arch in fitting}) > 1         # a choice was made
    distance = {arch.grid_ch: abs(math.log(sizing.embedding_bytes(arch, frames, bits)
                                           / hinerv.predict_bytes(arch, frames, bits, 0.1) / hinerv.GRID_SHARE_GOAL))
                for arch in fitting}
    assert plan.arch.grid_ch == min(distance, key=distance.get)


def test_near_floors_come_first_where_they_keep_about_the_planned_depth(monkeypatch):
    width, height, frames, bpp = 320, 192, 9, 0.05      # CiscoVT: 3,456 bytes, under stem 8's network at 6 bits
    budget = bpp * width * height * frames / 8
    default = sizing.plan_for_bpp("hinerv", width, height, frames, bpp, 6)
    monkeypatch.setattr(hinerv, "NEAR_FLOORS", ((8, 3), (7, 3)))
    plan = sizing.plan_for_bpp("hinerv", width, height, frames, bpp, 6)
    assert plan.arch.widths[0] == 7 != default.arch.widths[0]
    assert hinerv.predict_bytes(plan.arch, frames, 6 - sizing.NEAR_BITS, 0.1) <= budget
    # Where no near floor fits at that depth, the plan is the one without them.
    monkeypatch.setattr(hinerv, "NEAR_FLOORS", ((8, 3),))
    assert sizing.plan_for_bpp("hinerv", width, height, frames, bpp, 6).arch == default.arch
