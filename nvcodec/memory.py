"""Memory: what a job may use, and what decoding a frame needs.

Used to size batches and to refuse with one line what cannot fit, instead of dying in the allocator:
a header can declare a 16384x16384 frame in a few kilobytes, and a real 4K file needs gigabytes a
frame on a CPU.
"""
from __future__ import annotations

import math

import torch

from .models import Arch

# Peak memory of a decoder forward / the sum of its layers' outputs, measured on CPU (0.7-1.2 for
# 176x144 .. 3840x2160 models, conv workspaces included), with a margin.
DECODE_PEAK_FACTOR = 1.5


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def available_bytes(device: torch.device) -> float:
    """Memory this process can still allocate on `device` (math.inf where it cannot be told)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    room = math.inf
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    room = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/status") as f:
                used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            room = min(room, soft - used)
    except (ImportError, OSError, ValueError, StopIteration):
        pass
    return max(room, 0)


def decoder_input_shapes_example(arch: Arch):
    """Empty tensors shaped like one frame's decoder inputs (`arch.sections` order), on the current device."""
    return [torch.empty(1, *shape[1:]) for shape in arch.section_shapes(1).values()]


def decode_bytes_per_frame(arch: Arch) -> int:
    """Peak float32 memory of decoding one frame: the sum of every layer's output (`flops.frame_cost`), with a
    margin."""
    from .flops import frame_cost
    return int(DECODE_PEAK_FACTOR * 4 * frame_cost(arch)[0])
