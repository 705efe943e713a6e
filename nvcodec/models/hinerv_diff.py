"""hinerv-diff: DNeRV's difference stream on the HiNeRV-class network (an experiment beside `hinerv`, not the default).

The decoder is hinerv's (`hinerv.HiNeRVDecoder`: feature grids GRID0, GRID1 and local grids LOCAL, learnable tables
trained with the network), with DNeRV's second input: a diff embedding per frame (DIFF, `diff_ch x (pad_h/D) x
(pad_w/D)`, `Arch.diff_shape`), which a diff encoder computes during training from the differences of frames t-1,
t, t+1 (`encoders.DiffEncoder`; trained with the decoder, not stored: the file stores its outputs). It is upsampled
bilinearly by `diff_up` to the output of stage `fuse_stage`, where DNeRV's CCU fuses it into the main path
(`hinerv.HiNeRVDecoder`). Header, tables, planner and training are hinerv's, plus the diff stream.
"""
from __future__ import annotations

import dataclasses
import functools

from . import hinerv
from .nerv import DIFF, EMBED_BITS_BELOW_QUANT
from .registry import ModelSpec, register
from .training import TablesAndDiff

MODEL = "hinerv-diff"
DIFF_CH = 2
FUSE_STAGE = 0
# The CCU runs at the first stage's width, the network's widest (hinerv's widths halve from the second stage on):
# with 1x1 kernels its gate from the main path holds 2 x width^2 weights; 3x3 ones would hold 9 times that.
DIFF_KERNEL = 1         # (a header field of the NeRV models' diff block; this decoder has none)
CCU_KERNEL = 1
# DNeRV's DIFF section, which the planner counts as DNeRV's encoder outputs rather than as the grids (a first CPU
# smoke encode, 8 frames of 1280x720 Bunny at 0.05 bpp, 10 epochs: 1.5 bits a value against the grids' 5).
TABLES = {**hinerv.TABLES, "DIFF": dataclasses.replace(DIFF, bits_below_quant=EMBED_BITS_BELOW_QUANT)}


def diff_stream(strides) -> dict:
    """The diff stream's Arch fields: fused after the first stage, its embedding upsampled by that stage's whole
    factor, so that it lies on the base grid (pad_h/S x pad_w/S), the coarsest the fusion allows: the smallest
    table (at 1280x720, 18 x 32 x `DIFF_CH` values a frame)."""
    return dict(diff_ch=DIFF_CH, fuse_stage=FUSE_STAGE, diff_up=strides[FUSE_STAGE], diff_kernel=DIFF_KERNEL,
                ccu_kernel=CCU_KERNEL)


def info(arch, shapes) -> dict:
    return {"content_embedding": list(arch.content_shape), "diff_embedding": list(arch.diff_shape),
            "fuse_stage": arch.fuse_stage, "diff_up": arch.diff_up}


register(ModelSpec(
    MODEL, 4, "HiNeRV-diff", "feature grids + DNeRV's difference stream", hinerv.HiNeRVDecoder,
    hinerv.section_shapes, TABLES,
    validate=hinerv.validate, pack_tail=hinerv.pack_tail, unpack_tail=hinerv.unpack_tail,
    check_header=hinerv.check_header, training=TablesAndDiff, two_stream=True, quant_bits=6,
    table_bits_below_quant=hinerv.GRID_BITS_BELOW_QUANT, learning_rates=hinerv.LEARNING_RATES,
    plan_for_bpp=functools.partial(hinerv.plan_for_bpp, model=MODEL, stream=diff_stream),
    plan_for_params=functools.partial(hinerv.plan_for_params, model=MODEL, stream=diff_stream),
    info=info, info_keys=("content_embedding", "diff_embedding", "fuse_stage", "diff_up"),
    fuzz_seeds=((6, 1.0, None), (3, 3.0, (175, 143)), (3, 12.0, (64, 48), None, {"rate": True}))))
