"""How long hinerv's bilinear upsamplings take in a compiled training step: F.interpolate against the shifted-slice
form of `models.blocks.upsample_bilinear`, forward and backward, at the shapes the planner gives a video.

    python3 -m benchmarks.upsample_speed [--size 1280x720] [--frames 96] [--bpp 0.05] [--iters 50] [--out DIR]

Each form is compiled alone (torch.compile, default mode) as `sum(up(x) * g)` with its gradient in x, on
random inputs of each stage's shape (batch 1), bf16 on a GPU and fp32 on a CPU, as training runs them. Times are
medians over `--iters` synchronised calls after three warm-ups. Also checks that both forms give the same
output and gradient (largest difference). With --out writes upsample_speed_WxH_DEVICE.json there.
"""
from __future__ import annotations

import json
import statistics
import time

import torch
import torch.nn.functional as F

from nvcodec.models import hinerv
from nvcodec.models.blocks import _upsample_axis

from .common import layer_bench_args, machine, sync


def by_interpolate(x, g, s):
    return (F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False) * g).sum()


def by_slices(x, g, s):
    return (_upsample_axis(_upsample_axis(x, s, -1), s, -2) * g).sum()


def stage_shapes(width: int, height: int, frames: int, bpp: float):
    """(channels, h, w, factor) of each upsampling in the planned network's forward."""
    arch = hinerv.plan_for_bpp(width, height, frames, bpp, quant_bits=6).arch
    h, w = hinerv.section_shapes(arch, frames)["GRID0"][-2:]
    shapes = []
    for i, s in enumerate(arch.strides):
        if s > 1:
            shapes.append((arch.widths[i], h, w, s))
        h, w = h * s, w * s
    return arch, shapes


def time_form(form, x, g, s, iters: int, device) -> tuple[float, torch.Tensor, torch.Tensor]:
    step = torch.compile(lambda x, g: torch.autograd.grad(form(x, g, s), x), dynamic=False)
    for _ in range(3):
        grad, = step(x, g)
    times = []
    for _ in range(iters):
        sync(device)
        t = time.perf_counter()
        grad, = step(x, g)
        sync(device)
        times.append(time.perf_counter() - t)
    with torch.no_grad():
        value = form(x.detach(), g, s)
    return statistics.median(times), value, grad


def main(argv=None):
    a, width, height, device, dtype = layer_bench_args(__doc__.splitlines()[0], argv)
    arch, shapes = stage_shapes(width, height, a.frames, a.bpp)
    print(f"{a.size}, strides {arch.strides}, widths {arch.widths}, on {device}, {dtype}")
    rows = []
    for c, h, w, s in shapes:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, c, h, w, generator=gen).to(device, dtype).requires_grad_()
        g = torch.randn(1, c, h * s, w * s, generator=gen).to(device, dtype)
        t_int, v_int, g_int = time_form(by_interpolate, x, g, s, a.iters, device)
        t_sl, v_sl, g_sl = time_form(by_slices, x, g, s, a.iters, device)
        row = {"channels": c, "height": h, "width": w, "factor": s,
               "interpolate_ms": t_int * 1e3, "slices_ms": t_sl * 1e3,
               "value_difference": abs(v_int.float() - v_sl.float()).item() / max(abs(v_int.float()).item(), 1e-12),
               "grad_max_difference": (g_int.float() - g_sl.float()).abs().max().item()}
        rows.append(row)
        print(f"  {c:4d} x {h:4d} x {w:4d} x{s}: interpolate {row['interpolate_ms']:8.3f} ms, "
              f"slices {row['slices_ms']:8.3f} ms  (relative value difference {row['value_difference']:.1e}, "
              f"gradient {row['grad_max_difference']:.1e})")
    total_int = sum(r["interpolate_ms"] for r in rows)
    total_sl = sum(r["slices_ms"] for r in rows)
    print(f"  all upsamplings, forward and backward: interpolate {total_int:.3f} ms, slices {total_sl:.3f} ms")
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        name = f"upsample_speed_{a.size}_{device.type}.json"
        record = {"size": a.size, "frames": a.frames, "bpp": a.bpp, "dtype": str(dtype), "iters": a.iters,
                  "machine": machine(), "torch": torch.__version__, "stages": rows,
                  "interpolate_ms": total_int, "slices_ms": total_sl}
        (a.out / name).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
