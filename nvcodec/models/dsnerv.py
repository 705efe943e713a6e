"""DS-NeRV pieces (Yan et al., CVPR 2024) and the time sampling of every model's input tables.

A DS-NeRV video is decomposed into learnable codes, trained directly (there is no encoder):

- static codes: `S` tensors of `emb_ch x h x w` (the content grid, `h = pad_h / total stride`),
  evenly spaced over the frame times [0, T-1] (S = 1 + ceil((T-1) / k), one every k frames at most;
  `sizing` uses k = 8). Frame t uses the distance-weighted sum of the two nearest static codes,
  weights inversely proportional to the distance: with evenly spaced codes this is linear
  interpolation between the two codes around t.
- dynamic codes: `T_d` tensors of `diff_ch x hd x wd` (the DNeRV diff grid), evenly spaced over
  [0, T-1] and linearly interpolated at t. For a codec the natural choice is one per frame
  (T_d = T); at low rates `sizing` may keep one every 2 frames (T_d = 1 + ceil((T-1)/2)).
- the decoder (`Decoder`): the static code goes through the 1x1 stem and the NeRV blocks; the
  dynamic code through a 1x1 conv and one upsampling NeRV block (like DNeRV's diff branch), and
  cross-channel attention fuses the two after stage `fuse_stage` (`CrossChannelAttention`); then
  the remaining NeRV blocks and the head.

`interpolate` is how every model reads its tables at a time t, fractional or not: HNeRV/DNeRV
content and diff embeddings are tables with one entry per frame, so at an integer t it returns that
frame's entry exactly, and between frames it interpolates linearly (frame interpolation, `--fps-scale`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .arch import Arch
from .registry import spec_of


def neighbours_in_table(times: torch.Tensor, entries: int, frames: int):
    """(lo, hi, weight of hi) for `entries` codes evenly spaced over [0, frames-1], at `times` (float64)."""
    t = times.to(torch.float64).clamp(0, max(frames - 1, 0))
    if entries == 1 or frames <= 1:
        lo = torch.zeros_like(t, dtype=torch.long)
        return lo, lo, torch.zeros_like(t)
    u = t * (entries - 1) / (frames - 1)      # exact for integer t when entries == frames
    lo = u.floor().long().clamp_(0, entries - 2)
    return lo, lo + 1, u - lo


def interpolate(table: torch.Tensor, times: torch.Tensor, frames: int) -> torch.Tensor:
    """Entries of `table` (N, C, h, w), evenly spaced over [0, frames-1], linearly interpolated at `times` (B,)."""
    lo, hi, w = neighbours_in_table(times.to(table.device), table.shape[0], frames)
    w = w.to(table.dtype).reshape(-1, 1, 1, 1)
    return table[lo] * (1 - w) + table[hi] * w


def decoder_inputs(arch: Arch, tables: dict[str, torch.Tensor], times: torch.Tensor, frames: int) -> list:
    """The decoder's inputs at `times`, from the tables named by `arch.sections`, in that order."""
    return [interpolate(tables[name], times, frames) for name in arch.sections]


class CrossChannelAttention(nn.Module):
    """Fuses dynamic features into the static path by attention across channels (DS-NeRV's CCA).

    Queries come from the static features x, keys and values from the dynamic features d (1x1
    convs); per head the attention map is channels x channels: softmax(tau * cos(q_i, k_j)) with the
    cosine taken over all spatial positions (as in Restormer's transposed attention, so its cost is
    linear in the number of pixels); out = x + proj(A v).
    """

    def __init__(self, ch: int, heads: int = 1):
        super().__init__()
        self.heads = heads
        self.query = nn.Conv2d(ch, ch, 1)
        self.key_value = nn.Conv2d(ch, 2 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).reshape(b, self.heads, c // self.heads, h * w)
        k, v = self.key_value(d).reshape(b, 2, self.heads, c // self.heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return x + self.proj((attn @ v).reshape(b, c, h, w))

    def matmul_flops(self, output: torch.Tensor) -> int:
        """FLOPs of the two matrix products in `forward` (`flops.frame_cost` counts its convolutions itself)."""
        b, c, h, w = output.shape
        return 2 * 2 * b * c * (c // self.heads) * h * w


class Codes(nn.Module):
    """Learnable input tables (DS-NeRV's static and dynamic codes, HiNeRV's grids); forward(times) gives
    them at those times, in `sections` order: by default every table of `arch.sections` (the decoder's inputs),
    or those named (where the model computes the others, as hinerv-diff its diff embeddings)."""

    def __init__(self, arch: Arch, frames: int, sections: tuple[str, ...] | None = None):
        super().__init__()
        self.arch, self.frames = arch, frames
        self.sections = arch.sections if sections is None else tuple(sections)
        tables, shapes = spec_of(arch.model).tables, arch.section_shapes(frames)
        self.table = nn.ParameterDict({name: nn.Parameter(torch.randn(shapes[name]) * tables[name].init_std)
                                       for name in self.sections})

    def forward(self, times: torch.Tensor) -> list:
        return [interpolate(self.table[name], times, self.frames) for name in self.sections]

    def tables(self) -> dict[str, torch.Tensor]:
        return {name: t.detach().float().cpu().contiguous() for name, t in self.table.items()}
