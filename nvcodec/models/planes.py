"""The output head every decoder ends with: a conv to three planes and a sigmoid, at the resolution of each plane.

RGB: the conv at full resolution. YUV 4:2:0: the same conv's first filter gives Y at full resolution, its other
two give U and V with stride 2, so the chroma is computed only at its own samples (a quarter of the work); the
chroma is then repeated over each 2x2 block (the in-memory layout of `nvcodec.color`). A padded size that is odd
needs no extra padding: the stride-2 conv covers it with ceil(size / 2) samples. One weight tensor serves both
formats, so a network's size and its file layout do not depend on the format.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def plane_head(in_ch: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, 3, kernel, padding=kernel // 2)


def head_output(head: nn.Conv2d, x: torch.Tensor, planes: str) -> torch.Tensor:
    """(B, C, H, W) features -> (B, 3, H, W) in [0, 1]: RGB, or Y and U, V repeated over 2x2 blocks."""
    if planes == "rgb":
        return torch.sigmoid(head(x))
    pad = head.padding
    luma = F.conv2d(x, head.weight[:1], head.bias[:1], padding=pad)
    chroma = F.conv2d(x, head.weight[1:], head.bias[1:], stride=2, padding=pad)
    chroma = chroma.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., : x.shape[-2], : x.shape[-1]]
    return torch.sigmoid(torch.cat([luma, chroma], dim=1))
