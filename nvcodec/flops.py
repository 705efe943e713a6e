"""Floating-point operations per frame, counted by PyTorch on shape-only (meta) tensors.

Used to report achieved TFLOP/s: training counts forward + backward as 3x the forward pass.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import Arch, Decoder, spec_of


def decoder_flops(arch: Arch) -> int:
    """FLOPs of decoding one frame (multiply-adds count as 2)."""
    from .memory import decoder_input_shapes_example

    with torch.device("meta"):
        dec = Decoder(arch)
        inputs = decoder_input_shapes_example(arch)
        with FlopCounterMode(display=False) as counter:
            dec(*inputs)
    return counter.get_total_flops()


def training_flops(arch: Arch, enc_dim: int = 64) -> int:
    """FLOPs of one training step per frame: 3x the forward pass of encoders + decoder (models with learned
    tables have no encoders: their tables are read by interpolation, whose cost is negligible)."""
    from .models.encoders import Encoders

    if spec_of(arch.model).learned_tables:
        return 3 * decoder_flops(arch)

    with torch.device("meta"):
        enc, dec = Encoders(arch, enc_dim), Decoder(arch)
        x = torch.empty(1, 3, *arch.padded_size)
        with FlopCounterMode(display=False) as counter:
            dec(*enc(x, x, x))
    return 3 * counter.get_total_flops()
