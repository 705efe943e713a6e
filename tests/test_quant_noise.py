"""The main phase's rounding noise (`--train quant_noise=`): which steps run on noisy weights, at which depth."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nvcodec import sizing
from nvcodec.fit import CodeFitter, TrainSettings, parse_train_option

pytestmark = pytest.mark.usefixtures("single_thread")


def noisy_fitter(epochs: int, bits: int) -> CodeFitter:
    """A ~3,000-parameter hinerv on 3 random 48x32 frames, with noise at `bits` in the last half of `epochs`."""
    rng = np.random.default_rng(5)
    video = torch.from_numpy(rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8))
    arch = sizing.plan_for_params("hinerv", 48, 32, 3000, frames=3).arch
    settings = TrainSettings(epochs=epochs, prune_epochs=0, batch=1, quant_noise=0.5)
    return CodeFitter(video, arch, settings, torch.device("cpu"), progress=False, log=lambda m: None,
                      noise_bits=bits)


def test_the_last_share_of_the_main_phase_steps_on_noisy_values_and_its_evaluation_does_not():
    fitter = noisy_fitter(epochs=4, bits=4)
    calls = []
    swap = fitter.file_values

    def recording(decoder, tables, bits, noise=False):
        calls.append((fitter.phase, fitter.epoch, bits, noise))
        return swap(decoder, tables, bits, noise)
    fitter.file_values = recording
    fitter.fit()
    steps = [c for c in calls if c[0] == "train"]
    assert {c[1] for c in steps} == {2, 3} and len(steps) == 2 * 3     # epochs 3 and 4: 3 steps each
    assert all(bits == 4 and noise for _, _, bits, noise in steps)
    assert not [c for c in calls if c[0] != "train" and c[3]]           # no noise in any evaluation


def test_the_noise_onset_is_not_taken_for_a_divergence(monkeypatch):
    """The running PSNR drops when the noise starts (by up to 6 dB at a 4-bit plan, which once rolled a carphone
    encode back five times and failed it): each epoch is checked against the best epoch with or without noise as
    itself."""
    from nvcodec.train import recovery

    fitter = noisy_fitter(epochs=6, bits=2)
    checked = []
    monkeypatch.setattr(recovery, "diverged", lambda psnr, best: checked.append((fitter.epoch, psnr, best)) or False)
    fitter.fit()
    assert [epoch for epoch, _, _ in checked] == list(range(6))
    for epoch, _, best in checked:
        same = [p for e, p, _ in checked if e < epoch and (e >= 3) == (epoch >= 3)]
        assert best == max(same, default=-float("inf")), epoch


def test_the_share_must_lie_in_0_1():
    assert parse_train_option("quant_noise=0.5") == ("quant_noise", 0.5)
    with pytest.raises(ValueError, match=r"quant_noise must be in \[0, 1\]"):
        parse_train_option("quant_noise=1.5")
