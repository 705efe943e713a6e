"""Rate control: (resolution, frame count, target bpp) -> an architecture whose file lands near the target.

The estimate counts what the file will hold: the decoder's weights (after pruning) and the input
tables (content and diff embeddings, or DS-NeRV's static and dynamic codes), each at a calibrated
number of bits per coded value, plus the fixed costs of the container and the quantization parameters.

DS-NeRV: one static code every STATIC_EVERY frames at most; one dynamic code per frame, or one
every 2 frames where that balances the rate better (a penalty keeps one per frame unless it pays). After training, `codec` trims the quantizer to land the
real file within a few percent of the target (see `compress.ratecontrol`).
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

from .models import Arch, ArchError, param_count, reduced_widths
from .models.arch import MAX_FRAMES_PER_DYNAMIC_CODE, entries_for

STAGES = 5
MIN_STEM = 8
MAX_STEM = 512
# Bits per coded value at 8-bit quantization after entropy coding, measured on the H100 Bunny run
# (benchmarks/results/bunny_fast_encode_h100_2026-11-21: 7.5 bits per kept weight, 2.7 and 4.3 bits per
# content / diff value).
WEIGHT_BITS_BELOW_QUANT = 0.5
EMBED_BITS_BELOW_QUANT = 4.0
CODE_BITS_BELOW_QUANT = 1.0     # DS-NeRV's learned codes are spread more evenly than encoder outputs
FIXED_OVERHEAD_BYTES = 400
# Channel widths are rounded to multiples of this (see `reduced_widths`): 3M Bunny trained at 187 frames/s
# instead of 148 on an H200, with the same parameters (benchmarks/results/bunny/recipes.md). 1: the authors' widths.
WIDTH_ALIGN = 8
# ... unless the rounding would give up more than this share of the parameters the budget allows: small networks
# (widths of 5-20) can only move in coarse steps once rounded, and would undershoot the target rate.
ALIGN_SLACK = 0.05
STATIC_EVERY = 8
DYNAMIC_EVERY = (1, MAX_FRAMES_PER_DYNAMIC_CODE)
EMBED_SHARE_GOAL = {"dnerv": 0.35, "hnerv": 0.2, "dsnerv": 0.3}


class InfeasibleRate(ValueError):
    """A --bpp out of the planner's reach for this video: below what the smallest network costs (`minimum`), or
    above what the largest one can hold with the quantizer at its finest (`maximum`)."""

    def __init__(self, target: float, minimum: float | None = None, maximum: float | None = None):
        if maximum is None:
            text = (f"--bpp {target:g} is below what the smallest model can reach for this video "
                    f"(about {_figure(minimum, 4)} bpp); use --bpp {_figure(minimum * 1.1, 3)} or more")
        else:
            text = (f"--bpp {target:g} is above what the largest model can reach for this video "
                    f"(about {_figure(maximum, 4)} bpp); use --bpp {_figure(maximum * 0.9, 3)} or less")
        super().__init__(text)
        self.minimum, self.maximum = minimum, maximum


def _figure(value: float, digits: int) -> str:
    """`digits` significant digits, in plain notation (1,234 rather than 1.23e+03)."""
    return f"{value:.{digits}g}" if value < 10 ** digits else f"{value:,.0f}"


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


codes_for = entries_for


def make_arch(model: str, width: int, height: int, strides, stem: int, emb_ch: int = 16,
              fuse: int = 2, diff_up: int = 4, diff_ch: int = 2, frames: int = 2, dynamic_every: int = 1,
              align: int = 1) -> Arch:
    n = len(strides)
    codes = {}
    if model == "dsnerv":
        codes = dict(static_codes=codes_for(frames, STATIC_EVERY), dynamic_codes=codes_for(frames, dynamic_every))
    return Arch(model, width, height, tuple(strides), tuple(reduced_widths(stem, n, align=align)), _kernels(n),
                emb_ch=emb_ch, diff_ch=diff_ch, fuse_stage=fuse, diff_up=diff_up, **codes)


def largest_arch(make, params: float) -> Arch | None:
    """The largest decoder `make(stem, align)` with at most `params` parameters (None if even the smallest is
    over): widths in multiples of WIDTH_ALIGN, unless that gives up more than ALIGN_SLACK of the parameters."""
    stem = stem_for_params(lambda s: make(s, 1), params)
    if stem is None:
        return None
    plain = make(stem, 1)
    if WIDTH_ALIGN > 1:
        stem = stem_for_params(lambda s: make(s, WIDTH_ALIGN), params)
        aligned = make(stem, WIDTH_ALIGN) if stem is not None else None
        if aligned is not None and param_count(aligned) >= (1 - ALIGN_SLACK) * param_count(plain):
            return aligned
    return plain


def stem_for_params(make, params: float) -> int | None:
    """Largest stem width whose decoder has at most `params` parameters (None if even MIN_STEM is over)."""
    if param_count(make(MIN_STEM)) > params:
        return None
    lo, hi = MIN_STEM, MAX_STEM
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if param_count(make(mid)) <= params:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class Plan:
    arch: Arch
    params: int
    predicted_bytes: int
    embedding_share: float
    largest: bool = False       # the largest network the planner makes (MAX_STEM): a higher target cannot grow it


def embedding_bytes(arch: Arch, frames: int, quant_bits: float) -> float:
    below = {"dsnerv": CODE_BITS_BELOW_QUANT, "hinerv": GRID_BITS_BELOW_QUANT}.get(arch.model, EMBED_BITS_BELOW_QUANT)
    return arch.embedding_values(frames) * (quant_bits - below) / 8


def predict_bytes(arch: Arch, frames: int, quant_bits: float, prune: float) -> int:
    w_bits = param_count(arch) * (1 - prune) * (quant_bits - WEIGHT_BITS_BELOW_QUANT)
    scales = 2 * sum(arch.widths) * 6  # float16 per-channel scales, a few tensors per stage
    return int(w_bits / 8 + embedding_bytes(arch, frames, quant_bits) + scales + FIXED_OVERHEAD_BYTES)


def _candidates(model: str, strides) -> list[tuple[dict, float]]:
    """(make_arch keyword arguments, preference penalty) of each layout the planner may choose."""
    if model == "dsnerv":
        return [(dict(emb_ch=16, fuse=fuse, diff_up=r, diff_ch=ch, dynamic_every=every),
                 0.1 * (fuse != 2) + 0.15 * (every != 1) + 0.05 * abs(math.log2(ch / 2)))
                for ch, (fuse, r), every in itertools.product((2, 1, 4), diff_options(strides), DYNAMIC_EVERY)]
    diff_choices = diff_options(strides) if model == "dnerv" else [(2, 4)]
    # Prefer the paper's 16 channels and fusion stage.
    return [(dict(emb_ch=emb_ch, fuse=fuse, diff_up=r), 0.1 * (16 - emb_ch) / 4 + 0.1 * (fuse != 2))
            for emb_ch, (fuse, r) in itertools.product((16, 8, 4), diff_choices)]


def plan_for_bpp(model: str, width: int, height: int, frames: int, bpp: float,
                 quant_bits: float = 8, prune: float = 0.1) -> Plan:
    """Choose the architecture for a target bpp. Raises InfeasibleRate with the smallest reachable bpp, or the
    largest: what the largest network predicts at the finest quantizer rate control may use."""
    from .compress.ratecontrol import highest_bits

    if model == "hinerv":
        return hinerv_plan_for_bpp(width, height, frames, bpp, quant_bits, prune)
    budget = bpp * width * height * frames / 8
    strides = choose_strides(width, height)
    embed_share_goal = EMBED_SHARE_GOAL[model]
    best, best_score, smallest, largest = None, math.inf, math.inf, 0
    for options, penalty in _candidates(model, strides):
        def make(stem, align=1, options=options):
            return make_arch(model, width, height, strides, stem, frames=frames, align=align, **options)
        try:
            floor = make(MIN_STEM)
        except ArchError:
            continue
        smallest = min(smallest, predict_bytes(floor, frames, quant_bits, prune))
        largest = max(largest, predict_bytes(make(MAX_STEM), frames, highest_bits(quant_bits), prune))
        embed_bytes = embedding_bytes(floor, frames, quant_bits)
        weight_bits_each = (1 - prune) * (quant_bits - WEIGHT_BITS_BELOW_QUANT)
        weights_budget = budget - embed_bytes - FIXED_OVERHEAD_BYTES - 12 * sum(floor.widths)
        arch = largest_arch(make, weights_budget * 8 / weight_bits_each)
        if arch is None:
            continue
        predicted = predict_bytes(arch, frames, quant_bits, prune)
        share = embed_bytes / predicted
        # Closest to the goal share of embedding bits, then the preferred layouts.
        score = abs(math.log(share / embed_share_goal)) + penalty
        if score < best_score:
            best, best_score = Plan(arch, param_count(arch), predicted, share, arch.widths[0] >= MAX_STEM), score
    if best is None:
        raise InfeasibleRate(bpp, minimum=smallest * 8 / (width * height * frames))
    if budget > largest:
        raise InfeasibleRate(bpp, maximum=largest * 8 / (width * height * frames))
    return best


def plan_for_params(model: str, width: int, height: int, params: float, frames: int = 2) -> Plan:
    """Architecture with about `params` decoder parameters (paper-style: 16-channel embedding, CCU after stage 3)."""
    if model == "hinerv":
        strides = hinerv_strides(width, height)
        arch = largest_arch(lambda stem, align: hinerv_arch(width, height, strides, stem, align=align), params)
        arch = arch or hinerv_arch(width, height, strides, MIN_STEM)
        return Plan(arch, param_count(arch), 0, 0.0)
    strides = choose_strides(width, height)
    fuse, r = diff_options(strides)[0]

    def make(stem, align=1):
        return make_arch(model, width, height, strides, stem, 16, fuse, r, frames=frames, align=align)

    arch = largest_arch(make, params) or make(MIN_STEM)
    return Plan(arch, param_count(arch), 0, 0.0)


# --- HiNeRV-class networks (models/hinerv.py) ------------------------------------------------------------------

# Bits per coded grid value below the quantizer's depth after entropy coding (a first estimate: between the
# encoders' embeddings and DS-NeRV's codes; `compress.ratecontrol` trims the real file to the target).
GRID_BITS_BELOW_QUANT = 2.0
# Levels of the base grid as (channels, frames per entry) at scale 1: a fine level for motion and a coarse,
# wider one for what stays (HiNeRV's Bunny configurations: 40 and 20 entries for 132 frames, 2 and 4 channels).
GRID_LEVELS = ((2, 3), (4, 6))
GRID_SCALES = (1, 2, 0.5, 4)       # the planner's choices of grid width, preferred first
LOCAL_CH, LOCAL_EVERY = 4, 6       # local grids: channels, frames per entry
GRID_SHARE_GOAL = 0.25             # share of the file the grids should take (HiNeRV's models: about a fifth)
HINERV_POSITIONS_PER_PIXEL = 1 / 1600   # base grid positions: 18 x 32 at 1280 x 720, as HiNeRV's configurations


def hinerv_strides(width: int, height: int) -> tuple[int, ...]:
    """Upsampling factors, largest first: little padding, and a base grid of about width*height/1600 positions."""
    target = min(2048.0, max(12.0, width * height * HINERV_POSITIONS_PER_PIXEL))
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


def hinerv_widths(stem: int, stages: int, align: int = 1) -> tuple[int, ...]:
    """Stem width, then each stage's: the first stage keeps it, each later one halves it (HiNeRV's reduction)."""
    widths = [stem, stem] + [max(4, stem // 2 ** i) for i in range(1, stages)]
    return tuple(w if w < align else max(align, align * round(w / align)) for w in widths)


def hinerv_arch(width: int, height: int, strides, stem: int, grid_scale: float = 1, align: int = 1) -> Arch:
    n = len(strides)
    return Arch("hinerv", width, height, tuple(strides), hinerv_widths(stem, n, align), (3,) * n,
                depths=(3,) * (n - 1) + (1,), expansions=(4,) * (n - 1) + (1,),
                grid_ch=tuple(max(1, int(ch * grid_scale)) for ch, _ in GRID_LEVELS),
                grid_every=tuple(every for _, every in GRID_LEVELS), local_ch=LOCAL_CH, local_every=LOCAL_EVERY)


@functools.lru_cache(maxsize=4096)
def side_bytes(arch: Arch) -> int:
    """Bytes of the weights' quantization parameters (mode byte + float16 scales, per output channel at most)
    and the tables' (float16 offset and scale per channel), with each blob's length field."""
    import torch

    from .models import Decoder
    with torch.device("meta"):
        shapes = [tuple(v.shape) for v in Decoder(arch).state_dict().values()]
    weights = sum(1 + 2 * (s[0] if len(s) >= 2 else 1) + 4 for s in shapes)
    tables = sum(4 * shape[1] + 5 for shape in arch.section_shapes(2).values())
    return weights + tables


def hinerv_predict_bytes(arch: Arch, frames: int, quant_bits: float, prune: float) -> int:
    w_bits = param_count(arch) * (1 - prune) * (quant_bits - WEIGHT_BITS_BELOW_QUANT)
    return int(w_bits / 8 + embedding_bytes(arch, frames, quant_bits) + side_bytes(arch) + FIXED_OVERHEAD_BYTES)


def hinerv_plan_for_bpp(width: int, height: int, frames: int, bpp: float, quant_bits: float = 8,
                        prune: float = 0.1) -> Plan:
    from .compress.ratecontrol import highest_bits

    budget = bpp * width * height * frames / 8
    strides = hinerv_strides(width, height)
    best, best_score, smallest, largest = None, math.inf, math.inf, 0
    for preference, scale in enumerate(GRID_SCALES):
        def make(stem, align=1, scale=scale):
            return hinerv_arch(width, height, strides, stem, scale, align)
        floor = make(MIN_STEM)
        smallest = min(smallest, hinerv_predict_bytes(floor, frames, quant_bits, prune))
        largest = max(largest, hinerv_predict_bytes(make(MAX_STEM), frames, highest_bits(quant_bits), prune))
        grid_bytes = embedding_bytes(floor, frames, quant_bits)
        weight_bits_each = (1 - prune) * (quant_bits - WEIGHT_BITS_BELOW_QUANT)
        weights_budget = budget - grid_bytes - FIXED_OVERHEAD_BYTES - side_bytes(floor)
        arch = largest_arch(make, weights_budget * 8 / weight_bits_each) if weights_budget > 0 else None
        if arch is None:
            continue
        predicted = hinerv_predict_bytes(arch, frames, quant_bits, prune)
        share = grid_bytes / predicted
        score = abs(math.log(share / GRID_SHARE_GOAL)) + 0.1 * preference
        if score < best_score:
            best, best_score = Plan(arch, param_count(arch), predicted, share, arch.widths[0] >= MAX_STEM), score
    if best is None:
        raise InfeasibleRate(bpp, minimum=smallest * 8 / (width * height * frames))
    if budget > largest:
        raise InfeasibleRate(bpp, maximum=largest * 8 / (width * height * frames))
    return best
