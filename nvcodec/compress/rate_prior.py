"""A rate term for the main training phase: the bits the file's weights would cost, added to the loss.

The main phase trains float weights; the file quantizes them afterwards, each weight tensor per output channel at
a step of the channel's peak over the planned depth's levels (`quantize.quantize_weight`), and codes the symbols.
This term estimates those bits while training, so that the weights grow cheap to code: each row's values over
its step plus uniform noise (a differentiable stand-in for rounding), under a Laplace model per row fitted to the
rounded symbols (`learned.row_bits`, `learned.fit_q`), refitted each time the term is taken (no state: a resumed encode
computes the same term). The step keeps its gradient through the row's peak, so that scaling a row leaves the
term unchanged (layers before a norm cannot lower it by shrinking).

The term is taken every `EVERY`th step, times `EVERY` (on a 2-core CPU it costs as much as a carphone step;
NVRC found its rate term every 8th step as good as every step).

Weighted so that a 1 % change of the estimate costs as much as an `alpha` % change of the distortion (alpha
about 0.7 is x265's own trade near 0.05 bpp: 1 % of rate for 0.03 dB). The per-video tables are not in it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from . import rowcoder
from .learned import fit_q, row_bits
from .quantize import per_channel, weight_levels


EVERY = 4


class WeightRatePrior:
    """`alpha * c * R / target_bits`: R the weights' estimated bits at `bits`, c the loss's change for a 1 % change
    of the distortion over 1 % (1 / ln 10 for the log-MSE loss of 4:2:0 coding, the batch's MSE for plain MSE)."""

    def __init__(self, alpha: float, bits: float, target_bits: float, log_loss: bool):
        if not alpha > 0 or not target_bits > 0:
            raise ValueError("the rate prior needs alpha > 0 and a byte target (--bpp)")
        self.alpha, self.levels, self.target_bits, self.log_loss = alpha, weight_levels(bits), target_bits, log_loss

    @staticmethod
    def coded(decoder: nn.Module) -> list[torch.Tensor]:
        """The weight tensors the file quantizes per output channel."""
        return [p for p in decoder.parameters() if per_channel(tuple(p.shape))]

    def bits(self, decoder: nn.Module, noise: bool = True) -> torch.Tensor:
        """The coded weights' estimated bits (with uniform noise on the symbols, or on the rounded symbols)."""
        total = torch.zeros((), device=next(decoder.parameters()).device)
        for p in self.coded(decoder):
            r = p.float().flatten(1)
            step = r.abs().amax(1, keepdim=True).clamp_min(1e-12) / self.levels
            y = r / step
            symbols = torch.round(y.detach())
            y = y + torch.rand_like(y) - 0.5 if noise else y + (symbols - y).detach()
            total = total + row_bits(rowcoder.LAPLACE, y, fit_q(symbols, rowcoder.LAPLACE), self.levels)
        return total

    def penalty(self, decoder: nn.Module, mse: torch.Tensor, step: int):
        """The term at training step `step` of the phase (0 on the steps that do not take it)."""
        if step % EVERY:
            return 0.0
        c = 1 / math.log(10) if self.log_loss else mse.detach()
        return EVERY * self.alpha * c * self.bits(decoder) / self.target_bits
