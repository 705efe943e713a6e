"""Building blocks shared by the networks: NeRV block, CCU, and the ConvNeXt encoder stages."""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels import channel_norm


class NeRVBlock(nn.Module):
    """conv(k) -> PixelShuffle(s) -> GELU: upsamples by s, `cin` -> `cout` channels."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, x):
        return F.gelu(self.shuffle(self.conv(x)))


class CCU(nn.Module):
    """Collaborative content unit (DNeRV Eq. 5): a GRU-like gate that merges diff features into content.

    p = tanh(Wpc*c + Wpd*d), s = sigmoid(Wsc*c + Wsd*d), out = s * p + (1 - s) * c.
    The two convolutions on each input are fused into one conv with 2x the output channels.
    """

    def __init__(self, ch_content: int, ch_diff: int, kernel: int = 3):
        super().__init__()
        self.from_content = nn.Conv2d(ch_content, 2 * ch_content, kernel, padding=kernel // 2)
        self.from_diff = nn.Conv2d(ch_diff, 2 * ch_content, kernel, padding=kernel // 2, bias=False)

    def forward(self, c, d):
        p, s = (self.from_content(c) + self.from_diff(d)).chunk(2, dim=1)
        s = torch.sigmoid(s)
        return s * torch.tanh(p) + (1 - s) * c


def layer_norm_by_kernel(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the channel axis of (B, C, H, W) through F.layer_norm (channels moved last)."""
    return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], weight, bias, eps).permute(0, 3, 1, 2)


def layer_norm_by_reductions(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the channel axis of (B, C, H, W), as mean and variance reductions."""
    centred = x - x.mean(1, keepdim=True)
    var = centred.square().mean(1, keepdim=True)
    return centred * torch.rsqrt(var + eps) * weight[:, None, None] + bias[:, None, None]


def _upsample_axis(x: torch.Tensor, s: int, dim: int) -> torch.Tensor:
    """Bilinear (align_corners=False) upsampling of one axis of x by the integer s, as shifted slices.

    Output position j*s + r samples the input at j + f_r, f_r = (r + 0.5) / s - 0.5 in (-0.5, 0.5): a mix of two
    neighbours, the edges repeated (PyTorch clamps the source index there).
    """
    n = x.shape[dim]
    padded = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim)   # padded[k] = x[clamp(k - 1)]
    phases = []
    for r in range(s):
        f = (r + 0.5) / s - 0.5
        left = 0 if f < 0 else 1            # padded index of the lower neighbour of output j: j + left
        w = f + 1 if f < 0 else f           # the upper neighbour's weight
        phases.append(padded.narrow(dim, left, n) * (1 - w) + padded.narrow(dim, left + 1, n) * w)
    out = torch.stack(phases, dim if dim >= 0 else dim + x.dim() + 1)   # (..., n, s, ...) -> n * s
    shape = list(x.shape)
    shape[dim] = n * s
    return out.reshape(shape)


def upsample_bilinear(x: torch.Tensor, s: int) -> torch.Tensor:
    """F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False) for an integer s >= 1.

    Compiled, Inductor lowers F.interpolate's backward to an index_put that accumulates with atomics: at 720p it
    took about a fifth of hinerv's training step on an H200 (results/train_profile_720p_2026-12-04/). The same
    function as shifted slices has a backward of slices and sums, which fuse into plain elementwise kernels. In
    eager mode F.interpolate's own kernels are the faster, and stay.
    """
    if s == 1:
        return x
    if not torch.compiler.is_compiling():
        return F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
    return _upsample_axis(_upsample_axis(x, s, -1), s, -2)


# Maps of at least this many pixels take the shifted-slice depthwise convolution in compiled training. On an H200
# (results/medium_new_default_gpu_2026-12-04/depthwise_speed/) slices beat cuDNN at 360x640 (1.27 against 1.67 ms)
# and 720x1280 (1.90 against 5.04) and lost at 180x320 (1.30-1.40 against 1.10-1.21): the threshold lies between.
SLICED_DEPTHWISE_MIN_PIXELS = 128 * 1024


def depthwise_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) for a depthwise convolution (groups = channels, odd kernel, zero padding kernel // 2, stride 1).

    Compiled, on large maps, as the sum of k*k shifted slices of the padded input times a weight per channel:
    cuDNN's depthwise weight gradient (`wgrad2d_c1_k1_nhwc`) was the largest kernel of hinerv's 720p training step
    on an H200 (18 %, results/train_profile_720p_2026-12-04/), and Inductor fuses the slices' backward into plain
    elementwise kernels and reductions. In eager mode, and on smaller maps, the library convolution is the faster.
    """
    h, w = x.shape[-2:]
    if not torch.compiler.is_compiling() or h * w < SLICED_DEPTHWISE_MIN_PIXELS:
        return conv(x)
    kind = x.device.type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype   # as conv2d computes
    return depthwise_by_slices(x.to(dtype), conv.weight.to(dtype), None if conv.bias is None else conv.bias.to(dtype))


def depthwise_by_slices(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=k // 2, groups=channels) (cross-correlation, zero padding) as a sum of k*k
    shifted slices of the padded input times a weight per channel; weight (C, 1, k, k), k odd."""
    h, w = x.shape[-2:]
    k = weight.shape[-1]
    padded = F.pad(x, (k // 2,) * 4)
    out = sum(padded[..., i:i + h, j:j + w] * weight[:, 0, i, j, None, None] for i in range(k) for j in range(k))
    return out if bias is None else out + bias[:, None, None]


class LayerNorm2d(nn.Module):
    """Channels-first LayerNorm (ConvNeXt)."""

    def __init__(self, ch: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))
        self.eps = eps

    def forward(self, x):
        if x.is_cuda and not torch.is_grad_enabled():
            # Decoding on a GPU: F.layer_norm's CUDA kernel gives each row (one pixel's few dozen channels) a
            # thread block and runs far below memory bandwidth; a fused kernel (`channel_norm`) reads and
            # writes the tensor once, and where Triton is missing, reductions over the channel axis still beat
            # F.layer_norm (benchmarks.network_speed). Training keeps F.layer_norm (compiled, or autocast's
            # fp32), and so do CPUs, where it is the faster.
            if channel_norm.usable(x) and not torch.compiler.is_compiling():    # (compiled: fused anyway)
                try:
                    return channel_norm.layer_norm(x, self.weight, self.bias, self.eps)
                except Exception as e:  # noqa: BLE001 - not retried (`channel_norm.usable`)
                    warnings.warn(f"fused LayerNorm kernel unavailable ({type(e).__name__}: {e}); "
                                  "using PyTorch reductions", RuntimeWarning, stacklevel=2)
            return layer_norm_by_reductions(x, self.weight, self.bias, self.eps)
        return layer_norm_by_kernel(x, self.weight, self.bias, self.eps)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, 4 * dim, 1)
        self.pw2 = nn.Conv2d(4 * dim, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x):
        return x + self.gamma * self.pw2(F.gelu(self.pw1(self.norm(self.dwconv(x)))))


class ConvNeXtEncoder(nn.Module):
    """Stages of (stride-s conv, LayerNorm, ConvNeXt block), then a 1x1 conv to `out_ch` channels."""

    def __init__(self, in_ch: int, strides, dim: int, out_ch: int):
        super().__init__()
        layers = []
        for i, s in enumerate(strides):
            layers += [nn.Conv2d(in_ch if i == 0 else dim, dim, s, stride=s), LayerNorm2d(dim), ConvNeXtBlock(dim)]
        self.stages = nn.Sequential(*layers)
        self.proj = nn.Conv2d(dim, out_ch, 1)

    def forward(self, x):
        return self.proj(self.stages(x))


def factor_stride(total: int, largest: int = 5) -> list[int]:
    """Split a downsampling factor into encoder stages, largest first (cheap at full resolution)."""
    out, rest = [], total
    while rest > 1:
        for f in range(largest, 1, -1):
            if rest % f == 0:
                out.append(f)
                rest //= f
                break
        else:
            out.append(rest)  # a prime above `largest`: one stage
            break
    return out or [1]
