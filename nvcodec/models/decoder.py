"""The decoder network: the only network stored in a .dnv file (decode never needs the encoders)."""
from __future__ import annotations

import dataclasses
import functools

import torch
import torch.nn as nn

from .arch import Arch
from .blocks import CCU, NeRVBlock
from .dsnerv import CrossChannelAttention
from .hinerv import HiNeRVDecoder


def Decoder(arch: Arch) -> nn.Module:
    """The decoder network of `arch`'s model; its forward takes the tables of `arch.sections` at the frame times."""
    if arch.model == "hinerv":
        return HiNeRVDecoder(arch)
    return NeRVDecoder(arch)


class NeRVDecoder(nn.Module):
    """1x1 stem -> NeRV blocks (with the CCU fusing the diff branch after `fuse_stage`) -> 3x3 conv -> sigmoid.

    DS-NeRV: the same, with the static code as first input, the dynamic code as second, and
    cross-channel attention instead of the CCU.
    """

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        w = arch.widths
        self.stem = nn.Conv2d(arch.emb_ch, w[0], 1)
        self.stages = nn.ModuleList(
            NeRVBlock(w[i], w[i + 1], k, s) for i, (k, s) in enumerate(zip(arch.kernels, arch.strides))
        )
        if arch.two_stream:
            f = arch.fuse_stage
            self.diff_stem = nn.Conv2d(arch.diff_ch, w[f], 1)
            self.diff_up = NeRVBlock(w[f], w[f + 1], arch.diff_kernel, arch.diff_up)
            if arch.model == "dsnerv":
                self.cca = CrossChannelAttention(w[f + 1], arch.heads)
            else:
                self.ccu = CCU(w[f + 1], w[f + 1], arch.ccu_kernel)
        self.head = nn.Conv2d(w[-1], 3, arch.head_kernel, padding=arch.head_kernel // 2)

    def forward(self, content: torch.Tensor, diff: torch.Tensor | None = None) -> torch.Tensor:
        """(B, emb_ch, h, w) [+ (B, diff_ch, hd, wd)] -> (B, 3, pad_h, pad_w) in [0, 1]."""
        x = self.stem(content)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.arch.two_stream and i == self.arch.fuse_stage:
                fuse = self.cca if self.arch.model == "dsnerv" else self.ccu
                x = fuse(x, self.diff_up(self.diff_stem(diff)))
        return torch.sigmoid(self.head(x))


def param_count(arch: Arch) -> int:
    if arch.model == "dsnerv":  # the numbers of codes do not change the network
        arch = dataclasses.replace(arch, static_codes=1, dynamic_codes=1)
    return _param_count(arch)


@functools.lru_cache(maxsize=4096)
def _param_count(arch: Arch) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in Decoder(arch).parameters())
