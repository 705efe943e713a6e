"""The encoders (training only): frames -> content embedding, frame differences -> diff embedding."""
from __future__ import annotations

import torch
import torch.nn as nn

from .arch import Arch
from .blocks import ConvNeXtEncoder, factor_stride


def frame_differences(prev: torch.Tensor, cur: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    """concat(y_t - y_{t-1}, y_{t+1} - y_t): 6 channels. Pass prev=cur (first) / nxt=cur (last) for zeros."""
    return torch.cat([cur - prev, nxt - cur], dim=1)


class DiffEncoder(ConvNeXtEncoder):
    """DNeRV's diff encoder: frames t-1, t, t+1 (B,3,pad_h,pad_w) in [0,1] -> the diff embedding of frame t,
    from their differences."""

    def __init__(self, arch: Arch, dim: int = 64):
        super().__init__(6, factor_stride(arch.diff_stride), dim, arch.diff_ch)

    def forward(self, prev, cur, nxt):
        return super().forward(frame_differences(prev, cur, nxt))


class Encoders(nn.Module):
    def __init__(self, arch: Arch, dim: int = 64):
        super().__init__()
        self.arch = arch
        self.content = ConvNeXtEncoder(3, sorted(factor_stride(arch.total_stride), reverse=True), dim, arch.emb_ch)
        self.diff = DiffEncoder(arch, dim) if arch.has_diff else None

    def forward(self, prev, cur, nxt):
        """Frames (B,3,pad_h,pad_w) in [0,1] -> (content embedding, diff embedding or None)."""
        content = self.content(cur)
        diff = self.diff(prev, cur, nxt) if self.diff is not None else None
        return content, diff
