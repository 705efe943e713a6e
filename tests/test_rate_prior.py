"""The main phase's rate term on the weights (compress.rate_prior, `--train rate_prior=`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nvcodec import sizing
from nvcodec.compress import rate_prior
from nvcodec.compress.rate_prior import WeightRatePrior
from nvcodec.fit import CodeFitter, TrainSettings, parse_train_option
from nvcodec.models.decoder import Decoder

pytestmark = pytest.mark.usefixtures("single_thread")


def tiny(alpha: float, seed: int = 0):
    """A ~3,000-parameter hinerv on 3 random 48x32 frames, with the prior at `alpha` (0: without it)."""
    rng = np.random.default_rng(5)
    video = torch.from_numpy(rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8))
    arch = sizing.plan_for_params("hinerv", 48, 32, 3000, frames=3).arch
    prior = WeightRatePrior(alpha, 6, 8 * 1500, log_loss=False) if alpha else None
    settings = TrainSettings(epochs=1, prune_epochs=0, batch=1, seed=seed)
    return CodeFitter(video, arch, settings, torch.device("cpu"), progress=False, log=lambda m: None, prior=prior)


def decoder_and_prior(alpha: float = 1.0):
    """A freshly initialised ~3,000-parameter hinerv decoder (seed 0) and a prior for a 1,000-bit target."""
    torch.manual_seed(0)
    decoder = Decoder(sizing.plan_for_params("hinerv", 48, 32, 3000, frames=3).arch)
    return decoder, WeightRatePrior(alpha, 6, 1000.0, log_loss=True)


@torch.no_grad()
def test_scaling_a_row_leaves_the_estimate_unchanged():
    decoder, prior = decoder_and_prior()
    before = float(prior.bits(decoder, noise=False))
    for p in prior.coded(decoder):
        p[0].mul_(4.0)      # a power of two: the symbols are exactly the same
    assert float(prior.bits(decoder, noise=False)) == before
    for p in prior.coded(decoder):
        p[1:].mul_(0.25)    # every other row scaled as a whole: the same symbols again
    assert float(prior.bits(decoder, noise=False)) == before


@torch.no_grad()
def test_the_estimate_falls_as_a_rows_values_gather_under_its_peak():
    decoder, prior = decoder_and_prior()
    before = float(prior.bits(decoder, noise=False))
    for p in prior.coded(decoder):
        r = p.flatten(1)
        peak = r.abs().argmax(1)
        keep = r.gather(1, peak[:, None])
        r.mul_(0.1).scatter_(1, peak[:, None], keep)     # everything but the peak ten times smaller
    assert float(prior.bits(decoder, noise=False)) < 0.7 * before


@torch.no_grad()
def test_the_term_comes_every_few_steps_and_weighs_for_the_steps_between():
    decoder, prior = decoder_and_prior(0.5)
    assert prior.penalty(decoder, torch.tensor(0.1), 1) == 0.0
    torch.manual_seed(1)
    term = float(prior.penalty(decoder, torch.tensor(0.1), rate_prior.EVERY))
    torch.manual_seed(1)
    bits = float(prior.bits(decoder))
    assert term == pytest.approx(rate_prior.EVERY * 0.5 / np.log(10) * bits / 1000.0, rel=1e-6)


def test_the_main_phase_with_the_prior_ends_with_cheaper_weights():
    """Same seed, same batches: the prior's network ends with fewer estimated bits than the plain one's."""
    plain, shaped = tiny(0.0), tiny(20.0)
    for fitter in (plain, shaped):
        for i in range(3 * rate_prior.EVERY):
            fitter._step(torch.tensor([i % 3]), 2e-3)
    with torch.no_grad():
        plain_bits, shaped_bits = (float(shaped.prior.bits(f.decoder, noise=False)) for f in (plain, shaped))
    assert shaped_bits < 0.97 * plain_bits


def test_the_prior_is_off_in_the_fine_tuning():
    fitter = tiny(20.0)
    fitter.phase = "prune"
    loss, _ = fitter._forward_loss(*fitter._batch(torch.tensor([0])))
    fitter.phase = "train"
    torch.manual_seed(3)
    with_term, _ = fitter._forward_loss(*fitter._batch(torch.tensor([0])))
    assert float(with_term) > float(loss)


def test_bad_settings_say_what_is_wrong(tmp_path, testdata):
    from nvcodec import codec

    with pytest.raises(ValueError, match="rate_prior must not be negative"):
        parse_train_option("rate_prior=-1")
    with pytest.raises(codec.CodecError, match="rate_prior needs a --bpp target"):
        codec.encode(testdata / "carphone_qcif_16f.mp4", tmp_path / "x.dnv", model_size=3000, frame_range=(0, 3),
                     device="cpu", epochs=1, prune_epochs=0, progress=False, train_options={"rate_prior": 0.7})
    assert not (tmp_path / "x.dnv").exists()
