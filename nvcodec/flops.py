"""What one frame of decoding costs: floating-point operations and the values its layers output.

Used to report achieved TFLOP/s (training counts forward + backward as 3x the forward pass) and, by
`memory.decode_bytes_per_frame`, to size decoding batches.

`frame_cost` runs the decoder for real, on the CPU, on the smallest frames its strides allow (one and two cells
of its content grid) and extrapolates to the file's size: every layer's output grows linearly with the number of
cells. It counts what torch's FlopCounterMode counts (convolutions and matrix products, multiply-adds as 2): the
layers' own, and what a module with a `matmul_flops(output)` method declares for the products in its forward.
Counting on meta tensors instead, or with FlopCounterMode, would import torch._dynamo at the first call: 1.4 s
here and several seconds on machines without compiled bytecode, in every `dnv decode`.
"""
from __future__ import annotations

import dataclasses
import functools

import torch
import torch.nn as nn

from .memory import decoder_input_shapes_example
from .models import Arch, ArchError, Decoder, spec_of


def decoder_flops(arch: Arch) -> int:
    """FLOPs of decoding one frame (multiply-adds count as 2)."""
    return frame_cost(arch)[1]


@functools.lru_cache(maxsize=256)
def frame_cost(arch: Arch) -> tuple[int, int]:
    """(values, FLOPs) of decoding one frame of `arch`: the sum of its layers' output sizes, and its FLOPs."""
    s = arch.total_stride
    ph, pw = arch.padded_size
    cells = (ph // s) * (pw // s)
    try:
        one = _measure(dataclasses.replace(arch, width=s, height=s))
        two = _measure(dataclasses.replace(arch, width=2 * s, height=s))
    except ArchError:       # a cell larger than any frame (a header's strides can ask for it): count it as it is
        return count_on_meta(arch)
    return tuple(a + (b - a) * (cells - 1) for a, b in zip(one, two))


def count_on_meta(arch: Arch) -> tuple[int, int]:
    """`frame_cost` counted at the full size on meta tensors, with torch's FlopCounterMode (imports torch._dynamo)."""
    from torch.utils.flop_counter import FlopCounterMode
    values = 0

    def count(_module, _inputs, output):
        nonlocal values
        values += output.numel()

    with torch.device("meta"), torch.no_grad():
        decoder = Decoder(arch)
        for m in decoder.modules():
            if not any(True for _ in m.children()):
                m.register_forward_hook(count)
        inputs = decoder_input_shapes_example(arch)
        with FlopCounterMode(display=False) as counter:
            decoder(*inputs)
    return values, counter.get_total_flops()


@torch.no_grad()
def _measure(arch: Arch) -> tuple[int, int]:
    decoder = Decoder(arch)     # (on the meta device, moving it to the CPU would import what we avoid here)
    values = flops = 0

    def count(module, _inputs, output):
        nonlocal values, flops
        values += output.numel()
        if isinstance(module, nn.Conv2d):
            flops += 2 * output.numel() * module.in_channels // module.groups * module.weight[0, 0].numel()
        elif isinstance(module, nn.Linear):
            flops += 2 * output.numel() * module.in_features

    def count_matmuls(module, _inputs, output):
        nonlocal flops
        flops += module.matmul_flops(output)

    for m in decoder.modules():
        if not any(True for _ in m.children()):
            m.register_forward_hook(count)
        if hasattr(m, "matmul_flops"):      # matrix products in a module's own forward (DS-NeRV's attention)
            m.register_forward_hook(count_matmuls)
    decoder(*decoder_input_shapes_example(arch))
    return values, flops


def training_flops(arch: Arch, enc_dim: int = 64) -> int:
    """FLOPs of one training step per frame: 3x the forward pass of the model's encoders (`TrainingInputs.encoders`,
    where it has any) + decoder (learned tables are read by interpolation, whose cost is negligible)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        encoders = spec_of(arch.model).training.encoders(arch, enc_dim)
    if encoders is None:
        return 3 * decoder_flops(arch)

    with torch.device("meta"):
        x = torch.empty(1, 3, *arch.padded_size)
        with FlopCounterMode(display=False) as counter:
            encoders(x, x, x)
    return 3 * (counter.get_total_flops() + decoder_flops(arch))
