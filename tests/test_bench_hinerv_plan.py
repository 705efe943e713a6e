"""benchmarks.hinerv_plan and .grid_share: a normal encode whose planner runs with other constants, and nothing
left patched."""
import json
from pathlib import Path

import pytest

from benchmarks import grid_share, hinerv_plan
from nvcodec import sizing
from nvcodec.models import hinerv

CLIP = Path(__file__).parent / "data" / "carphone_qcif_16f.mp4"


def plan_with(monkeypatch, **constants):
    with monkeypatch.context() as m:
        for name, value in constants.items():
            m.setattr(hinerv, name, value)
        return sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.3, 6)


def encode_args(tmp_path, report):
    return ["encode", str(CLIP), "--frames", "0:6", "--bpp", "0.3", "--epochs", "2", "--device", "cpu", "-q",
            "-o", str(tmp_path / "o.dnv"), "--json", str(report)]


def test_the_goal_moves_the_grids_and_is_restored(tmp_path, monkeypatch):
    default = hinerv.GRID_SHARE_GOAL
    planned = plan_with(monkeypatch, GRID_SHARE_GOAL=0.06)
    assert planned.arch.grid_ch != sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.3, 6).arch.grid_ch
    report = tmp_path / "r.json"
    grid_share.main(["0.06", *encode_args(tmp_path, report)])
    assert json.loads(report.read_text())["params"] == planned.params
    assert hinerv.GRID_SHARE_GOAL == default
    with pytest.raises(SystemExit, match="between 0 and 1"):
        grid_share.main(["25", "encode", str(CLIP)])


def test_local_grid_settings_reach_the_file_and_are_restored(tmp_path, monkeypatch):
    planned = plan_with(monkeypatch, LOCAL_CH=2, LOCAL_EVERY=3)
    assert (planned.arch.local_ch, planned.arch.local_every) == (2, 3)
    assert planned.params != sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.3, 6).params
    report = tmp_path / "r.json"
    hinerv_plan.main(["LOCAL_CH=2", "LOCAL_EVERY=3", *encode_args(tmp_path, report)])
    record = json.loads(report.read_text())
    assert record["params"] == planned.params
    assert (hinerv.LOCAL_CH, hinerv.LOCAL_EVERY) == (4, 6)


def test_grid_levels_reach_the_file_and_are_restored(tmp_path, monkeypatch):
    default = hinerv.GRID_LEVELS
    planned = plan_with(monkeypatch, GRID_LEVELS=((2, 6), (4, 12)))
    assert planned.arch.grid_every == (6, 12)
    report = tmp_path / "r.json"
    hinerv_plan.main(["GRID_LEVELS=2x6,4x12", *encode_args(tmp_path, report)])
    assert json.loads(report.read_text())["params"] == planned.params
    assert hinerv.GRID_LEVELS == default


def test_strides_reach_the_file_and_the_chooser_is_restored(tmp_path, monkeypatch):
    default = hinerv.choose_strides
    planned = plan_with(monkeypatch, choose_strides=lambda width, height: (2, 2, 2, 2))
    assert planned.arch.strides == (2, 2, 2, 2) != sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.3, 6).arch.strides
    report = tmp_path / "r.json"
    hinerv_plan.main(["STRIDES=2,2,2,2", *encode_args(tmp_path, report)])
    assert json.loads(report.read_text())["params"] == planned.params
    assert hinerv.choose_strides is default


def test_the_fallback_settings_reach_the_file_and_are_restored(tmp_path, monkeypatch):
    # 6 frames of 176x144 at 0.12 bpp are below every usual network: the fallback plans it.
    floors, fit = hinerv.FLOORS, sizing.FALLBACK_FIT
    default = sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.12, 6)
    with monkeypatch.context() as m:
        m.setattr(hinerv, "FLOORS", ((4, 1),))
        m.setattr(sizing, "FALLBACK_FIT", 0.25)
        planned = sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.12, 6)
    assert planned.arch.depths == (1, 1, 1, 1) != default.arch.depths
    report = tmp_path / "r.json"
    args = encode_args(tmp_path, report)
    args[args.index("0.3")] = "0.12"
    hinerv_plan.main(["FLOORS=4x1", "FALLBACK_FIT=0.25", *args])
    assert json.loads(report.read_text())["params"] == planned.params
    assert (hinerv.FLOORS, sizing.FALLBACK_FIT) == (floors, fit)


@pytest.mark.parametrize("bad, message", [("LOCAL_CH=0", "at least 1"), ("LOCAL_EVERY=x", "frames per entry"),
                                          ("GRID_LEVELS=2x6,4", "CHANNELSxFRAMES"),
                                          ("GRID_LEVELS=2x100", "CHANNELSxFRAMES"),
                                          ("STRIDES=6,2,2", "upsampling factors"),
                                          ("STRIDES=2,2", "upsampling factors"),
                                          ("FLOORS=3x3", "STEMxBLOCKS"), ("NEAR_FLOORS=8", "STEMxBLOCKS"),
                                          ("FALLBACK_FIT=2", "between 0 and 1"),
                                          ("DEPTH=3", "NAME one of"), ("LOCAL_CH", "NAME one of")])
def test_bad_settings_are_refused_in_one_line(bad, message):
    with pytest.raises(SystemExit, match=message):
        hinerv_plan.main([bad, "encode", str(CLIP)])
