"""The decoder's architecture: everything needed to rebuild the network, stored in the file header.

Geometry: frames are padded (bottom/right, edge-replicated) to a multiple of the total stride S,
decoded at that size and cropped back. The content embedding is `emb_ch x (pad_h/S) x (pad_w/S)`
per frame; the diff embedding is `diff_ch x (pad_h/D) x (pad_w/D)` with D = diff_up * (product of
the strides after the fusion stage), so the diff branch meets the content path right after stage
`fuse_stage`, where the CCU fuses them (DNeRV paper Eq. 5).

DS-NeRV (`dsnerv`) has the same two-stream geometry with no encoders: `static_codes` learnable
static codes of `emb_ch x (pad_h/S) x (pad_w/S)` evenly spaced over the video, and `dynamic_codes`
learnable dynamic codes of `diff_ch x (pad_h/D) x (pad_w/D)` (one per frame, or fewer, evenly
spaced), fused by cross-channel attention (`heads` heads) after `fuse_stage` (see `dsnerv.py`).

Whatever the model, the per-video tensors stored next to the decoder are tables of codes evenly
spaced over the frame times [0, T-1] (`section_shapes`): CONTENT and DIFF hold one entry per frame,
STATIC and DYNAMIC fewer; the decoder's inputs at a time t are the tables linearly interpolated at t.
Which tables a model has, and what its own fields mean, its module says (`models.registry`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..color import RGB, Color
from .registry import spec_of


class ArchError(ValueError):
    pass


def entries_for(frames: int, every: int) -> int:
    """Number of table entries evenly spaced over `frames` frames, at most `every` frames apart."""
    return 1 + -(-(max(frames, 1) - 1) // every)


def reduced_widths(stem: int, stages: int, reduce: float = 1.2, lower: int = 4, align: int = 1) -> list[int]:
    """Stem width, then each stage's output width divided by `reduce` (authors' `round(ngf // 1.2)`).

    align > 1 rounds every width of at least `align` to the nearest multiple of it: GPU convolution
    kernels run faster on channel counts that are multiples of 8 (bf16 tensor cores)."""
    widths = [stem]
    for _ in range(stages):
        widths.append(max(lower, int(round(widths[-1] // reduce))))
    return [w if w < align else max(align, align * round(w / align)) for w in widths]


@dataclass(frozen=True)
class Arch:
    model: str                      # a registered model's name (models.registry)
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
    static_codes: int = 0           # DS-NeRV only: number of static codes (emb_ch channels each)
    dynamic_codes: int = 0          # DS-NeRV only: number of dynamic codes (diff_ch channels each)
    heads: int = 1                  # DS-NeRV only: heads of the cross-channel attention
    # HiNeRV-class (`hinerv`, `hinerv-diff`) only, see models/hinerv.py: blocks and MLP expansion of each stage;
    # channels and frames-per-entry of each level of the base feature grid; channels and frames-per-entry of the
    # local grids.
    depths: tuple[int, ...] = ()
    expansions: tuple[int, ...] = ()
    grid_ch: tuple[int, ...] = ()
    grid_every: tuple[int, ...] = ()
    local_ch: int = 0
    local_every: int = 1
    # The sample format the network's three outputs are (RGB or YUV 4:2:0 planes, `nvcodec.color`) and the
    # source's colour description; stored in the file's COLOR section, not in the header (files without one: RGB).
    color: Color = RGB
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        n = len(self.strides)
        spec = spec_of(self.model)
        if spec is None:
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
        if self.two_stream:
            if not (0 <= self.fuse_stage < n) or not (1 <= self.diff_up <= 8) or not (1 <= self.diff_ch <= 64):
                raise ArchError("bad diff-branch settings")
            if math.prod(self.strides[: self.fuse_stage + 1]) % self.diff_up:
                raise ArchError("diff upsampling must divide the strides before the fusion")
            if self.diff_kernel not in (1, 3, 5) or self.ccu_kernel not in (1, 3, 5):
                raise ArchError("diff or CCU kernel out of range")
        spec.validate(self)

    @property
    def has_diff(self) -> bool:
        """A diff embedding per frame (DNeRV)."""
        return "DIFF" in self.sections

    @property
    def two_stream(self) -> bool:
        """A second input branch fused after `fuse_stage` (DNeRV's diff, DS-NeRV's dynamic codes)."""
        return spec_of(self.model).two_stream

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

    @property
    def sections(self) -> tuple[str, ...]:
        """Names of the sections holding the decoder's input tables, first input first."""
        return tuple(self.section_shapes(1))

    def section_shapes(self, frames: int) -> dict[str, tuple[int, ...]]:
        """Shape of each input table: (entries, channels, h, w), entries evenly spaced over [0, frames-1]."""
        return spec_of(self.model).section_shapes(self, frames)

    def embedding_values(self, frames: int) -> int:
        """Number of values in all the input tables of a `frames`-frame video."""
        return sum(math.prod(s) for s in self.section_shapes(frames).values())
