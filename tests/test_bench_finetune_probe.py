"""benchmarks.finetune_probe: variants of the stage after training, all from one saved main phase, each a real file."""
import json
from pathlib import Path

import pytest
import torch

from benchmarks import finetune_probe
from nvcodec import fit
from nvcodec.compress import qat

CLIP = Path(__file__).parent / "data" / "carphone_qcif_16f.mp4"


def test_variants_start_from_one_main_phase_and_leave_nothing_patched(tmp_path):
    trainer_class, masks = fit.Trainer, fit.magnitude_masks
    assert finetune_probe.main([str(CLIP), "--frames", "0:6", "--bpp", "0.3", "--epochs", "3", "--device", "cpu",
                                "-q", "--out", str(tmp_path), "--variant", "base:", "--variant", "grid32:",
                                "--fp32-grid", "--variant", "noprune:", "--no-prune", "--train",
                                "prune_epochs=2", "--variant", "after:"]) == 0
    reports = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("base", "grid32", "noprune", "after")}
    assert (tmp_path / "main.pt").is_file()
    # One main phase: the network before pruning is the same for every variant.
    assert len({r["psnr_float_unpruned"] for r in reports.values()}) == 1
    assert reports["noprune"]["probe_options"] == ["--train", "prune_epochs=2", "--no-prune"]
    assert reports["noprune"]["prune_epochs"] == 2 and reports["base"]["prune_epochs"] == 1
    # A variant after --no-prune prunes again: the same file as the first.
    assert reports["after"]["bytes"] == reports["base"]["bytes"] and reports["after"]["psnr"] == reports["base"]["psnr"]
    for r in reports.values():
        assert abs(r["bpp"] / 0.3 - 1) < 0.05 and r["psnr"] > 10
    assert "| grid32 | `--fp32-grid` |" in (tmp_path / "probe.md").read_text()
    # The probe's patches are undone: the trainer class, and the float16 rounding of the grid.
    assert fit.Trainer is trainer_class and fit.magnitude_masks is masks
    x = torch.tensor([0.1, 1e-3, 3.3])
    assert torch.equal(qat.as_stored(x), x.half().float())
    # A saved main phase is only reused for its own network: another plan is refused in one line.
    with pytest.raises(SystemExit, match="trained for another network"):
        finetune_probe.main([str(CLIP), "--frames", "0:6", "--bpp", "0.1", "--epochs", "3", "--device", "cpu", "-q",
                             "--out", str(tmp_path), "--variant", "smaller:"])
    assert fit.Trainer is trainer_class
