"""From .dnv bytes to frames. Imports no training code: a decoder needs only the file.

`load` validates the container, rebuilds the decoder from the header's architecture and the
dequantized weights, and dequantizes the embeddings. `render` runs the network in batches on the
device and yields uint8 RGB frames cropped back to the video's own size. Both check what they are
about to allocate against the memory available and refuse with one line what cannot fit; `render`
lowers its batch to what fits (and halves it again if the GPU still runs out), and limits cuDNN to
deterministic algorithms so that a file decodes to the same frames on every run.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from . import bitstream, memory
from .bitstream import BitstreamError, Header
from .compress import pack
from .models import Decoder


@dataclass
class Loaded:
    header: Header
    decoder: Decoder
    content: torch.Tensor
    diff: torch.Tensor | None
    file_bytes: int


def load(data: bytes, device: torch.device) -> Loaded:
    header, sections = bitstream.unpack(data)
    arch = header.arch
    # Bound the work a header can ask for before allocating anything it describes.
    values = header.frames * arch.values_per_frame()
    if values > 64 * len(data) * 8 + 1024:
        raise BitstreamError("header asks for more embedding values than the file can hold")
    for name in ("DECODER", "CONTENT") + (("DIFF",) if arch.has_diff else ()):
        if name not in sections:
            raise BitstreamError(f"file has no {name} section")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Decoder(arch).state_dict().items()}
    if sum(math.prod(s) for s in shapes.values()) > 64 * len(data) * 8 + 1024:
        raise BitstreamError("header describes a network larger than the file can hold")
    # Entropy decoding, delta decoding and dequantizing take about 16 bytes a value at their peak.
    _require(16 * values + 32 * sum(math.prod(s) for s in shapes.values()), torch.device("cpu"),
             "loading this file")
    state = pack.unpack_weights(sections["DECODER"], shapes)
    decoder = Decoder(arch)
    decoder.load_state_dict(state)
    decoder.to(device).eval()
    content = pack.unpack_embedding(sections["CONTENT"], (header.frames, *arch.content_shape), "CONTENT")
    diff = (pack.unpack_embedding(sections["DIFF"], (header.frames, *arch.diff_shape), "DIFF")
            if arch.has_diff else None)
    return Loaded(header, decoder, content, diff, len(data))


def _require(nbytes: float, device: torch.device, what: str) -> float:
    """The memory usable on `device` (80 % of what is free); BitstreamError if `nbytes` is more."""
    room = 0.8 * memory.available_bytes(device)
    if nbytes > room:
        hint = "; try --device cpu" if device.type == "cuda" else ""
        raise BitstreamError(f"{what} needs {memory.gib(nbytes)} of memory, {device.type} has "
                             f"{memory.gib(room)} free{hint}")
    return room


def _deterministic(device: torch.device):
    """cuDNN limited to deterministic algorithms (the same frames on every run); nothing on a CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=False, deterministic=True, allow_tf32=cudnn.allow_tf32)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8, rounding to nearest."""
    return frames.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@torch.no_grad()
def render(loaded: Loaded, device: torch.device, batch: int = 8, frames: range | None = None,
           timings: dict | None = None, precision: str = "fp32") -> Iterator[np.ndarray]:
    """Yield (B, H, W, 3) uint8 batches of decoded frames; adds 'neural_seconds' to `timings`.

    fp32 is the default and what encode measures; bf16 runs the network under autocast (faster on
    GPUs, within a few hundredths of a dB, see benchmarks/results/speed.md).
    """
    arch = loaded.header.arch
    dtype = PRECISIONS[precision]
    frames = frames if frames is not None else range(loaded.header.frames)
    per_frame = memory.decode_bytes_per_frame(arch)
    room = _require(per_frame, device, f"decoding one {arch.width}x{arch.height} frame")
    batch = max(1, min(batch, int(room // per_frame)))
    neural, i = 0.0, 0
    while i < len(frames):
        idx = torch.as_tensor(frames[i:i + batch], dtype=torch.long)
        content = loaded.content[idx].to(device, non_blocking=True)
        diff = loaded.diff[idx].to(device, non_blocking=True) if loaded.diff is not None else None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        try:
            with _deterministic(device), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                        enabled=dtype is not None):
                out = to_uint8(loaded.decoder(content, diff)[..., : arch.height, : arch.width])
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            out = None          # (the estimate was short: retry with half the batch, out of the except block)
        if out is None:
            batch //= 2
            torch.cuda.empty_cache()
            continue
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        neural += time.perf_counter() - start
        i += len(idx)
        yield out.cpu().numpy()
    if timings is not None:
        timings["neural_seconds"] = timings.get("neural_seconds", 0.0) + neural
