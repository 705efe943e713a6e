"""From .dnv bytes to frames. Imports no training code: a decoder needs only the file.

`load` validates the container, rebuilds the decoder from the header's architecture and the
dequantized weights, and dequantizes the input tables (CONTENT/DIFF embeddings, or DS-NeRV's
STATIC/DYNAMIC codes). `render` runs the network in batches on the device and yields uint8 RGB
frames cropped back to the video's own size.

Frame interpolation: `render(..., times=output_times(T, K))` evaluates the decoder at fractional
times t = i/K, i = 0 .. K*(T-1), i.e. K*T - (K-1) frames from the first coded frame to the last: the
tables are linearly interpolated at t (`models.dsnerv.interpolate`), which at integer t gives each
frame's own inputs exactly.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from . import bitstream
from .bitstream import BitstreamError, Header
from .compress import pack
from .models import Decoder
from .models.dsnerv import decoder_inputs

MAX_FPS_SCALE = 64


@dataclass
class Loaded:
    header: Header
    decoder: Decoder
    tables: dict[str, torch.Tensor]     # by section name, in arch.sections order (CPU, float32)
    file_bytes: int

    @property
    def content(self) -> torch.Tensor | None:
        return self.tables.get("CONTENT")

    @property
    def diff(self) -> torch.Tensor | None:
        return self.tables.get("DIFF")


def output_times(frames: int, fps_scale: int = 1) -> torch.Tensor:
    """Times of the output frames at `fps_scale` x the frame rate: K*(T-1)+1 of them, from 0 to T-1."""
    if not (isinstance(fps_scale, int) and 1 <= fps_scale <= MAX_FPS_SCALE):
        raise ValueError(f"--fps-scale must be a whole number from 1 to {MAX_FPS_SCALE}")
    return torch.arange(fps_scale * (frames - 1) + 1, dtype=torch.float64) / fps_scale


def load(data: bytes, device: torch.device) -> Loaded:
    header, sections = bitstream.unpack(data)
    arch = header.arch
    # Bound the work a header can ask for before allocating anything it describes.
    values = arch.embedding_values(header.frames)
    if values > 64 * len(data) * 8 + 1024:
        raise BitstreamError("header asks for more embedding values than the file can hold")
    for name in ("DECODER",) + arch.sections:
        if name not in sections:
            raise BitstreamError(f"file has no {name} section")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Decoder(arch).state_dict().items()}
    if sum(math.prod(s) for s in shapes.values()) > 64 * len(data) * 8 + 1024:
        raise BitstreamError("header describes a network larger than the file can hold")
    state = pack.unpack_weights(sections["DECODER"], shapes)
    decoder = Decoder(arch)
    decoder.load_state_dict(state)
    decoder.to(device).eval()
    tables = {name: pack.unpack_embedding(sections[name], shape, name)
              for name, shape in arch.section_shapes(header.frames).items()}
    return Loaded(header, decoder, tables, len(data))


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8, rounding to nearest."""
    return frames.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1)


@torch.no_grad()
def render(loaded: Loaded, device: torch.device, batch: int = 8, frames: range | None = None,
           timings: dict | None = None, times: torch.Tensor | None = None) -> Iterator[np.ndarray]:
    """Yield (B, H, W, 3) uint8 batches of decoded frames; adds 'neural_seconds' to `timings`.

    `frames`: which coded frames (default all); `times`: fractional frame times instead (see `output_times`).
    """
    arch = loaded.header.arch
    if times is None:
        times = torch.as_tensor(frames if frames is not None else range(loaded.header.frames), dtype=torch.float64)
    neural = 0.0
    for i in range(0, len(times), batch):
        first, second = decoder_inputs(arch, loaded.tables, times[i:i + batch], loaded.header.frames)
        content = first.to(device, non_blocking=True)
        diff = second.to(device, non_blocking=True) if second is not None else None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = to_uint8(loaded.decoder(content, diff)[..., : arch.height, : arch.width])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        neural += time.perf_counter() - start
        yield out.cpu().numpy()
    if timings is not None:
        timings["neural_seconds"] = timings.get("neural_seconds", 0.0) + neural
