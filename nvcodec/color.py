"""The sample format a video is coded in, and the colour description its source declares.

`Color.planes` is what the network reproduces: "rgb" (three full planes, the source converted to RGB) or
"yuv420" (the source's own 4:2:0 planes: Y at full resolution, U and V at half in each direction). The
matrix, range, primaries and transfer are the source's (AVCOL_* numbers, as FFmpeg stores them), kept so that
decoding writes them back into the output's metadata and converts to RGB exactly as the source would be.

In memory, frames of either format are (H, W, 3) uint8 arrays, so that cropping, padding and batching are the
same code for both: RGB, or Y, U, V where U and V are read at their samples only, the even rows and columns
(`chroma_planes`; odd sizes included: the last row and column of a chroma plane cover one luma row or column).
Frames read from a source have each chroma sample repeated over its 2x2 block (`replicate`); decoded frames
leave the other positions as the network gives them (`fill_chroma` repeats the samples where a whole array is
wanted).

Every model's network ends in a conv to three planes and a sigmoid at full resolution: for 4:2:0 its first
output is Y and the other two, taken at the chroma samples (as a stride-2 conv would give them), are U and V at
half resolution. Nothing else in a model depends on the format, and computing the chroma outputs everywhere
costs less than a second, strided pass (the head reads its input once: on the CPU at 1280x720, 0.30 s for
two frames against 0.50 s for a luma conv plus a stride-2 chroma conv).

In the file, a COLOR section (5 bytes, `pack` / `unpack`) holds the format; a file without one (every file
written before it existed) is RGB with nothing declared: `RGB`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

PLANES = ("rgb", "yuv420")
# AVCOL_* "unspecified" values: what a file without a COLOR section declares.
UNSPECIFIED_MATRIX, UNSPECIFIED_RANGE, UNSPECIFIED_PRIMARIES, UNSPECIFIED_TRC = 2, 0, 2, 2
RANGE_TV, RANGE_PC = 1, 2
# The largest AVCOL values FFmpeg defines (matrix, range, primaries, transfer): anything above is a damaged file.
_MAX_CODES = (17, 2, 22, 18)
# Weights of Y, U, V in the YUV PSNR and the default training loss: the video coding community's 6:1:1.
YUV_WEIGHTS = (6.0, 1.0, 1.0)


class ColorError(ValueError):
    """A COLOR section that cannot be read: one line saying why."""


@dataclass(frozen=True)
class Color:
    planes: str = "rgb"                         # PLANES
    matrix: int = UNSPECIFIED_MATRIX            # AVColorSpace: 1 BT.709, 5/6 BT.601, 9 BT.2020 ...
    range: int = UNSPECIFIED_RANGE              # AVColorRange: 1 limited (tv), 2 full (pc)
    primaries: int = UNSPECIFIED_PRIMARIES      # AVColorPrimaries
    trc: int = UNSPECIFIED_TRC                  # AVColorTransferCharacteristic

    def __post_init__(self):
        if self.planes not in PLANES:
            raise ColorError(f"unknown sample format {self.planes!r} (choose {' or '.join(PLANES)})")
        codes = (self.matrix, self.range, self.primaries, self.trc)
        if any(not (0 <= c <= top) for c, top in zip(codes, _MAX_CODES)):
            raise ColorError("colour description out of range")

    @property
    def yuv(self) -> bool:
        return self.planes == "yuv420"

    @property
    def full_range(self) -> bool:
        return self.range == RANGE_PC

    def describe(self) -> str:
        """How `dnv info` and the logs name it, e.g. 'yuv420 (BT.709, limited range)', 'rgb (source: BT.601,
        limited range)', 'rgb' (nothing declared: every file before the COLOR section)."""
        if self == RGB:
            return "rgb"
        matrix = MATRIX_NAMES.get(self.matrix, f"matrix {self.matrix}")
        range_ = {RANGE_TV: "limited range", RANGE_PC: "full range"}.get(self.range, "range unspecified")
        return f"{self.planes} ({'source: ' if self.planes == 'rgb' else ''}{matrix}, {range_})"


RGB = Color()
MATRIX_NAMES = {0: "RGB", 1: "BT.709", 2: "unspecified matrix", 4: "FCC", 5: "BT.601", 6: "BT.601",
                7: "SMPTE 240M", 9: "BT.2020", 10: "BT.2020 (CL)"}

_SECTION = struct.Struct("<BBBBB")      # planes, matrix, range, primaries, trc


def pack(color: Color) -> bytes:
    return _SECTION.pack(PLANES.index(color.planes), color.matrix, color.range, color.primaries, color.trc)


def unpack(data: bytes) -> Color:
    if len(data) != _SECTION.size:
        raise ColorError(f"COLOR section has {len(data)} bytes, expected {_SECTION.size}")
    planes, *codes = _SECTION.unpack(data)
    if planes >= len(PLANES):
        raise ColorError(f"unknown sample format {planes} in the COLOR section")
    return Color(PLANES[planes], *codes)


# --- replicated 4:2:0 frames ------------------------------------------------------------------------------

def replicate(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Y (H, W) and U, V (ceil(H/2), ceil(W/2)) uint8 planes -> (H, W, 3): chroma repeated over 2x2 blocks."""
    h, w = y.shape
    out = np.empty((h, w, 3), np.uint8)
    out[..., 0] = y
    for c, plane in ((1, u), (2, v)):
        full = np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)
        out[..., c] = full[:h, :w]
    return out


def fill_chroma(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) 4:2:0 frames with each chroma sample repeated over its 2x2 block (a new array)."""
    h, w = frames.shape[-3:-1]
    out = frames.copy()
    for c in (1, 2):
        full = np.repeat(np.repeat(frames[..., ::2, ::2, c], 2, axis=-2), 2, axis=-1)
        out[..., c] = full[..., :h, :w]
    return out


def chroma_planes(frames):
    """(..., H, W, 3) 4:2:0 frames -> (Y (..., H, W), U, V (..., ceil(H/2), ceil(W/2))), views."""
    return frames[..., 0], frames[..., ::2, ::2, 1], frames[..., ::2, ::2, 2]


def plane_views(x: torch.Tensor, planes: str) -> list[torch.Tensor]:
    """(B, 3, H, W) frames -> the coded planes as (B, 1, h, w) views: R, G, B, or Y and U, V at their samples."""
    if planes == "rgb":
        return [x[:, i:i + 1] for i in range(3)]
    return [x[:, 0:1], x[:, 1:2, ::2, ::2], x[:, 2:3, ::2, ::2]]


# --- YUV PSNR ---------------------------------------------------------------------------------------------

def plane_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR (peak 255) of uint8 planes (T, h, w), computed exactly; float64, capped at 100 dB."""
    d = a.int() - b.int()
    mse = d.square().flatten(1).sum(1, dtype=torch.int64).double() / (d[0].numel() * 255.0 ** 2)
    return (-10.0 * torch.log10(mse.clamp_min(1e-12))).clamp_max(100.0)


def psnr_yuv(a, b, weights=YUV_WEIGHTS) -> torch.Tensor:
    """Per-frame YUV 4:2:0 PSNR, the planes' PSNRs weighted (6:1:1 by default), of two (T, H, W, 3) uint8
    clips of 4:2:0 frames (numpy or tensors; the chroma is compared at its own samples)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    per_plane = [plane_psnr(x, y) for x, y in zip(chroma_planes(a), chroma_planes(b))]
    return sum(w * p for w, p in zip(weights, per_plane)) / sum(weights)
