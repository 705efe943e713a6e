"""benchmarks.sweep: --only picks jobs by name, and an unknown name is refused before anything runs."""
import json

import pytest

from benchmarks import sweep


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
