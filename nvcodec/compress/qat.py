"""Quantization-aware training: the file's quantizers in the forward pass, straight-through in the backward.

During the fine-tuning after pruning, the decoder runs with its weights (and, for models whose tables are
parameters, its tables) rounded to the levels the file will hold at the bit depth rate control chose for
this network (`compress.quantize`: symmetric per output channel for weights, affine per channel for
tables), so the network learns to live with the rounding instead of meeting it only in the file. The
gradient passes the rounding unchanged (straight-through estimator, as HiNeRV's and NVRC's last stage).
"""
from __future__ import annotations

import torch

from .quantize import embedding_levels, weight_levels

MIN_SCALE = 6.2e-5      # float16's smallest normal number: what the file's scales are clamped to
# float16: 10 stored mantissa bits; normal numbers from 2**-14; subnormals spaced 2**-24.
FP16_MANTISSA_BITS, FP16_MIN_EXPONENT, FP16_SMALLEST = 10, -14, 2.0 ** -24


def as_stored(x: torch.Tensor) -> torch.Tensor:
    """A scale or offset as the file stores it: rounded to float16 (to nearest, ties to even; subnormals included).
    Fine-tuned weights gather at the rounding thresholds, so a grid 0.05 % off the one trained on flips many of them:
    on carphone (CPU, 0.05 bpp) the fp32 grid's model lost 0.23 dB in the file.

    By arithmetic, not `x.to(torch.float16)`: torch.compile (Inductor) drops a float32 -> float16 -> float32 round
    trip inside a fused kernel, so the compiled training step (every GPU encode) would train on the fp32 grid.
    Dividing by the float16 spacing of x's binade (a power of two) and rounding is exact in float32."""
    xf = x.float()
    a = xf.abs()
    e = torch.floor(torch.log2(a.clamp_min(FP16_SMALLEST)))
    e = torch.where(torch.exp2(e) > a, e - 1, e)          # log2 may round up across a power of two
    e = torch.where(torch.exp2(e + 1) <= a, e + 1, e)
    spacing = torch.exp2(e.clamp_min(FP16_MIN_EXPONENT) - FP16_MANTISSA_BITS)
    return (torch.round(xf / spacing) * spacing).to(x.dtype)


def fake_quant_weight(w: torch.Tensor, bits: float) -> torch.Tensor:
    """`w` rounded as the file rounds a weight (symmetric; per output channel from 2 dimensions on)."""
    levels = weight_levels(bits)
    peak = w.detach().abs().flatten(1).amax(1) if w.dim() >= 2 else w.detach().abs().amax().reshape(1)
    shape = [-1] + [1] * (w.dim() - 1) if w.dim() >= 2 else [1]
    scale = as_stored((peak / levels).clamp_min(MIN_SCALE)).reshape(shape)
    q = torch.round(w / scale).clamp(-levels, levels) * scale
    return w + (q - w).detach()


def fake_quant_table(t: torch.Tensor, bits: float) -> torch.Tensor:
    """A table (N, C, ...) rounded as the file rounds it (affine per channel over every other axis)."""
    levels = embedding_levels(bits)
    flat = t.detach().transpose(0, 1).flatten(1)
    shape = [1, -1] + [1] * (t.dim() - 2)
    lo = as_stored(flat.amin(1).reshape(shape))
    scale = as_stored(((flat.amax(1).reshape(shape) - lo) / levels).clamp_min(MIN_SCALE))
    q = torch.round((t - lo) / scale).clamp(0, levels) * scale + lo
    return t + (q - t).detach()


def quantized_parameters(module: torch.nn.Module, bits, table: bool = False) -> dict[str, torch.Tensor]:
    """The module's parameters as the file will hold them, for `torch.func.functional_call`.

    `bits`: one depth for all, or a depth per tensor (`compress.bitalloc`): by parameter name for weights, by
    section name (a table parameter's last name component) for tables."""
    quant = fake_quant_table if table else fake_quant_weight
    return {name: quant(p, depth_of(bits, name.rsplit(".", 1)[-1] if table else name))
            for name, p in module.named_parameters()}


def depth_of(bits, name: str) -> float:
    """A tensor's depth from one depth for all or a depth per tensor name."""
    return bits[name] if isinstance(bits, dict) else bits


def describe(bits) -> str:
    """A depth for all, or the range of depths per tensor, for messages."""
    if not isinstance(bits, dict):
        return f"{bits:.3g} bits"
    return f"{min(bits.values()):.3g}-{max(bits.values()):.3g} bits by tensor group"
