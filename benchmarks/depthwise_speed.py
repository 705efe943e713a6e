"""How long hinerv's depthwise convolutions take in a compiled training step, forward and backward, in three forms:
the library convolution (cuDNN on a GPU) in channels-last layout (what training runs on a GPU) and in the default
contiguous layout, and a sum of k x k shifted slices of the zero-padded input (whose backward Inductor writes as its
own fused kernels).

    python3 -m benchmarks.depthwise_speed [--size 1280x720] [--frames 96] [--bpp 0.05] [--iters 50] [--out DIR]

On an H200 the depthwise convolutions' weight gradient (cuDNN's `wgrad2d_c1_k1_nhwc`, 9 calls a step) was the
largest kernel of the 720p step, 18 % of its GPU time (results/train_profile_720p_2026-12-04/). Each form is
compiled alone (default mode) as `sum(conv(x, w) * g)` with its gradients in x and w, at every depthwise
convolution of the planned network (batch 1), bf16 on a GPU and fp32 on a CPU. The time of one call is the mean of
`--iters` calls queued back to back between two CUDA events (on a CPU, wall time), after three warm-ups; with
kernels of a few hundred microseconds the launches hide behind them. Also checks that the forms agree (largest
relative difference of the output and of both gradients). With --out writes depthwise_speed_WxH_DEVICE.json there.
"""
from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F

from nvcodec.models import hinerv
from nvcodec.models.blocks import depthwise_by_slices

from .common import layer_bench_args, machine, sync


def by_conv(x, w, g):
    return (F.conv2d(x, w, padding=w.shape[-1] // 2, groups=x.shape[1]) * g).sum()


def by_slices(x, w, g):
    return (depthwise_by_slices(x, w) * g).sum()


def conv_shapes(width: int, height: int, frames: int, bpp: float):
    """(channels, h, w, kernel, count) of each depthwise convolution shape in the planned network's forward."""
    arch = hinerv.plan_for_bpp(width, height, frames, bpp, quant_bits=6).arch
    _, h, w = arch.content_shape
    counts: dict[tuple, int] = {}
    for i, (s, k, d) in enumerate(zip(arch.strides, arch.kernels, arch.depths)):
        h, w = h * s, w * s
        for j in range(d):
            key = (arch.widths[i] if j == 0 else arch.widths[i + 1], h, w, k)
            counts[key] = counts.get(key, 0) + 1
    return arch, [(*key, n) for key, n in counts.items()]


def time_form(form, x, w, g, iters: int, device) -> tuple[float, list[torch.Tensor]]:
    torch._dynamo.reset()       # (every call compiles the same lambda: past dynamo's recompile limit it runs eagerly)
    step = torch.compile(lambda x, w, g: (form(x, w, g), *torch.autograd.grad(form(x, w, g), (x, w))),
                         dynamic=False)
    for _ in range(3):
        out = step(x, w, g)
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            out = step(x, w, g)
        end.record()
        sync(device)
        return start.elapsed_time(end) / 1e3 / iters, list(out)
    t = time.perf_counter()
    for _ in range(iters):
        out = step(x, w, g)
    return (time.perf_counter() - t) / iters, list(out)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def main(argv=None):
    a, width, height, device, dtype = layer_bench_args(__doc__.splitlines()[0], argv)
    arch, shapes = conv_shapes(width, height, a.frames, a.bpp)
    print(f"{a.size}, widths {arch.widths}, kernels {arch.kernels}, depths {arch.depths}, on {device}, {dtype}")
    forms = {"conv_channels_last": (by_conv, torch.channels_last), "conv_contiguous": (by_conv, None),
             "slices": (by_slices, torch.channels_last)}
    rows, totals = [], dict.fromkeys(forms, 0.0)
    for c, h, w, k, count in shapes:
        gen = torch.Generator().manual_seed(0)
        x0 = torch.randn(1, c, h, w, generator=gen)
        w0 = torch.randn(c, 1, k, k, generator=gen) / k
        g0 = torch.randn(1, c, h, w, generator=gen)
        row = {"channels": c, "height": h, "width": w, "kernel": k, "per_step": count}
        results = {}
        for name, (form, layout) in forms.items():
            to = (lambda t: t.to(device, dtype, memory_format=layout)) if layout is not None \
                else (lambda t: t.to(device, dtype).contiguous())
            x, g = to(x0).requires_grad_(), to(g0)
            wt = w0.to(device, dtype).requires_grad_()
            seconds, results[name] = time_form(form, x, wt, g, a.iters, device)
            row[f"{name}_ms"] = seconds * 1e3
            totals[name] += seconds * 1e3 * count
        ref = results["conv_channels_last"]
        row["difference"] = {name: [relative(o, r) for o, r in zip(out, ref)] for name, out in results.items()
                             if name != "conv_channels_last"}
        rows.append(row)
        print(f"  {c:4d} x {h:4d} x {w:4d}, {k}x{k}, {count} a step: "
              + ", ".join(f"{name} {row[f'{name}_ms']:7.3f} ms" for name in forms)
              + f"  (differences {row['difference']})")
    print("  a step's depthwise convolutions, forward and backward: "
          + ", ".join(f"{name} {t:.3f} ms" for name, t in totals.items()))
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        record = {"size": a.size, "frames": a.frames, "bpp": a.bpp, "dtype": str(dtype), "iters": a.iters,
                  "machine": machine(), "torch": torch.__version__, "shapes": rows, "step_ms": totals}
        (a.out / f"depthwise_speed_{a.size}_{device.type}.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
