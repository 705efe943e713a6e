"""The Triton kernel of `channel_norm` (a module of its own: importing it imports Triton)."""
import triton
import triton.language as tl


@triton.jit
def norm_kernel(x_ptr, y_ptr, w_ptr, b_ptr, channels, positions, stride_b, stride_c, stride_s, eps,
                BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """LayerNorm over the channels of BLOCK_S positions of one frame (program ids: position block, frame), in
    fp32. x and y share their strides."""
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
