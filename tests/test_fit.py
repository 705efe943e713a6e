"""The float model's PSNR that training reports is an exact measurement, not the epochs' running figure."""
import math

import numpy as np
import pytest
import torch

from nvcodec import sizing
from nvcodec.fit import TrainSettings, fit
from nvcodec.models.dsnerv import decoder_inputs


@pytest.mark.parametrize("model", ["dnerv", "dsnerv"])
def test_evaluated_psnr_is_the_float_models_psnr_over_all_frames(model):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (1, 40, 56, 3))
    frames = np.clip(base + np.arange(6)[:, None, None, None] * 9, 0, 255).astype(np.uint8)
    arch = sizing.plan_for_params(model, 56, 40, 0.01, frames=6).arch
    settings = TrainSettings(epochs=3, prune_epochs=2, batch=2, seed=0)
    result = fit(torch.from_numpy(frames), arch, settings, torch.device("cpu"), progress=False)

    final, unpruned = result.evaluated_psnr("final"), result.evaluated_psnr("train")
    assert final is not None and unpruned is not None
    # Recompute the final model's PSNR from its own outputs, frame by frame.
    inputs = decoder_inputs(arch, result.tables, torch.arange(6, dtype=torch.float64), 6)
    with torch.no_grad():
        out = result.decoder(*inputs)[..., :40, :56].clamp(0, 1)
    ref = torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255
    mse = (out.double() - ref).square().flatten(1).mean(1)
    expected = float((-10 * torch.log10(mse)).mean())
    assert final == pytest.approx(expected, abs=1e-3)
    # The running figure of the last epoch is another number (taken while the weights moved).
    assert math.isfinite(result.train_psnr)


def test_compiling_allows_a_process_many_model_shapes():
    """One process that encodes many videos must not fall back to eager training after 8 shapes."""
    import torch._dynamo

    from nvcodec.fit import RECOMPILE_LIMIT, Fitter

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    before = getattr(config, name)
    try:
        setattr(config, name, 8)
        frames = torch.zeros(4, 32, 48, 3, dtype=torch.uint8)
        arch = sizing.plan_for_params("dnerv", 48, 32, 0.01, frames=4).arch
        Fitter(frames, arch, TrainSettings(epochs=1, batch=2, compile=True), torch.device("cpu"))
        assert getattr(config, name) >= RECOMPILE_LIMIT
    finally:
        setattr(config, name, before)
