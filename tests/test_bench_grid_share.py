"""benchmarks.grid_share: a normal encode whose planner aims the grids at another share, and nothing left patched."""
import json
from pathlib import Path

import pytest

from benchmarks import grid_share
from nvcodec import sizing
from nvcodec.models import hinerv

CLIP = Path(__file__).parent / "data" / "carphone_qcif_16f.mp4"


def test_the_goal_moves_the_grids_and_is_restored(tmp_path):
    default = hinerv.GRID_SHARE_GOAL
    hinerv.GRID_SHARE_GOAL = 0.06
    try:
        planned = sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.3, 6)
    finally:
        hinerv.GRID_SHARE_GOAL = default
    assert planned.arch.grid_ch != sizing.plan_for_bpp("hinerv", 176, 144, 6, 0.3, 6).arch.grid_ch
    report = tmp_path / "r.json"
    grid_share.main(["0.06", "encode", str(CLIP), "--frames", "0:6", "--bpp", "0.3", "--epochs", "2",
                     "--device", "cpu", "-q", "-o", str(tmp_path / "o.dnv"), "--json", str(report)])
    assert json.loads(report.read_text())["params"] == planned.params
    assert hinerv.GRID_SHARE_GOAL == default
    with pytest.raises(SystemExit, match="between 0 and 1"):
        grid_share.main(["25", "encode", str(CLIP)])
