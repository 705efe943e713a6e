"""Uniform scalar quantization of decoder weights and embeddings.

Weights: symmetric, so that pruned zeros stay exactly zero (symbol 0); per output channel (per tensor for
biases and other 1-D tensors). Their scales lie on a log grid, 2**(k / SCALE_STEPS) for an integer index k, and
the file codes the indices (`pack`, mode 3): about 5 bits a scale where float16 took 16, which on small networks
was 9-12 % of the whole file. Embeddings: affine per channel, offsets and scales stored as float16. The symbols
are computed with the scales exactly as the file holds them, so the decoder reproduces the encoder's dequantized
tensors exactly.

`bits` may be fractional: it sets the number of levels (2**bits), which is how rate control trims a
file to its target size without retraining.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def weight_levels(bits: float) -> int:
    """Largest symbol magnitude L of a symmetric quantizer: symbols in [-L, L]."""
    return max(1, int(round(2.0 ** (bits - 1))) - 1)


def embedding_levels(bits: float) -> int:
    """Largest symbol of an affine quantizer: symbols in [0, L]."""
    return max(1, int(round(2.0 ** bits)) - 1)


# float16: 10 stored mantissa bits; normal numbers from 2**-14; subnormals spaced 2**-24.
FP16_MANTISSA_BITS, FP16_MIN_EXPONENT, FP16_SMALLEST = 10, -14, 2.0 ** -24
MIN_SCALE = 6.2e-5      # float16's smallest normal number: what the file's scales are clamped to


def as_stored(x: torch.Tensor) -> torch.Tensor:
    """A scale, offset or step as the file stores it: rounded to float16 (to nearest, ties to even; subnormals
    included), in x's dtype. The file's quantizers compute their symbols with it, and quantization-aware training
    rounds with it (`compress.qat`): fine-tuned weights gather at the rounding thresholds, so a grid 0.05 % off the
    one trained on flips many of them (on carphone, CPU, 0.05 bpp: 0.23 dB lost in the file).

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


# The weights' log grid of scales: k from float16's smallest normal number (2**-14) to 2**16.
SCALE_STEPS = 16
SCALE_INDEX_MIN, SCALE_INDEX_MAX = -14 * SCALE_STEPS, 16 * SCALE_STEPS


def scale_of_index(k: torch.Tensor) -> torch.Tensor:
    """The weight scale (float32) of log-grid index k: 2**(k / SCALE_STEPS) with its mantissa truncated to 24 bits,
    floor(2**(23 + j / SCALE_STEPS)) * 2**(e - 23) for k = SCALE_STEPS * e + j. Elementwise on k's device, so that
    the compiled fine-tuning step computes it too (no table to fetch), and exact everywhere: the 16 values
    2**(23 + j/16) lie 0 (j = 0) or 0.068 to 0.923 from the integer below them, so float64's exp2 (off by 1e-8 at
    most) plus 0.01 floors to the right one (`tests/test_codec.py` checks every index against integer arithmetic)."""
    k = k.to(torch.float64)
    e = torch.floor(k / SCALE_STEPS)
    mantissa = torch.floor(torch.exp2(23 + (k - SCALE_STEPS * e) / SCALE_STEPS) + 0.01)
    return (mantissa * torch.exp2(e - 23)).float()


def scale_index(peak: torch.Tensor, levels) -> torch.Tensor:
    """The smallest index k (int64) whose scale puts a weight of magnitude `peak` within [-levels, levels] (`levels`
    an int, or a float64 tensor of one per peak):
    scale_of_index(k) * levels >= peak, within [SCALE_INDEX_MIN, SCALE_INDEX_MAX]. The log2 only guesses; the
    comparisons decide, exactly (float64 products of a 24-bit mantissa and levels < 2**16), on every device."""
    p = peak.to(torch.float64)
    k = torch.ceil(SCALE_STEPS * torch.log2((p / levels).clamp_min(2.0 ** -30)))
    k = k.clamp(SCALE_INDEX_MIN, SCALE_INDEX_MAX)
    k = torch.where(scale_of_index(k - 1).double() * levels >= p, k - 1, k)
    k = torch.where(scale_of_index(k).double() * levels < p, k + 1, k)
    return k.clamp(SCALE_INDEX_MIN, SCALE_INDEX_MAX).long()


@dataclass
class QuantizedTensor:
    symbols: np.ndarray          # int32, the tensor's shape
    scale: np.ndarray            # (1,) or (channels,): float16, or float32 on the weights' log grid (`index`)
    offset: np.ndarray | None    # float16 like scale (affine), or None (symmetric)
    axis: int | None             # channel axis of per-channel parameters, None when per tensor
    index: np.ndarray | None = None  # int32 like scale: the log-grid indices of the scales, where they are on it

    def dequantize(self) -> torch.Tensor:
        q = torch.from_numpy(self.symbols.astype(np.float32))
        shape = [1] * q.dim()
        if self.axis is not None:
            shape[self.axis] = -1
        scale = torch.from_numpy(self.scale.astype(np.float32)).reshape(shape)
        out = q * scale
        if self.offset is not None:
            out = out + torch.from_numpy(self.offset.astype(np.float32)).reshape(shape)
        return out


def _symmetric(w: torch.Tensor, levels: int, per_channel: bool) -> QuantizedTensor:
    if per_channel:
        peak = w.abs().flatten(1).amax(1)
    else:
        peak = w.abs().max().reshape(1)
    index = scale_index(peak, levels)
    scale = scale_of_index(index)
    shape = [-1] + [1] * (w.dim() - 1) if per_channel else [1] * w.dim()
    q = torch.round(w / scale.reshape(shape)).clamp_(-levels, levels)
    return QuantizedTensor(q.to(torch.int32).numpy(), scale.numpy(), None, 0 if per_channel else None,
                           index.to(torch.int32).numpy())


def per_channel(shape: tuple[int, ...]) -> bool:
    """Whether a weight of `shape` has a scale per output channel (2 dimensions or more, several channels) rather
    than one: what the file's quantizer does, and what a decoder knowing only the shape reads back (`pack`)."""
    return len(shape) >= 2 and shape[0] > 1


def quantize_weight(w: torch.Tensor, bits: float) -> QuantizedTensor:
    """Symmetric quantization; per output channel from 2 dimensions on (each channel's grid is at least as fine as
    the tensor's), per tensor below: the grid quantization-aware fine-tuning trains on (`qat.fake_quant_weight`).
    Choosing per tensor where its error on the float weights happened to be lower put some tensors off the trained
    grid (on carphone, CPU, 0.05 bpp: 0.07 dB of the file's 0.30 dB below the fine-tuned model)."""
    w = w.detach().float().cpu()
    return _symmetric(w, weight_levels(bits), per_channel=per_channel(tuple(w.shape)))


def quantize_embedding(e: torch.Tensor, bits: float) -> QuantizedTensor:
    """Affine per-channel quantization of an embedding (T, C, h, w): symbols in [0, 2**bits - 1]."""
    e = e.detach().float().cpu()
    levels = embedding_levels(bits)
    lo = as_stored(e.transpose(0, 1).flatten(1).amin(1))
    hi = e.transpose(0, 1).flatten(1).amax(1)
    scale = as_stored(((hi - lo) / levels).clamp_min(MIN_SCALE))
    shape = [1, -1] + [1] * (e.dim() - 2)
    q = torch.round((e - lo.reshape(shape)) / scale.reshape(shape)).clamp_(0, levels)
    return QuantizedTensor(q.to(torch.int32).numpy(), scale.numpy().astype(np.float16),
                           lo.numpy().astype(np.float16), 1)
