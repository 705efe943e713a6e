"""The benchmarks' shared helpers: the command and machine every result records, and whole-file writes."""
import datetime
import json
import os
from pathlib import Path

import pytest

from benchmarks import common

BENCHMARKS = Path(common.__file__).resolve().parent


def test_the_command_is_recorded_as_it_can_be_typed_again():
    argv = [str(BENCHMARKS / "rd.py"), "a clip.mp4", "--bpp", "0.1"]
    assert common.command_line(argv) == "python3 -m benchmarks.rd 'a clip.mp4' --bpp 0.1"
    assert common.command_line(["/usr/bin/other", "-x"]) == "other -x"
    # Records written before command_line() hold the bare script name.
    assert common.shown_command("bunny.py clip.mp4 --sizes 3M") == "python3 -m benchmarks.bunny clip.mp4 --sizes 3M"
    assert common.shown_command("python3 -m benchmarks.rd x") == "python3 -m benchmarks.rd x"


def test_machine_describes_this_host():
    import torch

    m = common.machine()
    assert m["cpu_count"] == os.cpu_count() and f"{os.cpu_count()} CPU threads" in m["machine"]
    assert m["torch"] == torch.__version__
    assert (m["gpu"] == "none") == (not torch.cuda.is_available())
    assert datetime.datetime.fromisoformat(m["date"]).tzinfo is not None


def test_result_files_are_written_whole_into_new_folders(tmp_path):
    path = tmp_path / "new" / "rd.json"
    common.write_json(path, [{"bpp": 0.1}], {"gpu": "none"})
    assert json.loads(path.read_text()) == [{"bpp": 0.1}]
    assert json.loads(path.with_suffix(".meta.json").read_text()) == {"gpu": "none"}
    common.write_file(path, "replaced\n")
    assert path.read_text() == "replaced\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["rd.json", "rd.meta.json"]  # no temporary left


def test_figures_go_through_the_same_write(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    common.save_figure(fig, tmp_path / "plot.png", dpi=50)
    plt.close(fig)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
