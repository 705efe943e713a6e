"""Rate control: (resolution, frame count, target bpp) -> an architecture whose file lands near the target.

The estimate counts what the file will hold: the decoder's weights (after pruning) and the input
tables (content and diff embeddings, DS-NeRV's static and dynamic codes, HiNeRV's grids), each at a
calibrated number of bits per coded value, plus the fixed costs of the container and the quantization
parameters. Each model plans its own layouts (its `ModelSpec.plan_for_bpp`, in its module) with the
pieces here. After training, `codec` trims the quantizer to land the real file within a few percent of
the target (see `compress.ratecontrol`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from .models import Arch, param_count, spec_of

MIN_STEM = 8
MAX_STEM = 512
# Bits per coded weight at 8-bit quantization after entropy coding, measured on the H100 Bunny run
# (benchmarks/results/bunny_fast_encode_h100_2026-11-21: 7.5 bits per kept weight). Each model says its tables'
# (`ModelSpec.table_bits_below_quant`).
WEIGHT_BITS_BELOW_QUANT = 0.5
# The fewest bits per coded table value the planner counts on (at the lowest depths the offset below the
# quantizer's depth would go under it).
MIN_TABLE_BITS = 1.0
FIXED_OVERHEAD_BYTES = 400
# Channel widths are rounded to multiples of this (see `reduced_widths`): 3M Bunny trained at 187 frames/s
# instead of 148 on an H200, with the same parameters (benchmarks/results/bunny/recipes.md); hinerv at Bunny 0.05
# took 10.9 ms a training step with widths (149, 149, 74, 37, 18) and 8.0 ms with (152, 152, 80, 40, 16), the
# larger network (results/medium_blackswan_prune_gpu_2026-12-04/). 1: the authors' widths.
WIDTH_ALIGN = 8
# ... where a rounded network lies within this share of the parameters the budget allows, above or below: small
# networks (widths of 5-20) can only move in coarse steps once rounded, and would miss the target rate. Above the
# budget, rate control takes the few percent back from the quantizer's depth.
ALIGN_SLACK = 0.05


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


def largest_arch(make, params: float) -> Arch | None:
    """The largest decoder `make(stem, align)` with at most `params` parameters (None if even the smallest is
    over), in widths of multiples of WIDTH_ALIGN where the largest such lies within ALIGN_SLACK of it, else where
    the smallest such above it does; else in the authors' widths."""
    stem = stem_for_params(lambda s: make(s, 1), params)
    if stem is None:
        return None
    plain = make(stem, 1)
    if WIDTH_ALIGN > 1:
        target = param_count(plain)
        stem_below = stem_for_params(lambda s: make(s, WIDTH_ALIGN), params)
        below = make(stem_below, WIDTH_ALIGN) if stem_below is not None else None
        if below is not None and param_count(below) >= (1 - ALIGN_SLACK) * target:
            return below
        # Each stage's width rounds on its own: the stems up to two steps above give every rounded network there.
        above = [a for a in {make(s, WIDTH_ALIGN) for s in range(stem, min(MAX_STEM, stem + 2 * WIDTH_ALIGN) + 1)}
                 if target < param_count(a) <= (1 + ALIGN_SLACK) * target]
        if above:
            return min(above, key=param_count)
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


def embedding_bytes(arch: Arch, frames: int, quant_bits: float, exclude: tuple[str, ...] = ()) -> float:
    """The input tables' bytes (but those named in `exclude`), each table's values at its model's bits per value
    (or its own, `Table`)."""
    spec = spec_of(arch.model)
    values_at = {}      # values by bits per value (tables of one depth: exactly values * bits / 8)
    for name, shape in arch.section_shapes(frames).items():
        if name in exclude:
            continue
        below = spec.tables[name].bits_below_quant
        bits = max(quant_bits - (spec.table_bits_below_quant if below is None else below), MIN_TABLE_BITS)
        values_at[bits] = values_at.get(bits, 0) + math.prod(shape)
    return sum(values * bits for bits, values in values_at.items()) / 8


def predict_bytes(arch: Arch, frames: int, quant_bits: float, prune: float) -> int:
    w_bits = param_count(arch) * (1 - prune) * (quant_bits - WEIGHT_BITS_BELOW_QUANT)
    scales = 2 * sum(arch.widths) * 6  # float16 per-channel scales, a few tensors per stage
    return int(w_bits / 8 + embedding_bytes(arch, frames, quant_bits) + scales + FIXED_OVERHEAD_BYTES)


# Where the fallback first asks a network to fit: this share of the way from the planned depth down to
# `ratecontrol.MIN_BITS` (halfway: see `smallest_plan`).
FALLBACK_FIT = 0.5
NEAR_BITS = 0.5     # how far under the planned depth `smallest_plan`'s `near` networks must fit


def smallest_plan(floors: list[list[Arch]], budget: float, bpp: float, frame_pixels: int, frames: int, predict,
                  quant_bits: float, choose=None, near: list[list[Arch]] = ()) -> Plan:
    """The plan for a budget below what every network holds at the planned depth `quant_bits`: of the smallest
    networks the planner makes, in groups from the most preferred (`floors`), the first group with networks that
    fit at a depth halfway down to `ratecontrol.MIN_BITS` (FALLBACK_FIT), else at MIN_BITS (rate control then lowers
    the depth to the target), else InfeasibleRate with the smallest's rate. `predict(arch, bits)`: its bytes at that
    depth; `choose(fitting, bits)`: which of a group's fitting networks to take (by default the largest). `near`: groups
    tried before all these, at NEAR_BITS under the planned depth.

    Halfway rather than at MIN_BITS: at 0.025 bpp (`--preset fast`) the smaller network came out 1.1 dB (CiscoVT)
    and 1.3 dB (carphone, 40 frames) better in RGB PSNR than the larger one at 3 bits (a tie on CiscoVT at 0.05;
    benchmarks/results/low_rates_cpu_2026-12-03)."""
    from .compress.ratecontrol import MIN_BITS

    choose = choose or (lambda fitting, bits: max(fitting, key=lambda a: predict(a, bits)))
    passes = [(quant_bits - NEAR_BITS, near)] + [(bits, floors) for bits in
                                                 (quant_bits - FALLBACK_FIT * (quant_bits - MIN_BITS), MIN_BITS)]
    for bits, groups in passes:
        for group in groups:
            fitting = [arch for arch in group if predict(arch, bits) <= budget]
            if fitting:
                arch = choose(fitting, bits)
                predicted = predict(arch, quant_bits)
                return Plan(arch, param_count(arch), predicted, embedding_bytes(arch, frames, quant_bits) / predicted)
    smallest = min(predict(arch, MIN_BITS) for group in floors for arch in group)
    raise InfeasibleRate(bpp, minimum=smallest * 8 / (frame_pixels * frames))


def plan_for_bpp(model: str, width: int, height: int, frames: int, bpp: float,
                 quant_bits: float = 8, prune: float = 0.1) -> Plan:
    """Choose the architecture for a target bpp. Raises InfeasibleRate with the smallest reachable bpp, or the
    largest: what the largest network predicts at the finest quantizer rate control may use."""
    return spec_of(model).plan_for_bpp(width, height, frames, bpp, quant_bits, prune)


def plan_for_params(model: str, width: int, height: int, params: float, frames: int = 2) -> Plan:
    """Architecture with about `params` decoder parameters."""
    return spec_of(model).plan_for_params(width, height, params, frames)


SCALE_INDEX_BITS = 6     # a weight scale's coded log-grid index: 5.2-5.5 bits measured on three CPU networks


@functools.lru_cache(maxsize=4096)
def side_bytes(arch: Arch) -> int:
    """Bytes of the weights' quantization parameters (a mode byte per tensor, and one blob of scale indices,
    `compress.quantize.scale_index`, per output channel at most) and the tables' (float16 offset and scale per
    channel), with each blob's length field."""
    import torch

    from .compress.quantize import per_channel
    from .models import Decoder
    with torch.device("meta"):
        shapes = [tuple(v.shape) for v in Decoder(arch).state_dict().values()]
    scales = sum(s[0] if per_channel(s) else 1 for s in shapes)
    weights = 5 * len(shapes) + 4 + math.ceil(SCALE_INDEX_BITS * scales / 8)
    tables = sum(4 * shape[1] + 5 for shape in arch.section_shapes(2).values())
    return weights + tables
