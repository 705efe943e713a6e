"""Quantization-aware training: the file's quantizers in the forward pass, straight-through in the backward.

During the fine-tuning after pruning, the decoder runs with its weights (and, for models whose tables are
parameters, its tables) rounded to the levels the file will hold at the bit depth rate control chose for this
network (`compress.quantize`: symmetric per output channel for weights, affine per channel for tables), so the
network learns to live with the rounding instead of meeting it only in the file. The gradient passes the rounding
unchanged (straight-through estimator, as HiNeRV's and NVRC's last stage). The functions here define that grid
tensor by tensor; training rounds all tensors at once in one flat buffer (`flatgrid.FileValues`).
"""
from __future__ import annotations

import torch

from .quantize import MIN_SCALE, as_stored, embedding_levels, scale_index, scale_of_index, weight_levels


def weight_grid(w: torch.Tensor, bits: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(integers, scale, offset) of `w` as the file rounds a weight (symmetric, so offset 0; per output channel from
    2 dimensions on): its value is integers * scale + offset. Computed on `w` detached."""
    w = w.detach()
    levels = weight_levels(bits)
    peak = w.abs().flatten(1).amax(1) if w.dim() >= 2 else w.abs().amax().reshape(1)
    shape = [-1] + [1] * (w.dim() - 1) if w.dim() >= 2 else [1]
    scale = weight_scale(peak, levels).to(w.dtype).reshape(shape)
    return torch.round(w / scale).clamp(-levels, levels), scale, torch.zeros_like(scale)


def weight_scale(peak: torch.Tensor, levels) -> torch.Tensor:
    """The scale (float32) of weight rows whose largest magnitudes are `peak`, at `levels` (an int, or a float64
    tensor of one per row)."""
    return scale_of_index(scale_index(peak, levels))


def table_scale(lo: torch.Tensor, hi: torch.Tensor, levels) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset) of table channels whose values span [lo, hi], at `levels` (an int, or a tensor of one per
    channel in lo's dtype), as the file stores them."""
    lo = as_stored(lo)
    return as_stored(((hi - lo) / levels).clamp_min(MIN_SCALE)), lo


def table_grid(t: torch.Tensor, bits: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(integers, scale, offset) of a table (N, C, ...) as the file rounds it (affine per channel over every other
    axis). Computed on `t` detached."""
    t = t.detach()
    levels = embedding_levels(bits)
    flat = t.transpose(0, 1).flatten(1)
    shape = [1, -1] + [1] * (t.dim() - 2)
    scale, lo = table_scale(flat.amin(1).reshape(shape), flat.amax(1).reshape(shape), levels)
    return torch.round((t - lo) / scale).clamp(0, levels), scale, lo


def fake_quant_weight(w: torch.Tensor, bits: float) -> torch.Tensor:
    """`w` rounded as the file rounds a weight (`weight_grid`), straight-through."""
    q, scale, _ = weight_grid(w, bits)
    return w + (q * scale - w).detach()


def fake_quant_table(t: torch.Tensor, bits: float) -> torch.Tensor:
    """A table (N, C, ...) rounded as the file rounds it (`table_grid`), straight-through."""
    q, scale, lo = table_grid(t, bits)
    return t + (q * scale + lo - t).detach()


def depth_of(bits, name: str) -> float:
    """A tensor's depth from one depth for all or a depth per tensor name."""
    return bits[name] if isinstance(bits, dict) else bits


def describe(bits) -> str:
    """A depth for all, or the range of depths per tensor, for messages."""
    if not isinstance(bits, dict):
        return f"{bits:.3g} bits"
    return f"{min(bits.values()):.3g}-{max(bits.values()):.3g} bits by tensor group"
