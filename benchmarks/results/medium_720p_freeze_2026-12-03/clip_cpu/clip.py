"""finetune_probe with symmetric weight grids clipped at CLIP x each channel's peak (file and training alike)."""
import os, sys, runpy
import numpy as np
import torch
from nvcodec.compress import quantize, qat, freeze
from nvcodec.compress.quantize import QuantizedTensor, as_stored, MIN_SCALE, weight_levels

CLIP = float(os.environ["CLIP"])


def _symmetric(w, levels, per_channel):
    peak = (w.abs().flatten(1).amax(1) if per_channel else w.abs().max().reshape(1)) * CLIP
    scale = as_stored(torch.where(peak > 0, peak / levels, torch.ones_like(peak)).clamp_min(MIN_SCALE))
    shape = [-1] + [1] * (w.dim() - 1) if per_channel else [1] * w.dim()
    q = torch.round(w / scale.reshape(shape)).clamp_(-levels, levels)
    return QuantizedTensor(q.to(torch.int32).numpy(), scale.numpy().astype(np.float16), None,
                           0 if per_channel else None)


def weight_grid(w, bits):
    w = w.detach()
    levels = weight_levels(bits)
    peak = (w.abs().flatten(1).amax(1) if w.dim() >= 2 else w.abs().amax().reshape(1)) * CLIP
    shape = [-1] + [1] * (w.dim() - 1) if w.dim() >= 2 else [1]
    scale = as_stored((peak / levels).clamp_min(MIN_SCALE)).reshape(shape)
    return torch.round(w / scale).clamp(-levels, levels), scale, torch.zeros_like(scale)


quantize._symmetric = _symmetric
qat.weight_grid = freeze.weight_grid = weight_grid
sys.argv = ["finetune_probe"] + sys.argv[1:]
runpy.run_module("benchmarks.finetune_probe", run_name="__main__")
