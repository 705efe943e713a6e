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
block going from `widths[i]` to `widths[i + 1]` channels. A 3x3 head and a sigmoid give the three planes
(`nvcodec.color`).

The same network serves `hinerv-diff` (models/hinerv_diff.py), which adds DNeRV's difference stream (`DIFF`, the
last input): upsampled bilinearly to stage `fuse_stage`'s output and fused there by DNeRV's CCU; its planner is
this one (`plan_for_bpp`, `plan_for_params` with `model` and `stream`).
"""
from __future__ import annotations

import itertools
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import sizing
from .arch import Arch, ArchError, entries_for
from .blocks import CCU, LayerNorm2d, depthwise_conv, upsample_bilinear
from .registry import ModelSpec, Table, register
from .training import LearnedTables

MAX_GRID_LEVELS = 2               # levels of the base feature grid (sections GRID0, GRID1)
MAX_FRAMES_PER_ENTRY = 64         # grid entries are at most this many frames apart


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
        y = self.pw2(F.gelu(self.pw1(self.norm(depthwise_conv(self.dwconv, x)))))
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
        if arch.two_stream:     # (hinerv-diff; registered here, hinerv's state dict keeps its order)
            # The diff embedding (a few channels) goes straight into the CCU's gate: a 1x1 stem before it would be
            # a second linear map of the same inputs, and DNeRV's PixelShuffle block (widths[f] x widths[f+1] x
            # diff_up^2 weights) held 45 % of the network at 1280x720, 0.05 bpp, for 2 input channels.
            self.ccu = CCU(w[arch.fuse_stage + 1], arch.diff_ch, arch.ccu_kernel)
        self.head = nn.Conv2d(w[-1], 3, arch.head_kernel, padding=arch.head_kernel // 2)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The tables of `arch.sections` at B frame times -> (B, 3, pad_h, pad_w) in [0, 1]. The diff embedding of
        a two-stream model is the last."""
        levels = len(self.arch.grid_ch)
        x = self.stem(torch.cat(inputs[:levels], dim=1))
        local = inputs[levels] if self.local is not None else None
        start = 0
        for i, (s, stage) in enumerate(zip(self.arch.strides, self.stages)):
            x = upsample_bilinear(x, s)
            if local is not None:
                cell = local[..., start:start + s * s].reshape(local.shape[0], local.shape[1], s, s)
                start += s * s
                # Every s x s cell of x gets the same code: added by broadcasting, without a full-size copy.
                b, c, hs, ws = x.shape
                code = self.local[i](cell)
                x = (x.view(b, c, hs // s, s, ws // s, s) + code.view(b, c, 1, s, 1, s)).reshape(b, c, hs, ws)
            x = stage(x)
            if self.arch.two_stream and i == self.arch.fuse_stage:
                diff = F.interpolate(inputs[-1], size=x.shape[-2:], mode="bilinear", align_corners=False)
                x = self.ccu(x, diff)
        return torch.sigmoid(self.head(x))


# --- configuration --------------------------------------------------------------------------------------------

# The grids start small, as HiNeRV's authors' do: the blocks' LayerNorms take any scale.
TABLES = {"GRID0": Table(9, "feature grid 1", 0.1), "GRID1": Table(10, "feature grid 2", 0.1),
          "LOCAL": Table(11, "local grid", 0.1)}


def section_shapes(arch: Arch, frames: int) -> dict:
    _, h, w = arch.content_shape
    shapes = {f"GRID{i}": (entries_for(frames, every), ch, h, w)
              for i, (ch, every) in enumerate(zip(arch.grid_ch, arch.grid_every))}
    if arch.local_ch:
        shapes["LOCAL"] = (entries_for(frames, arch.local_every), arch.local_ch, 1, sum(s * s for s in arch.strides))
    if arch.two_stream:
        shapes["DIFF"] = (frames, *arch.diff_shape)     # (hinerv-diff) one per frame, as DNeRV's
    return shapes


def validate(arch: Arch) -> None:
    n = len(arch.strides)
    if len(arch.depths) != n or len(arch.expansions) != n or any(not 1 <= d <= 8 for d in arch.depths) \
            or any(not 1 <= e <= 8 for e in arch.expansions):
        raise ArchError("bad block depths or expansions")
    if not (1 <= len(arch.grid_ch) <= MAX_GRID_LEVELS) or len(arch.grid_every) != len(arch.grid_ch) \
            or any(not 1 <= c <= 64 for c in arch.grid_ch) \
            or any(not 1 <= e <= MAX_FRAMES_PER_ENTRY for e in arch.grid_every):
        raise ArchError("bad feature grid levels")
    if not (0 <= arch.local_ch <= 64 and 1 <= arch.local_every <= MAX_FRAMES_PER_ENTRY):
        raise ArchError("bad local grid settings")


# Header tail: depths and expansions (a byte per stage), the number of grid levels, then (channels, frames per
# entry) of each level and of the local grids.
_LEVEL = struct.Struct("<BH")


def pack_tail(arch: Arch) -> bytes:
    out = bytes(arch.depths) + bytes(arch.expansions) + bytes([len(arch.grid_ch)])
    for ch, every in zip(arch.grid_ch, arch.grid_every):
        out += _LEVEL.pack(ch, every)
    return out + _LEVEL.pack(arch.local_ch, arch.local_every)


def unpack_tail(data: bytes, pos: int, stages: int) -> tuple[dict, int]:
    depths = tuple(data[pos:pos + stages]); pos += stages
    expansions = tuple(data[pos:pos + stages]); pos += stages
    levels = data[pos]; pos += 1
    grid = [_LEVEL.unpack_from(data, pos + i * _LEVEL.size) for i in range(levels)]
    pos += levels * _LEVEL.size
    local_ch, local_every = _LEVEL.unpack_from(data, pos); pos += _LEVEL.size
    return dict(depths=depths, expansions=expansions, grid_ch=tuple(c for c, _ in grid),
                grid_every=tuple(e for _, e in grid), local_ch=local_ch, local_every=local_every), pos


def check_header(fields: dict, stages: int, frames: int) -> str | None:
    if len(fields["depths"]) != stages or len(fields["expansions"]) != stages:
        return "header is truncated"
    return None


# --- planning ---------------------------------------------------------------------------------------------------

# Bits per coded grid value below the quantizer's depth after entropy coding (a first estimate: between the
# encoders' embeddings and DS-NeRV's codes; `compress.ratecontrol` trims the real file to the target).
GRID_BITS_BELOW_QUANT = 2.0
# Levels of the base grid as (channels, frames per entry) at scale 1: a fine level for motion and a coarse,
# wider one for what stays (HiNeRV's Bunny configurations: 40 and 20 entries for 132 frames, 2 and 4 channels).
# Entries every 6 and 12 frames (a wider decoder in the same bytes) lost 0.2 dB on Bunny 720p, 0.2 on coffee (a still
# clip) and 0.12 on CiscoVT (benchmarks/results/grid_levels_720p_gpu_2026-12-06, grid_levels_cpu_2026-12-06).
GRID_LEVELS = ((2, 3), (4, 6))
GRID_SCALES = (1, 2, 0.5, 4)       # the planner's choices of grid width, preferred first
# Local grids: channels, frames per entry (2 channels and an entry every 3 frames were even or worse on the CPU's
# clips: benchmarks/results/local_grid_cpu_2026-12-04, local_every_cpu_2026-12-06).
LOCAL_CH, LOCAL_EVERY = 4, 6
# The smallest networks, as (stem width, blocks a stage but the last), for budgets below what the planner's
# usual networks hold: down to every stage 4 wide (`stage_widths`' floor) with one block, what the lowest
# rates of short, small clips can hold (9 frames of 320x192 at 0.025 bpp are 1,728 bytes).
FLOORS = ((8, 3), (4, 3), (4, 2), (4, 1))       # (8: sizing.MIN_STEM, the usual smallest stem)
# Floors tried before those, at half a bit under the planned depth (`sizing.smallest_plan`'s `near`): none. Stems 8
# down to 4 with three blocks a stage there gained where stem 8 would land far under the planned depth (CiscoVT 0.05,
# 4.5-4.6 bits: +0.73 / +0.13 dB RGB) and lost where it would not (carphone's first 50 frames at 0.025, 5.3 bits:
# -0.04 / -0.24), benchmarks/results/near_floors_cpu_2026-12-07.
NEAR_FLOORS = ()
# Share of the file the grids should take. HiNeRV's models give them about a fifth; at equal bpp a smaller share
# (a wider decoder) won on every clip measured: +0.1 to +0.8 dB RGB from 0.25 to 0.12 on three CPU clips and
# blackswan on an H200 (benchmarks/results/grid_share_cpu_2026-12-04/, grid_share_gpu_2026-12-04/).
GRID_SHARE_GOAL = 0.12
POSITIONS_PER_PIXEL = 1 / 1600     # base grid positions: 18 x 32 at 1280 x 720, as HiNeRV's configurations


def share_miss(share: float) -> float:
    """How far the grids' share of the file lies from GRID_SHARE_GOAL, as a ratio either way (log)."""
    return abs(math.log(share / GRID_SHARE_GOAL))


def choose_strides(width: int, height: int) -> tuple[int, ...]:
    """Upsampling factors, largest first: little padding, and a base grid of about width*height/1600 positions."""
    target = min(2048.0, max(12.0, width * height * POSITIONS_PER_PIXEL))
    best, best_cost = None, math.inf
    for n in (3, 4, 5):
        for strides in itertools.combinations_with_replacement((5, 4, 3, 2), n):   # non-increasing
            s = math.prod(strides)
            gh, gw = -(-height // s), -(-width // s)
            waste = gh * gw * s * s / (width * height) - 1
            # Upsampling in small steps after the first (HiNeRV's 5, 2, 2, 2): each stage's blocks refine.
            cost = waste + 0.1 * abs(math.log2(gh * gw / target)) + 0.01 * sum(f * f for f in strides[1:])
            if cost < best_cost:
                best, best_cost = tuple(strides), cost
    return best


def stage_widths(stem: int, stages: int, align: int = 1) -> tuple[int, ...]:
    """Stem width, then each stage's: the first stage keeps it, each later one halves it (HiNeRV's reduction)."""
    widths = [stem, stem] + [max(4, stem // 2 ** i) for i in range(1, stages)]
    return tuple(w if w < align else max(align, align * round(w / align)) for w in widths)


def make_arch(width: int, height: int, strides, stem: int, grid_scale: float = 1, align: int = 1,
              depth: int = 3, model: str = "hinerv", **stream) -> Arch:
    """`depth` blocks in every stage but the last (one); `stream`: a two-stream model's Arch fields of its second
    stream (`no_stream` for hinerv)."""
    n = len(strides)
    return Arch(model, width, height, tuple(strides), stage_widths(stem, n, align), (3,) * n,
                depths=(depth,) * (n - 1) + (1,), expansions=(4,) * (n - 1) + (1,),
                grid_ch=tuple(max(1, int(ch * grid_scale)) for ch, _ in GRID_LEVELS),
                grid_every=tuple(every for _, every in GRID_LEVELS), local_ch=LOCAL_CH, local_every=LOCAL_EVERY,
                **stream)


def no_stream(strides) -> dict:
    """hinerv's second-stream fields: none (the header keeps Arch's defaults)."""
    return {}


def predict_bytes(arch: Arch, frames: int, quant_bits: float, prune: float) -> int:
    w_bits = sizing.param_count(arch) * (1 - prune) * (quant_bits - sizing.WEIGHT_BITS_BELOW_QUANT)
    return int(w_bits / 8 + sizing.embedding_bytes(arch, frames, quant_bits) + sizing.side_bytes(arch)
               + sizing.FIXED_OVERHEAD_BYTES)


def plan_for_bpp(width: int, height: int, frames: int, bpp: float, quant_bits: float = 8,
                 prune: float = 0.1, model: str = "hinerv", stream=no_stream) -> sizing.Plan:
    """`model`, `stream(strides)`: the model planned and its second stream's Arch fields (see `make_arch`)."""
    from ..compress.ratecontrol import highest_bits

    MIN_STEM, MAX_STEM = sizing.MIN_STEM, sizing.MAX_STEM
    budget = bpp * width * height * frames / 8
    strides = choose_strides(width, height)
    fields = dict(model=model, **stream(strides))
    best, best_score, largest = None, math.inf, 0
    # The smallest networks, for budgets below what any holds at the planned depth (`sizing.smallest_plan`):
    # the usual smallest, then narrower, then fewer blocks a stage, each with every grid width.
    floors = [[make_arch(width, height, strides, stem, scale, depth=depth, **fields) for scale in GRID_SCALES]
              for stem, depth in FLOORS]
    near = [[make_arch(width, height, strides, stem, scale, depth=depth, **fields) for scale in GRID_SCALES]
            for stem, depth in NEAR_FLOORS]
    for preference, scale in enumerate(GRID_SCALES):
        def make(stem, align=1, scale=scale):
            return make_arch(width, height, strides, stem, scale, align, **fields)
        floor = make(MIN_STEM)
        largest = max(largest, predict_bytes(make(MAX_STEM), frames, highest_bits(quant_bits), prune))
        grid_bytes = sizing.embedding_bytes(floor, frames, quant_bits)
        weight_bits_each = (1 - prune) * (quant_bits - sizing.WEIGHT_BITS_BELOW_QUANT)
        weights_budget = budget - grid_bytes - sizing.FIXED_OVERHEAD_BYTES - sizing.side_bytes(floor)
        arch = sizing.largest_arch(make, weights_budget * 8 / weight_bits_each) if weights_budget > 0 else None
        if arch is None:
            continue
        predicted = predict_bytes(arch, frames, quant_bits, prune)
        # The grids' share of the file, which rate control trims to the budget where the plan is over it (widths
        # rounded up, `sizing.largest_arch`). A second stream's table (DIFF) adds to the file, not to the grids' goal.
        share = sizing.embedding_bytes(floor, frames, quant_bits, exclude=("DIFF",)) / min(predicted, budget)
        score = share_miss(share) + 0.1 * preference
        if score < best_score:
            best = sizing.Plan(arch, sizing.param_count(arch), predicted, share, arch.widths[0] >= MAX_STEM)
            best_score = score
    if best is None:
        def predict(arch, bits):
            return predict_bytes(arch, frames, bits, prune)

        # Of the deepest floor that fits, the grids' share nearest the goal, as on the main path. Against the largest
        # that fits by bytes (the widest grids): carphone 0.01 bpp +0.76 / +0.32 dB, CiscoVT 0.025 -0.08 / +0.29 over
        # two seeds (benchmarks/results/planner_fallback_cpu_2026-12-07).
        def nearest_share(fitting, bits):
            return min(fitting, key=lambda arch: share_miss(
                sizing.embedding_bytes(arch, frames, bits, exclude=("DIFF",)) / predict(arch, bits)))
        best = sizing.smallest_plan(floors, budget, bpp, width * height, frames, predict, quant_bits, nearest_share,
                                    near)
    if budget > largest:
        raise sizing.InfeasibleRate(bpp, maximum=largest * 8 / (width * height * frames))
    return best


def plan_for_params(width: int, height: int, params: float, frames: int = 2, model: str = "hinerv",
                    stream=no_stream) -> sizing.Plan:
    strides = choose_strides(width, height)
    fields = dict(model=model, **stream(strides))
    arch = sizing.largest_arch(lambda stem, align: make_arch(width, height, strides, stem, align=align, **fields),
                               params)
    arch = arch or make_arch(width, height, strides, sizing.MIN_STEM, **fields)
    return sizing.Plan(arch, sizing.param_count(arch), 0, 0.0)


# The quantizer depth it is planned for: fine-tuned with the quantizer in the loop, at 6 bits its networks hold
# more parameters in the same bytes: +0.14 to +0.31 dB over 8 bits at 0.05 bpp on two clips
# (benchmarks/results/hinerv_2026-12-02). Planned for 5 bits, the larger networks lose more on the way to the file
# than their size gains: carphone −0.16 dB, CiscoVT −0.31 (benchmarks/results/planned_depth_budget_2026-12-06).
# Adam's peak learning rate, above HiNeRV's authors' 2e-3: that beat fit's 1e-3 by 0.13 to 0.81 dB at equal bpp
# (one H200 and the CPU, benchmarks/results/medium_rd_2026-12-03); 3e-3 beat 2e-3 on all eight clip-rates tried,
# +0.01 to +0.09 dB at 720p and 480p on an H100, +0.10 to +0.30 on the CPU's small clips
# (benchmarks/results/lr_short_schedule_gpu_2026-12-06, hinerv_lr_cpu_2026-12-06).
LEARNING_RATES = {"adam": 3e-3}

register(ModelSpec(
    "hinerv", 3, "HiNeRV", "feature grids, ConvNeXt-style blocks", HiNeRVDecoder, section_shapes, TABLES,
    validate=validate, pack_tail=pack_tail, unpack_tail=unpack_tail, check_header=check_header,
    training=LearnedTables, quant_bits=6, table_bits_below_quant=GRID_BITS_BELOW_QUANT,
    plan_for_bpp=plan_for_bpp, plan_for_params=plan_for_params, learning_rates=LEARNING_RATES,
    # `info` reports the content grid as the NeRV models do: the base grids lie on it.
    info=lambda arch, shapes: {"content_embedding": list(arch.content_shape)}, info_keys=("content_embedding",),
    # The third seed holds the learned entropy models of rate-aware training (DECODER mode 2, table transforms 2/3).
    fuzz_seeds=((6, 1.0, None), (3, 3.0, (175, 143)), (3, 12.0, (64, 48), None, {"rate": True}))))
