import torch
import torch.nn as nn

from nvcodec.compress.prune import magnitude_masks


def two_layers() -> nn.Module:
    """A small and a large conv whose weights have the same spread of magnitudes."""
    net = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 64, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.linspace(0.1, 1, 4).view(4, 1, 1, 1))
        net[1].weight.copy_(torch.linspace(0.01, 1, 256).view(64, 4, 1, 1))
    return net


def test_global_magnitude_prunes_the_fraction_by_size_of_weight():
    masks = magnitude_masks(two_layers(), 0.25)
    pruned = {n: int((~m).sum()) for n, m in masks.items()}
    assert sum(pruned.values()) == 65          # a quarter of 260, the smallest |w| wherever they are
    assert pruned["0.weight"] == 1             # 0.1 < 0.25 (the threshold); 0.4 is above it


def test_a_size_exponent_prunes_the_larger_tensor_more():
    plain = magnitude_masks(two_layers(), 0.25)
    by_size = magnitude_masks(two_layers(), 0.25, size_exponent=0.5)
    assert sum(int((~m).sum()) for m in by_size.values()) == 65
    assert int((~by_size["0.weight"]).sum()) == 0 < int((~plain["0.weight"]).sum())
    assert int((~by_size["1.weight"]).sum()) == 65


def test_pruning_inside_the_main_phase_keeps_its_zeros_to_the_end():
    """`prune_at`: the masks are set after that share of the main phase's epochs and held through the rest of
    training, so the weights pruned then are zero in the trained network."""
    import numpy as np

    from nvcodec import sizing
    from nvcodec.compress.prune import prunable
    from nvcodec.fit import TrainSettings, fit

    rng = np.random.default_rng(2)
    frames = torch.from_numpy(rng.integers(0, 256, (4, 40, 56, 3)).astype(np.uint8))
    arch = sizing.plan_for_params("hinerv", 56, 40, 0.002, frames=4).arch
    lines = []
    settings = TrainSettings(epochs=4, prune_epochs=1, batch=2, seed=0, prune=0.2, prune_at=0.5, qat=False)
    result = fit(frames, arch, settings, torch.device("cpu"), progress=False, log=lines.append)
    assert any("after epoch 2" in line for line in lines)
    weights = prunable(result.decoder)
    zeros = sum(int((p == 0).sum()) for _, p in weights)
    assert zeros >= int(0.2 * sum(p.numel() for _, p in weights))
