"""The NeRV-style networks, one decoder for three models (`NeRVDecoder`), each registered as a model:

- `hnerv`: HNeRV, a content embedding per frame from a ConvNeXt encoder.
- `dnerv`: DNeRV, HNeRV plus a difference embedding per frame (from the frame differences), joined to the
  content path by the CCU after `fuse_stage` (paper Eq. 5).
- `dsnerv`: DS-NeRV, learnable static and dynamic codes (no encoders) joined by cross-channel attention
  (`dsnerv.py`); its header adds the numbers of codes and the attention heads.

Also their planners: `plan_for_bpp` / `plan_for_params` for each (see `sizing` for the shared pieces).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import struct

import torch
import torch.nn as nn

from .. import sizing
from .arch import Arch, ArchError, entries_for, reduced_widths
from .blocks import CCU, NeRVBlock
from .dsnerv import CrossChannelAttention
from .registry import ModelSpec, Table, register
from .training import FrameTriplets, LearnedTables

STAGES = 5
MAX_CODES = 10_000_000
MAX_FRAMES_PER_DYNAMIC_CODE = 2   # DS-NeRV: dynamic codes are at most this many frames apart
STATIC_EVERY = 8                  # DS-NeRV: one static code every this many frames at most
DYNAMIC_EVERY = (1, MAX_FRAMES_PER_DYNAMIC_CODE)
# Bits per coded value at 8-bit quantization after entropy coding, measured on the H100 Bunny run
# (benchmarks/results/bunny_fast_encode_h100_2026-11-21: 2.7 and 4.3 bits per content / diff value).
EMBED_BITS_BELOW_QUANT = 4.0
CODE_BITS_BELOW_QUANT = 1.0       # DS-NeRV's learned codes are spread more evenly than encoder outputs
# DNeRV networks this large train with Adan, smaller ones and other models with Adam. On 3M Bunny (H200,
# benchmarks/results/bunny_adan_2026-12-02) Adan reached 38.42 dB at lr 3e-3 in 300 epochs and 38.28-38.29 dB
# at 4e-3 in 210, where Adam at 1e-3 reached 37.74-37.97 dB in 300 and diverged in most runs. On the CPU's tiny
# networks (23k-39k parameters, benchmarks/results/optimizer_cpu) it lost up to 1.4 dB on one clip of two.
# 0.35M-1.5M were measured with Adam only (all above the paper at 300 epochs): the bound lies between the two.
ADAN_MIN_PARAMS = 2_000_000

CONTENT = Table(3, "content embeddings")
DIFF = Table(4, "difference embeddings")
# DS-NeRV's dynamic codes start small: the static codes (smooth in time) carry the first fit, and the dynamic ones
# grow where frames need it (measured: a little better for both regression and interpolation than dynamic codes as
# random as the static ones).
STATIC = Table(5, "static codes", 1.0)
DYNAMIC = Table(6, "dynamic codes", 0.1)


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


# --- configuration --------------------------------------------------------------------------------------------

def _embedding_shapes(arch: Arch, frames: int) -> dict:
    shapes = {"CONTENT": (frames, *arch.content_shape)}
    if arch.two_stream:
        shapes["DIFF"] = (frames, *arch.diff_shape)
    return shapes


def _code_shapes(arch: Arch, frames: int) -> dict:
    return {"STATIC": (arch.static_codes, *arch.content_shape), "DYNAMIC": (arch.dynamic_codes, *arch.diff_shape)}


def _validate_codes(arch: Arch) -> None:
    if not (1 <= arch.static_codes <= MAX_CODES and 1 <= arch.dynamic_codes <= MAX_CODES):
        raise ArchError("number of static or dynamic codes out of range")
    if not (1 <= arch.heads <= 64) or arch.widths[arch.fuse_stage + 1] % arch.heads:
        raise ArchError("attention heads must divide the fusion width")


_CODES = struct.Struct("<IIB")          # static_codes, dynamic_codes, heads


def _pack_codes(arch: Arch) -> bytes:
    return _CODES.pack(arch.static_codes, arch.dynamic_codes, arch.heads)


def _unpack_codes(data: bytes, pos: int, stages: int) -> tuple[dict, int]:
    static, dynamic, heads = _CODES.unpack_from(data, pos)
    return dict(static_codes=static, dynamic_codes=dynamic, heads=heads), pos + _CODES.size


def _check_codes(fields: dict, stages: int, frames: int) -> str | None:
    static, dynamic = fields["static_codes"], fields["dynamic_codes"]
    if not (1 <= static <= frames and 1 <= dynamic <= frames):
        return "header has more static or dynamic codes than frames"
    if frames > 1 + (dynamic - 1) * MAX_FRAMES_PER_DYNAMIC_CODE:
        # Each frame's input comes from its two nearest dynamic codes: a few codes cannot stand for
        # millions of frames (a small file that would decode forever).
        return (f"header declares {frames} frames for {dynamic} dynamic codes (at most "
                f"{MAX_FRAMES_PER_DYNAMIC_CODE} frames per code)")
    return None


def _info(arch: Arch, shapes: dict) -> dict:
    codes = arch.model == "dsnerv"
    return {"content_embedding": None if codes else list(arch.content_shape),
            "diff_embedding": list(arch.diff_shape) if "DIFF" in shapes else None,
            "static_codes": list(shapes["STATIC"]) if codes else None,
            "dynamic_codes": list(shapes["DYNAMIC"]) if codes else None,
            "attention_heads": arch.heads if codes else None,
            "fuse_stage": arch.fuse_stage if arch.two_stream else None,
            "diff_up": arch.diff_up if arch.two_stream else None}


INFO_KEYS = ("content_embedding", "diff_embedding", "static_codes", "dynamic_codes", "attention_heads",
             "fuse_stage", "diff_up")


# --- planning ---------------------------------------------------------------------------------------------------

def _kernels(n: int) -> tuple[int, ...]:
    return tuple(min(1 + 2 * i, 5) for i in range(n))


def choose_strides(width: int, height: int) -> tuple[int, ...]:
    """Decoder strides: little padding, and a content grid of a sensible number of positions."""
    target_positions = min(64.0, max(1.0, width * height / 25600))
    best, best_cost = None, math.inf
    for strides in itertools.combinations_with_replacement((5, 4, 3, 2), STAGES):
        s = math.prod(strides)
        gh, gw = -(-height // s), -(-width // s)
        waste = gh * gw * s * s / (width * height) - 1
        cost = waste + 0.1 * abs(math.log2(gh * gw / target_positions))
        if cost < best_cost:
            best, best_cost = tuple(strides), cost
    return best


def diff_options(strides: tuple[int, ...]) -> list[tuple[int, int]]:
    """(fuse_stage, diff_up) pairs: fuse after stage 2 or 3 (paper: 3), upsampling the diff by 1..5."""
    out = []
    for fuse in (2, 1):
        before = math.prod(strides[: fuse + 1])
        out += [(fuse, r) for r in (4, 5, 3, 2, 1) if before % r == 0]
    return out


def make_arch(model: str, width: int, height: int, strides, stem: int, emb_ch: int = 16,
              fuse: int = 2, diff_up: int = 4, diff_ch: int = 2, frames: int = 2, dynamic_every: int = 1,
              align: int = 1) -> Arch:
    n = len(strides)
    codes = {}
    if model == "dsnerv":
        codes = dict(static_codes=entries_for(frames, STATIC_EVERY),
                     dynamic_codes=entries_for(frames, dynamic_every))
    return Arch(model, width, height, tuple(strides), tuple(reduced_widths(stem, n, align=align)), _kernels(n),
                emb_ch=emb_ch, diff_ch=diff_ch, fuse_stage=fuse, diff_up=diff_up, **codes)


def _embedding_candidates(diff: bool, strides) -> list[tuple[dict, float]]:
    """(make_arch keyword arguments, preference penalty) of each layout the planner may choose: the paper's
    16 channels and fusion stage preferred."""
    diff_choices = diff_options(strides) if diff else [(2, 4)]
    return [(dict(emb_ch=emb_ch, fuse=fuse, diff_up=r), 0.1 * (16 - emb_ch) / 4 + 0.1 * (fuse != 2))
            for emb_ch, (fuse, r) in itertools.product((16, 8, 4), diff_choices)]


def _code_candidates(strides) -> list[tuple[dict, float]]:
    """DS-NeRV: one dynamic code per frame, or one every 2 frames where that balances the rate better (a penalty
    keeps one per frame unless it pays)."""
    return [(dict(emb_ch=16, fuse=fuse, diff_up=r, diff_ch=ch, dynamic_every=every),
             0.1 * (fuse != 2) + 0.15 * (every != 1) + 0.05 * abs(math.log2(ch / 2)))
            for ch, (fuse, r), every in itertools.product((2, 1, 4), diff_options(strides), DYNAMIC_EVERY)]


def plan_for_bpp(model: str, candidates, embed_share_goal: float, width: int, height: int, frames: int,
                 bpp: float, quant_bits: float = 8, prune: float = 0.1) -> sizing.Plan:
    """The layout of `candidates(strides)` whose share of table bytes is closest to `embed_share_goal`, each
    with the largest decoder the rest of the budget holds."""
    from ..compress.ratecontrol import highest_bits

    Plan, MIN_STEM, MAX_STEM = sizing.Plan, sizing.MIN_STEM, sizing.MAX_STEM
    budget = bpp * width * height * frames / 8
    strides = choose_strides(width, height)
    best, best_score, largest, floors = None, math.inf, 0, []
    for options, penalty in candidates(strides):
        def make(stem, align=1, options=options):
            return make_arch(model, width, height, strides, stem, frames=frames, align=align, **options)
        try:
            floor = make(MIN_STEM)
        except ArchError:
            continue
        floors.append(floor)    # (`sizing.smallest_plan`)
        largest = max(largest, sizing.predict_bytes(make(MAX_STEM), frames, highest_bits(quant_bits), prune))
        embed_bytes = sizing.embedding_bytes(floor, frames, quant_bits)
        weight_bits_each = (1 - prune) * (quant_bits - sizing.WEIGHT_BITS_BELOW_QUANT)
        weights_budget = budget - embed_bytes - sizing.FIXED_OVERHEAD_BYTES - 12 * sum(floor.widths)
        arch = sizing.largest_arch(make, weights_budget * 8 / weight_bits_each)
        if arch is None:
            continue
        predicted = sizing.predict_bytes(arch, frames, quant_bits, prune)
        share = embed_bytes / predicted
        # Closest to the goal share of embedding bits, then the preferred layouts.
        score = abs(math.log(share / embed_share_goal)) + penalty
        if score < best_score:
            best, best_score = Plan(arch, sizing.param_count(arch), predicted, share, arch.widths[0] >= MAX_STEM), score
    if best is None:
        best = sizing.smallest_plan([floors], budget, bpp, width * height, frames,
                                    lambda arch, bits: sizing.predict_bytes(arch, frames, bits, prune), quant_bits)
    if budget > largest:
        raise sizing.InfeasibleRate(bpp, maximum=largest * 8 / (width * height * frames))
    return best


def plan_for_params(model: str, width: int, height: int, params: float, frames: int = 2) -> sizing.Plan:
    """Architecture with about `params` decoder parameters (paper-style: 16-channel embedding, CCU after stage 3)."""
    strides = choose_strides(width, height)
    fuse, r = diff_options(strides)[0]

    def make(stem, align=1):
        return make_arch(model, width, height, strides, stem, 16, fuse, r, frames=frames, align=align)

    arch = sizing.largest_arch(make, params) or make(sizing.MIN_STEM)
    return sizing.Plan(arch, sizing.param_count(arch), 0, 0.0)


def _planners(model: str, candidates, embed_share_goal: float) -> dict:
    return dict(plan_for_bpp=functools.partial(plan_for_bpp, model, candidates, embed_share_goal),
                plan_for_params=functools.partial(plan_for_params, model))


# --- the models -------------------------------------------------------------------------------------------------

register(ModelSpec(
    "hnerv", 0, "HNeRV", "content only", NeRVDecoder, _embedding_shapes, {"CONTENT": CONTENT},
    training=FrameTriplets, table_bits_below_quant=EMBED_BITS_BELOW_QUANT, info=_info, info_keys=INFO_KEYS,
    fuzz_seeds=((4, 1.0, None),),
    **_planners("hnerv", functools.partial(_embedding_candidates, False), 0.2)))
register(ModelSpec(
    "dnerv", 1, "DNeRV", "content + difference", NeRVDecoder, _embedding_shapes, {"CONTENT": CONTENT, "DIFF": DIFF},
    training=FrameTriplets, two_stream=True, table_bits_below_quant=EMBED_BITS_BELOW_QUANT,
    adan_min_params=ADAN_MIN_PARAMS, info=_info, info_keys=INFO_KEYS,
    fuzz_seeds=((4, 1.0, None), (12, 0.5, None), (3, 2.0, (175, 143)), (8, 2.0, None, 3)),
    **_planners("dnerv", functools.partial(_embedding_candidates, True), 0.35)))
register(ModelSpec(
    "dsnerv", 2, "DS-NeRV", "static + dynamic codes", NeRVDecoder, _code_shapes,
    {"STATIC": STATIC, "DYNAMIC": DYNAMIC}, validate=_validate_codes,
    pack_tail=_pack_codes, unpack_tail=_unpack_codes, check_header=_check_codes,
    training=LearnedTables, two_stream=True, table_bits_below_quant=CODE_BITS_BELOW_QUANT, info=_info,
    info_keys=INFO_KEYS, fuzz_seeds=((6, 1.0, None),),
    # The numbers of codes do not change the network.
    network_of=lambda arch: dataclasses.replace(arch, static_codes=1, dynamic_codes=1),
    **_planners("dsnerv", _code_candidates, 0.3)))
