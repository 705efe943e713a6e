"""LayerNorm over the channel axis of a (B, C, H, W) tensor in one pass over memory, for decoding on GPUs.

In pure PyTorch this LayerNorm is either F.layer_norm on channels moved last (its CUDA kernel gives each
pixel's few dozen channels a thread block) or a chain of reductions and broadcast arithmetic, about ten passes
over the tensor; in hinerv's decoder either took about half the GPU time (benchmarks.network_speed). This
Triton kernel reads each pixel's channels once, normalises them in fp32 and writes the result once, in
either memory layout (NCHW or channels-last). Triton compiles it at first use (about a second for each
channel count and layout, cached on disk by Triton for later processes).

`usable(x)` says whether it can run here: a CUDA tensor, Triton importable, and no earlier compile failure
(then `LayerNorm2d` keeps its reductions).
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:     # CPU builds of torch ship no Triton
    triton = None

_failed = False         # a compile or launch failed once (e.g. no C compiler for Triton's launcher): not retried
ELEMENTS_PER_PROGRAM = 4096


def usable(x: torch.Tensor) -> bool:
    return (triton is not None and not _failed and x.is_cuda and x.dim() == 4
            and x.dtype in (torch.float32, torch.bfloat16, torch.float16))


if triton is not None:
    @triton.jit
    def _norm_kernel(x_ptr, y_ptr, w_ptr, b_ptr, channels, positions, stride_b, stride_c, stride_s, eps,
                     BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
        # One program: all channels of BLOCK_S positions of one frame. x and y share their strides.
        frame = tl.program_id(1).to(tl.int64)
        c = tl.arange(0, BLOCK_C)
        s = tl.program_id(0).to(tl.int64) * BLOCK_S + tl.arange(0, BLOCK_S)
        c_ok = c < channels
        ok = c_ok[:, None] & (s < positions)[None, :]
        offsets = frame * stride_b + c[:, None] * stride_c + s[None, :] * stride_s
        x = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / channels
        centred = tl.where(ok, x - mean[None, :], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=0) / channels + eps)
        w = tl.load(w_ptr + c, mask=c_ok, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + c, mask=c_ok, other=0.0).to(tl.float32)
        y = centred * rstd[None, :] * w[:, None] + b[:, None]
        tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=ok)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over dim 1 of a CUDA (B, C, H, W) tensor, NCHW or channels-last; the result has x's dtype
    and layout. Raises if the kernel cannot be built (and `usable` is False from then on)."""
    global _failed
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
        _norm_kernel[grid](x, y, weight.contiguous(), bias.contiguous(), c, h * w, x.stride(0), x.stride(1),
                           stride_s, eps, BLOCK_C=block_c, BLOCK_S=block_s)
    except Exception:
        _failed = True
        raise
    return y
