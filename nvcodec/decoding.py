"""From .dnv bytes to frames. Imports no training code: a decoder needs only the file.

`load` validates the container, rebuilds the decoder from the header's architecture and the
dequantized weights, and dequantizes the input tables (CONTENT/DIFF embeddings, or DS-NeRV's
STATIC/DYNAMIC codes). `render` runs the network in batches on the device and yields uint8 frames in
the file's sample format (RGB or replicated YUV 4:2:0, `nvcodec.color`) cropped back to the video's own size. Both check what they are about to allocate against
the memory available and refuse with one line what cannot fit; `render` lowers its batch to what
fits (and halves it again if the GPU still runs out), and limits cuDNN to deterministic algorithms
so that a file decodes to the same frames on every run.

Frame interpolation: `render(..., times=output_times(T, K))` evaluates the decoder at fractional
times t = i/K, i = 0 .. K*(T-1), i.e. K*T - (K-1) frames from the first coded frame to the last: the
tables are linearly interpolated at t (`models.dsnerv.interpolate`), which at integer t gives each
frame's own inputs exactly.
"""
from __future__ import annotations

import contextlib
import copy
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
from .models.dsnerv import decoder_inputs

MAX_FPS_SCALE = 64


@dataclass
class Loaded:
    header: Header
    decoder: torch.nn.Module
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
    # Entropy decoding, delta decoding and dequantizing take about 16 bytes a value at their peak.
    _require(16 * values + 32 * sum(math.prod(s) for s in shapes.values()), torch.device("cpu"),
             "loading this file")
    state = pack.unpack_weights(sections["DECODER"], shapes)
    with torch.device("meta"):      # no random initialisation of weights that the file's replace
        decoder = Decoder(arch)
    decoder.load_state_dict(state, assign=True)
    decoder.to(device).eval()
    tables = {name: pack.unpack_embedding(sections[name], shape, name)
              for name, shape in arch.section_shapes(header.frames).items()}
    return Loaded(header, decoder, tables, len(data))


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


def _quantize(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> uint8, rounding to nearest."""
    return frames.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8, rounding to nearest; contiguous on a GPU, where the
    transpose is free (on the host it would cost the writer about 2.5 ms per 1280x720 frame)."""
    out = _quantize(frames).permute(0, 2, 3, 1)
    return out if out.device.type == "cpu" else out.contiguous()


def to_yuv420p(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) 4:2:0 planes in [0, 1], H and W even -> (B, 3H/2, W) uint8 in yuv420p's layout (Y, then U,
    then V, each plane's rows back to back): what a video encoder takes as it is, half the bytes of (B, H, W, 3)."""
    b, _, h, w = frames.shape
    q = _quantize(frames)
    planes = [q[:, 0].reshape(b, -1), q[:, 1, ::2, ::2].reshape(b, -1), q[:, 2, ::2, ::2].reshape(b, -1)]
    return torch.cat(planes, dim=1).view(b, h * 3 // 2, w)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
# Frames per decoder call unless told (either is lowered to what the device's memory holds):
# - on a GPU, enough to keep it busy and the writer fed: at 720p hinerv to .mp4 on an H200, 32 frames a call beat
#   16 and 8 (benchmarks/results/decode_speed);
# - on a CPU, up to 8, fewer for large frames: in channels-last fp32 on 2 cores, one 1280x720 frame a call ran
#   1.4 to 1.5x faster than 8 (dnerv, hinerv), while at 176x144 8 a call ran 1.36x as fast as one (hinerv)
#   (benchmarks/results/decode_speed/cpu_channels_last_2026-12-03).
GPU_BATCH = 32
CPU_BATCH, CPU_BATCH_BYTES = 8, 256 * 2**20


def default_batch(device: torch.device, frame_bytes: int) -> int:
    """Frames a call for a decoder needing `frame_bytes` a frame (`memory.decode_bytes_per_frame`)."""
    if device.type == "cuda":
        return GPU_BATCH
    return max(1, min(CPU_BATCH, CPU_BATCH_BYTES // max(frame_bytes, 1)))


def _for_precision(decoder: torch.nn.Module, device: torch.device, dtype: torch.dtype | None):
    """The decoder and a function for its inputs (None: fp32). Channels-last layout, on a copy of the network,
    where it was measured faster:
    - bf16 on a GPU: the network cast to bf16 once, rather than autocast, which converts every weight at every
      call and keeps LayerNorm in fp32 (1.35x the frames/s on an H200, benchmarks.network_speed);
    - fp32 on a CPU: 1.65 to 1.8x the frames/s of NCHW at 1280x720 on 2 cores, one frame a call (hinerv, dnerv).
    fp32 on a GPU stays NCHW as loaded (not measured channels-last), and bf16 on a CPU stays autocast."""
    if dtype is not None and device.type == "cuda":
        layout_dtype = dict(dtype=dtype)
    elif dtype is None and device.type == "cpu":
        layout_dtype = {}
    else:
        return decoder, lambda x: x
    fast = copy.deepcopy(decoder).to(memory_format=torch.channels_last, **layout_dtype)

    def cast(x: torch.Tensor) -> torch.Tensor:
        x = x.to(**layout_dtype)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    return fast, cast


class _Clock:
    """The network's own time over batches: CUDA events on a GPU (no synchronising between batches, so the next
    batch is queued while the last is copied out), the wall clock on a CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.seconds = 0.0
        self._spans: list = []

    def start(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))   # the decoding device's, not the current one's
            return event
        return time.perf_counter()

    def stop(self, started) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._spans.append((started, event))
        else:
            self.seconds += time.perf_counter() - started

    def total(self) -> float:
        """Seconds so far (on a GPU, after waiting for the batches queued)."""
        for started, stopped in self._spans:
            stopped.synchronize()
            self.seconds += started.elapsed_time(stopped) / 1000
        self._spans.clear()
        return self.seconds


class _Pending:
    """One batch's frames on their way to the host: on a GPU into pinned memory, asynchronously."""

    def __init__(self, out: torch.Tensor):
        if out.device.type == "cuda":
            self.host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            self.host.copy_(out, non_blocking=True)
            self.done = torch.cuda.Event()
            self.done.record(torch.cuda.current_stream(out.device))   # where the copy was queued
        else:
            self.host, self.done = out, None

    def numpy(self) -> np.ndarray:
        if self.done is not None:
            self.done.synchronize()
        # The array keeps the pinned block alive: the allocator reuses it only once the array is gone.
        return self.host.numpy()


@torch.no_grad()
def render(loaded: Loaded, device: torch.device, batch: int | None = None, frames: range | None = None,
           timings: dict | None = None, times: torch.Tensor | None = None,
           precision: str = "fp32", packed: bool = False) -> Iterator[np.ndarray]:
    """Yield (B, H, W, 3) uint8 batches of decoded frames (in the file's sample format, `arch.color`), or with
    `packed` (4:2:0 files of even size) (B, 3H/2, W) batches in yuv420p's layout (`to_yuv420p`); adds
    'neural_seconds' (the network's own time) to `timings`, the time spent planning the batch to
    'load_seconds', and the frames a call it ran with to 'batch'.

    On a GPU the batches are pipelined: each batch is copied out asynchronously into pinned memory, and it is
    yielded only once the next batch is queued on the GPU, so the caller's work on a batch (writing it) overlaps
    the network's on the next.

    `batch`: frames per call (default `default_batch`); `frames`: which coded frames (default all); `times`:
    fractional frame times instead (see `output_times`). fp32 is the default and what encode measures; bf16 is
    faster on GPUs, within a few hundredths of a dB (`_for_precision`, benchmarks/results/decode_speed).
    """
    arch = loaded.header.arch
    if packed and (not arch.color.yuv or arch.width % 2 or arch.height % 2):
        raise ValueError("packed 4:2:0 output needs a 4:2:0 file of even width and height")
    dtype = PRECISIONS[precision]
    if times is None:
        times = torch.as_tensor(frames if frames is not None else range(loaded.header.frames), dtype=torch.float64)
    planning = time.perf_counter()
    per_frame = memory.decode_bytes_per_frame(arch)
    room = _require(per_frame, device, f"decoding one {arch.width}x{arch.height} frame")
    batch = max(1, min(batch or default_batch(device, per_frame), int(room // per_frame)))
    if timings is not None:
        timings["load_seconds"] = timings.get("load_seconds", 0.0) + time.perf_counter() - planning
    decoder, cast = _for_precision(loaded.decoder, device, dtype)
    clock, pending, i = _Clock(device), None, 0
    while i < len(times):
        inputs = [cast(x.to(device, non_blocking=True))
                  for x in decoder_inputs(arch, loaded.tables, times[i:i + batch], loaded.header.frames)]
        started = clock.start()
        try:
            with _deterministic(device), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                        enabled=dtype is not None and device.type != "cuda"):
                out = (to_yuv420p if packed else to_uint8)(decoder(*inputs)[..., : arch.height, : arch.width])
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            out = None          # (the estimate was short: retry with half the batch, out of the except block)
        if out is None:
            batch //= 2
            torch.cuda.empty_cache()
            continue
        clock.stop(started)
        i += len(inputs[0])
        if pending is not None:
            yield pending.numpy()
        pending = _Pending(out)
    if pending is not None:
        yield pending.numpy()
    if timings is not None:
        timings["neural_seconds"] = timings.get("neural_seconds", 0.0) + clock.total()
        timings["batch"] = batch
