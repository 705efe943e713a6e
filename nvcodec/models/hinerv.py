"""A HiNeRV-class decoder (after Kwan et al., NeurIPS 2023): feature grids in, bilinear upsampling and
ConvNeXt-style blocks, a hierarchical (per-stage) local encoding. No encoders: every input is a learnable
table trained with the network, like DS-NeRV's codes.

Inputs at a frame time t (all tables are evenly spaced over [0, T-1] and linearly interpolated at t,
`dsnerv.interpolate`, so `--fps-scale` works as for the other models):
- GRID0, GRID1: the base feature grid at the content resolution (pad_h/S x pad_w/S), in levels of
  different temporal density (`grid_every` frames per entry) and width (`grid_ch`): a fine level for
  motion, a coarse one for what stays. Their channels are concatenated and a 3x3 stem maps them to
  `widths[0]` channels.
- LOCAL: the local grids, `local_ch` x (s x s) per stage (s its upsampling factor), all stages side by
  side in the last axis. Stage i projects its s x s cell (1x1 conv) to the stage's width and adds it to
  every cell of the upsampled feature map: each output position gets a code for where it sits in its
  cell, which bilinear upsampling alone cannot tell apart.

Stage i: bilinear upsampling by `strides[i]`, + local encoding, then `depths[i]` blocks (depthwise k x k
conv, LayerNorm, 1x1 to `expansions[i]` x width, GELU, 1x1; residual where the width stays), the first
block going from `widths[i]` to `widths[i + 1]` channels. A 3x3 head and a sigmoid give RGB.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .arch import Arch
from .blocks import LayerNorm2d


class MLPBlock(nn.Module):
    """ConvNeXt-style block: dwconv(k) -> LayerNorm -> 1x1 (cin -> hidden) -> GELU -> 1x1 (-> cout)."""

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int):
        super().__init__()
        self.dwconv = nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin)
        self.norm = LayerNorm2d(cin)
        hidden = max(cout * expansion, 1)
        self.pw1 = nn.Conv2d(cin, hidden, 1)
        self.pw2 = nn.Conv2d(hidden, cout, 1)
        self.residual = cin == cout

    def forward(self, x):
        y = self.pw2(F.gelu(self.pw1(self.norm(self.dwconv(x)))))
        return x + y if self.residual else y


class HiNeRVDecoder(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        w = arch.widths
        self.stem = nn.Conv2d(sum(arch.grid_ch), w[0], 3, padding=1)
        self.local = nn.ModuleList(nn.Conv2d(arch.local_ch, w[i], 1) for i in range(len(arch.strides))) \
            if arch.local_ch else None
        self.stages = nn.ModuleList(
            nn.Sequential(*(MLPBlock(w[i] if j == 0 else w[i + 1], w[i + 1], k, e) for j in range(d)))
            for i, (k, e, d) in enumerate(zip(arch.kernels, arch.expansions, arch.depths)))
        self.head = nn.Conv2d(w[-1], 3, arch.head_kernel, padding=arch.head_kernel // 2)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The tables of `arch.sections` at B frame times -> (B, 3, pad_h, pad_w) in [0, 1]."""
        levels = len(self.arch.grid_ch)
        x = self.stem(torch.cat(inputs[:levels], dim=1))
        local = inputs[levels] if self.local is not None else None
        start = 0
        for i, (s, stage) in enumerate(zip(self.arch.strides, self.stages)):
            if s > 1:
                x = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            if local is not None:
                cell = local[..., start:start + s * s].reshape(local.shape[0], local.shape[1], s, s)
                start += s * s
                h, w = x.shape[-2] // s, x.shape[-1] // s
                x = x + self.local[i](cell).repeat(1, 1, h, w)
            x = stage(x)
        return torch.sigmoid(self.head(x))
