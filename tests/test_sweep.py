"""benchmarks.sweep: --only picks jobs by name, and an unknown name is refused before anything runs."""
import json

import pytest

from benchmarks import sweep
from benchmarks.common import split_settings


def _jobfile(tmp_path):
    path = tmp_path / "jobs.txt"
    path.write_text("# two jobs\nfirst: missing-a.mp4 --bpp 0.05\nsecond: missing-b.mp4 --bpp 0.1\n")
    return path


def test_only_runs_the_named_jobs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "first.json").write_text(json.dumps({"bpp": 0.05, "psnr": 30.0}))   # kept: not encoded again
    sweep.main([str(_jobfile(tmp_path)), "--out", str(out), "--parallel", "1", "--only", "first"])
    assert not (out / "second.log").exists()          # the other job never started
    table = (out / "sweep.md").read_text()
    assert "| first |" in table and "| second |" not in table
    assert "one job at a time" in table


def test_only_refuses_an_unknown_name(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="no job named third"):
        sweep.main([str(_jobfile(tmp_path)), "--out", str(out), "--only", "first", "third"])
    assert not out.exists()


def test_a_job_with_planner_settings_runs_through_hinerv_plan(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("small-grids: GRID_SHARE_GOAL=0.06 missing.mp4 --bpp 0.05\n")
    out = tmp_path / "out"
    sweep.main([str(jobs), "--out", str(out), "--parallel", "1"])
    command = (out / "small-grids.log").read_text().splitlines()[0]
    assert "-m benchmarks.hinerv_plan GRID_SHARE_GOAL=0.06 encode missing.mp4 -o" in command
    assert "Error: No such file: missing.mp4" in (out / "small-grids.log").read_text()   # dnv's own error
    assert not (out / "small-grids.json").exists()    # the encode failed: no report


def test_split_settings():
    settings, rest = split_settings(["A=1", "B=2", "clip.mp4", "--train", "x=1"])
    assert settings == ["A=1", "B=2"] and rest == ["clip.mp4", "--train", "x=1"]
    assert split_settings(["clip.mp4", "--bpp", "0.05"]) == ([], ["clip.mp4", "--bpp", "0.05"])


def test_a_wrong_planner_setting_is_refused_before_anything_runs(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("fine: missing.mp4 --bpp 0.05\nbad: GRID_SHARE_GOAL=2 missing.mp4 --bpp 0.05\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="GRID_SHARE_GOAL must be"):
        sweep.main([str(jobs), "--out", str(out)])
    assert not out.exists()
