"""What the training loop does when a step or an epoch goes wrong.

- Divergence: an epoch whose loss is NaN/inf, or whose PSNR falls more than DIVERGENCE_DB below the best of
  its phase (a known failure of NeRV training), is undone: the last good state comes back, the learning rate
  is capped at half the highest rate of the failed epoch, and the log says so; after MAX_ROLLBACKS, a
  TrainingError. A cap, not a scale: once the schedule decays below it, training follows the schedule again,
  instead of running the whole rest of it at half rate.
- Out of memory: a step that runs out of device memory is retried at half the batch, and the log says so;
  at batch 1 a TrainingError names the memory needed.

Both act on a trainer (`fit.Trainer`): its position (`epoch`, `phase`, `batch`), its recovery state
(`rollbacks`, `lr_cap`: part of every checkpoint), `good` (the state at the end of the last good epoch),
`load_state`, `parameters` and `say`.
"""
from __future__ import annotations

import math
import re

import torch

from ..memory import available_bytes, decode_bytes_per_frame, gib
from .errors import TrainingError

DIVERGENCE_DB = 5.0       # an epoch this far below the best PSNR of its phase has diverged
MAX_ROLLBACKS = 4


def diverged(psnr: float, best: float) -> bool:
    """Whether an epoch's running PSNR says training has diverged, against the best epoch of its phase."""
    return not math.isfinite(psnr) or psnr < best - DIVERGENCE_DB


def roll_back(trainer, psnr: float, best: float, failed_lr: float) -> None:
    """Back to the last good epoch, with the learning rate capped at half of `failed_lr` (the highest rate of
    the failed epoch) from then on; TrainingError after MAX_ROLLBACKS."""
    failed = trainer.epoch + 1
    rollbacks, cap = trainer.rollbacks + 1, failed_lr * 0.5
    if rollbacks > MAX_ROLLBACKS:
        raise TrainingError(f"training diverged {rollbacks} times (last at {trainer.phase} epoch {failed}, "
                            f"PSNR {psnr:.2f} dB); try a lower --lr or another --seed")
    batch = trainer.batch          # (a batch lowered for memory stays lowered)
    trainer.load_state(trainer.good, rng=False)
    trainer.rollbacks, trainer.lr_cap, trainer.batch = rollbacks, cap, batch
    trainer.say(f"training diverged at {trainer.phase} epoch {failed} (PSNR {best:.2f} -> {psnr:.2f} dB); "
                f"rolled back to epoch {trainer.epoch}, learning rate now at most {cap:.3g}")


def lower_batch(trainer, message: str) -> None:
    """After a step ran out of memory (`message`: the allocator's): go on at half the batch; TrainingError
    naming the memory needed at batch 1."""
    for opt in trainer.optimizers:
        opt.zero_grad(set_to_none=True)
    free_cached(trainer.device)
    if trainer.batch == 1:
        need, have = memory_needed(trainer, message)
        raise TrainingError(f"out of {trainer.device.type} memory even at batch 1: training on {trainer.width}x"
                            f"{trainer.height} frames needs about {gib(need)}, the device has {gib(have)}; "
                            "use a lower --bpp, fewer frames or another --device")
    old, trainer.batch = trainer.batch, trainer.batch // 2
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    trainer.say(f"note: out of {trainer.device.type} memory at batch {old}; continuing with batch {trainer.batch}")


def memory_needed(trainer, message: str) -> tuple[float, float]:
    """(bytes a batch-1 step needs, at least; bytes the device has)."""
    params = sum(p.numel() for p in trainer.parameters())
    need = 16 * params + trainer.video.numel() + 4 * decode_bytes_per_frame(trainer.arch)
    if trainer.device.type == "cuda":
        units = {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10}
        m = re.search(r"Tried to allocate ([\d.]+) (GiB|MiB|KiB)", message)
        tried = float(m.group(1)) * units[m.group(2)] if m else 0.0
        need = max(need, torch.cuda.max_memory_allocated(trainer.device) + tried)
        return need, torch.cuda.get_device_properties(trainer.device).total_memory
    return need, available_bytes(trainer.device)


def free_cached(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
