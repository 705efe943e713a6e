"""Global magnitude pruning of the decoder's convolution weights (NeRV/HNeRV style)."""
from __future__ import annotations

import torch
import torch.nn as nn


def prunable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weights that pruning applies to: every conv kernel (biases and the 3-channel head excluded)."""
    return [(n, p) for n, p in model.named_parameters() if p.dim() == 4 and not n.startswith("head.")]


def magnitude_masks(model: nn.Module, fraction: float, size_exponent: float = 0.0) -> dict[str, torch.Tensor]:
    """Boolean keep-masks that zero the `fraction` lowest-scoring weights over all prunable tensors, a weight's score
    being |w| / n ** size_exponent, n the size of its tensor (0: global magnitude; HiNeRV's code uses 0.5, which
    prunes the larger tensors more)."""
    params = prunable(model)
    if fraction <= 0 or not params:
        return {}
    scores = {n: p.detach().abs() / p.numel() ** size_exponent for n, p in params}
    everything = torch.cat([v.flatten() for v in scores.values()])
    k = int(fraction * everything.numel())
    if k == 0:
        return {}
    threshold = everything.float().kthvalue(k).values
    return {n: v > threshold for n, v in scores.items()}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    if not masks:
        return
    for name, p in model.named_parameters():
        mask = masks.get(name)
        if mask is not None:
            p.mul_(mask)
