"""The decoder's architecture: everything needed to rebuild the network, stored in the file header.

Geometry: frames are padded (bottom/right, edge-replicated) to a multiple of the total stride S,
decoded at that size and cropped back. The content embedding is `emb_ch x (pad_h/S) x (pad_w/S)`
per frame; the diff embedding is `diff_ch x (pad_h/D) x (pad_w/D)` with D = diff_up * (product of
the strides after the fusion stage), so the diff branch meets the content path right after stage
`fuse_stage`, where the CCU fuses them (DNeRV paper Eq. 5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MODEL_IDS = {"hnerv": 0, "dnerv": 1}


class ArchError(ValueError):
    pass


def reduced_widths(stem: int, stages: int, reduce: float = 1.2, lower: int = 4) -> list[int]:
    """Stem width, then each stage's output width divided by `reduce` (authors' `round(ngf // 1.2)`)."""
    widths = [stem]
    for _ in range(stages):
        widths.append(max(lower, int(round(widths[-1] // reduce))))
    return widths


@dataclass(frozen=True)
class Arch:
    model: str                      # "dnerv" or "hnerv"
    width: int                      # the video's own size
    height: int
    strides: tuple[int, ...]        # decoder stage upsampling factors, first stage first
    widths: tuple[int, ...]         # stem output, then each stage's output (len(strides) + 1)
    kernels: tuple[int, ...]        # conv kernel of each stage
    emb_ch: int = 16                # content embedding channels
    diff_ch: int = 2                # diff embedding channels
    fuse_stage: int = 2             # CCU after this stage (0-based): the paper fuses after stage 3
    diff_up: int = 4                # upsampling of the diff branch's NeRV block
    diff_kernel: int = 3
    ccu_kernel: int = 3
    head_kernel: int = 3
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        n = len(self.strides)
        if self.model not in MODEL_IDS:
            raise ArchError(f"unknown model {self.model!r}")
        if not (1 <= n <= 8) or len(self.kernels) != n or len(self.widths) != n + 1:
            raise ArchError("inconsistent stage lists")
        if (any(not (1 <= s <= 8) for s in self.strides) or any(k not in (1, 3, 5, 7) for k in self.kernels)
                or self.head_kernel not in (1, 3, 5, 7)):
            raise ArchError("stride or kernel out of range")
        if any(not (1 <= w <= 4096) for w in self.widths) or not (1 <= self.emb_ch <= 256):
            raise ArchError("channel width out of range")
        if not (1 <= self.width <= 16384 and 1 <= self.height <= 16384):
            raise ArchError("frame size out of range")
        if self.has_diff:
            if not (0 <= self.fuse_stage < n) or not (1 <= self.diff_up <= 8) or not (1 <= self.diff_ch <= 64):
                raise ArchError("bad diff-branch settings")
            if math.prod(self.strides[: self.fuse_stage + 1]) % self.diff_up:
                raise ArchError("diff upsampling must divide the strides before the fusion")
            if self.diff_kernel not in (1, 3, 5) or self.ccu_kernel not in (1, 3, 5):
                raise ArchError("diff or CCU kernel out of range")

    @property
    def has_diff(self) -> bool:
        return self.model == "dnerv"

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def diff_stride(self) -> int:
        return self.diff_up * math.prod(self.strides[self.fuse_stage + 1:])

    @property
    def padded_size(self) -> tuple[int, int]:
        s = self.total_stride
        return -(-self.height // s) * s, -(-self.width // s) * s

    @property
    def content_shape(self) -> tuple[int, int, int]:
        ph, pw = self.padded_size
        s = self.total_stride
        return self.emb_ch, ph // s, pw // s

    @property
    def diff_shape(self) -> tuple[int, int, int]:
        ph, pw = self.padded_size
        d = self.diff_stride
        return self.diff_ch, ph // d, pw // d

    def values_per_frame(self) -> int:
        c = math.prod(self.content_shape)
        return c + (math.prod(self.diff_shape) if self.has_diff else 0)
