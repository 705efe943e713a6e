"""Quality and rate measures, with the conventions of DESIGN.md.

- PSNR: RGB, computed per frame over the whole frame at the original size, then averaged over frames
  (the NeRV papers' convention).
- YUV PSNR: 4:2:0 planes, 6:1:1 weighted (video coding community's figure). `Tally` (what dnv reports) compares
  the source's own planes (`nvcodec.color.psnr_yuv`); `psnr_yuv420` (the benchmarks' anchors) converts RGB to
  BT.709/601 limited-range planes.
- MS-SSIM: pytorch-msssim on RGB in [0, 1]; frames smaller than its 5-scale minimum use fewer scales.
- bpp: file bytes * 8 / (width * height * frames) at the original size.
"""
from __future__ import annotations


import numpy as np
import torch


def bpp(num_bytes: int, width: int, height: int, frames: int) -> float:
    return num_bytes * 8.0 / (width * height * frames)


BATCH = 16      # frames per step: memory stays flat whatever the clip's length


def _as_tensor(frames) -> torch.Tensor:
    if isinstance(frames, np.ndarray):
        return torch.from_numpy(frames if frames.flags.writeable else frames.copy())
    return frames


def _as_float_frames(frames) -> torch.Tensor:
    """(T,H,W,3) uint8 numpy or tensor, or (T,3,H,W) float tensor in [0,1] -> (T,3,H,W) float32 in [0,1]."""
    frames = _as_tensor(frames)
    if frames.dtype == torch.uint8:
        return frames.permute(0, 3, 1, 2).float() / 255.0
    return frames.float()


def _batches(a, b, batch: int, device):
    """Aligned slices of two clips of the same shape, moved to `device` (uint8 stays uint8 on the way)."""
    x_all, y_all = _as_tensor(a), _as_tensor(b)
    if x_all.shape != y_all.shape:
        raise ValueError(f"shape mismatch: {tuple(x_all.shape)} vs {tuple(y_all.shape)}")
    for i in range(0, x_all.shape[0], batch):
        yield x_all[i:i + batch].to(device), y_all[i:i + batch].to(device)


def frame_mse(a, b, device=None, batch: int = 4) -> torch.Tensor:
    """Per-frame MSE on the [0,1] scale between two clips of the same shape (float64, on the CPU).

    uint8 frames are compared exactly (integer sums), so the figure does not depend on the device.
    """
    out = []
    for x, y in _batches(a, b, batch, device):
        if x.dtype == torch.uint8 and y.dtype == torch.uint8:
            d = x.int().sub_(y).square_()      # exact; a few frames at a time keeps the int copies small
            sums = d.flatten(1).sum(1, dtype=torch.int64)
            out.append(sums.cpu().double() / (d[0].numel() * 255.0 ** 2))
        else:
            x, y = _as_float_frames(x), _as_float_frames(y)
            out.append(((x.double() - y.double()) ** 2).flatten(1).mean(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def psnr_per_frame(a, b, device=None) -> list[float]:
    """RGB PSNR in dB of each frame (peak 1.0 on the [0,1] scale; 100 dB caps identical frames)."""
    return [min(100.0, float(p)) for p in psnr_from_mse(frame_mse(a, b, device))]


def psnr(a, b, device=None) -> float:
    """Mean over frames of the per-frame RGB PSNR."""
    values = psnr_per_frame(a, b, device)
    return float(sum(values) / len(values))


def ms_ssim(a, b, device=None, batch: int = BATCH) -> float:
    """Mean MS-SSIM over frames (pytorch-msssim, 5 scales, 11-tap window), computed on `device`.

    pytorch-msssim needs min(H, W) > (win - 1) * 16; smaller frames get a narrower window, and frames
    under 48 pixels fall back to single-scale SSIM (stated here because the number is then not
    comparable with published MS-SSIM figures). On a GPU, TF32 is turned off for its convolutions,
    so the figure agrees with the CPU's.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim, ssim as _ssim

    total, count = 0.0, 0
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
        for x, y in _batches(a, b, batch, device):
            x, y = _as_float_frames(x), _as_float_frames(y)
            if min(x.shape[-2:]) == 1:
                # pytorch-msssim squeezes 1-pixel dimensions away; with the 1-tap window such frames
                # get, doubling them leaves the mean SSIM unchanged.
                reps = (1, 1, 2 if x.shape[-2] == 1 else 1, 2 if x.shape[-1] == 1 else 1)
                x, y = x.repeat(reps), y.repeat(reps)
            side = min(x.shape[-2:])
            win = 11
            while win > 3 and side <= (win - 1) * 16:
                win -= 2
            if side > (win - 1) * 16:
                v = _ms_ssim(x, y, data_range=1.0, size_average=False, win_size=win)
            else:
                v = _ssim(x, y, data_range=1.0, size_average=False, win_size=min(win, (side // 2) * 2 - 1))
            total += float(v.double().sum())
            count += x.shape[0]
    return total / count


class Tally:
    """Per-frame PSNR (RGB and YUV 4:2:0, 6:1:1) and mean MS-SSIM (RGB) of a clip compared batch by batch, as
    it is decoded. The decoded frames are in the sample format of `color`, the reference in that of `ref_color`
    (default: the same; `nvcodec.color`). 4:2:0 planes are compared as they are for the YUV PSNR, and converted to
    RGB with their matrix and range (as the source's own frames are when read as RGB) for the RGB figures; RGB
    frames are converted to 4:2:0 planes in the reference's matrix and range for the YUV PSNR (exact against a
    4:2:0 reference; against an RGB one, both sides are converted)."""

    def __init__(self, device=None, color=None, ref_color=None):
        from .color import RGB

        self.device, self.psnr, self.psnr_yuv, self.ssim_sum = device, [], [], 0.0
        self.color = color or RGB
        self.ref_color = ref_color or self.color

    def add(self, out, ref) -> None:
        from .color import psnr_yuv
        from .video import rgb_to_yuv, yuv_to_rgb

        out, ref = np.asarray(out), np.asarray(ref)
        yuv_out = out if self.color.yuv else rgb_to_yuv(out, self.ref_color)
        yuv_ref = ref if self.ref_color.yuv else rgb_to_yuv(ref, self.ref_color)
        self.psnr_yuv += [min(100.0, float(p)) for p in psnr_yuv(yuv_out, yuv_ref)]
        out = yuv_to_rgb(out, self.color) if self.color.yuv else out
        ref = yuv_to_rgb(ref, self.ref_color) if self.ref_color.yuv else ref
        out, ref = _as_tensor(out).to(self.device), _as_tensor(ref).to(self.device)    # one copy for both
        self.psnr += psnr_per_frame(out, ref, self.device)
        self.ssim_sum += ms_ssim(out, ref, self.device) * len(out)

    @property
    def frames(self) -> int:
        return len(self.psnr)

    def result(self) -> tuple[float, float]:
        """(mean PSNR, mean MS-SSIM)."""
        return sum(self.psnr) / len(self.psnr), self.ssim_sum / len(self.psnr)

    def yuv_result(self) -> float:
        """Mean YUV 4:2:0 PSNR (6:1:1)."""
        return sum(self.psnr_yuv) / len(self.psnr_yuv)


_YUV_MATRICES = {
    # (Kr, Kb)
    "bt709": (0.2126, 0.0722),
    "bt601": (0.299, 0.114),
}


def rgb_to_yuv420(frames: np.ndarray, matrix: str = "bt709") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T,H,W,3) uint8 RGB -> limited-range float Y (T,H,W), U, V (T,ceil(H/2),ceil(W/2)) in 8-bit units."""
    kr, kb = _YUV_MATRICES[matrix]
    rgb = frames.astype(np.float64) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1 - kr - kb) * g + kb * b
    u = (b - y) / (2 * (1 - kb))
    v = (r - y) / (2 * (1 - kr))
    y8 = 16 + 219 * y
    u8, v8 = 128 + 224 * u, 128 + 224 * v

    def down(c):
        t, h, w = c.shape
        c = np.pad(c, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
        return c.reshape(t, (h + 1) // 2, 2, (w + 1) // 2, 2).mean(axis=(2, 4))

    return y8, down(u8), down(v8)


def psnr_yuv420(a: np.ndarray, b: np.ndarray, matrix: str = "bt709") -> float:
    """6:1:1 weighted YUV 4:2:0 PSNR (per frame, averaged), both clips given as (T,H,W,3) uint8 RGB."""
    pa, pb = rgb_to_yuv420(a, matrix), rgb_to_yuv420(b, matrix)
    per_plane = []
    for x, y in zip(pa, pb):
        mse = ((x - y) ** 2).reshape(x.shape[0], -1).mean(1)
        per_plane.append(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)))
    weighted = (6 * per_plane[0] + per_plane[1] + per_plane[2]) / 8
    return float(np.minimum(weighted, 100.0).mean())
