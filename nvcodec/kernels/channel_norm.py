"""LayerNorm over the channel axis of a (B, C, H, W) tensor in one pass over memory, for decoding on GPUs.

In pure PyTorch this LayerNorm is either F.layer_norm on channels moved last (its CUDA kernel gives each
pixel's few dozen channels a thread block) or a chain of reductions and broadcast arithmetic, about ten passes
over the tensor; in hinerv's decoder either took about half the GPU time (benchmarks.network_speed). This
Triton kernel reads each pixel's channels once, normalises them in fp32 and writes the result once, in
either memory layout (NCHW or channels-last). Triton compiles it at first use, for each channel count and
layout (0.6 to 0.8 s for hinerv's network on an H200), and caches it on disk for later processes.

`usable(x)` says whether it can run here: a CUDA tensor, Triton importable, and no earlier compile failure
(then `LayerNorm2d` keeps its reductions). Triton is imported at the first use on a GPU, not before.
"""
from __future__ import annotations

import functools

import torch

_failed = False         # a compile or launch failed once (e.g. no C compiler for Triton's launcher): not retried
ELEMENTS_PER_PROGRAM = 4096


def usable(x: torch.Tensor) -> bool:
    return (not _failed and x.is_cuda and x.dim() == 4 and x.dtype in (torch.float32, torch.bfloat16, torch.float16)
            and _kernel() is not None)


@functools.cache
def _kernel():
    """The kernel (Triton compiles it at its first launch), or None where Triton is missing (CPU builds of torch
    ship none)."""
    try:
        from .channel_norm_triton import norm_kernel
    except ImportError:
        return None
    return norm_kernel


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over dim 1 of a CUDA (B, C, H, W) tensor, NCHW or channels-last; the result has x's dtype
    and layout. Raises if the kernel cannot be built (and `usable` is False from then on)."""
    global _failed
    import triton
    b, c, h, w = x.shape
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    y = torch.empty_like(x)     # keeps x's layout: the same strides
    block_c = triton.next_power_of_2(c)
    block_s = max(1, min(triton.next_power_of_2(h * w), ELEMENTS_PER_PROGRAM // block_c))
    grid = (triton.cdiv(h * w, block_s), b)
    # Positions h*W + w of one frame are one axis: stride 1 in NCHW, C in channels-last (with W = 1 the
    # stride of a size-1 axis says nothing: the rows' is used).
    stride_s = x.stride(3) if w > 1 else x.stride(2)
    try:
        _kernel()[grid](x, y, weight.contiguous(), bias.contiguous(), c, h * w, x.stride(0), x.stride(1), stride_s,
                        eps, BLOCK_C=block_c, BLOCK_S=block_s)
    except Exception:
        _failed = True
        raise
    return y
