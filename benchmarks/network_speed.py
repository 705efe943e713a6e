"""How fast a model's decoder network runs alone, in several execution settings, and where its GPU time goes.

    python3 -m benchmarks.network_speed --model hinerv --size 1280x720 --frames 96 --bpp 0.05 \
        [--batch 16] [--iters 12] [--out benchmarks/results/decode_speed/DIR]

The network is the one `dnv encode --bpp` plans for that size, rate and frame count, with random weights and
tables (its speed depends on its shape, not on what it learned). Each setting runs a few warm-up batches and
then `--iters` timed batches of `--batch` frames, synchronised with the GPU; `frames_per_second` is frames over
that time (inputs already on the device, no conversion to uint8). The settings:

- `autocast_layer_norm`: bf16 autocast over fp32 weights, NCHW, LayerNorm through F.layer_norm, cuDNN limited
  to deterministic algorithms: how `decoding.render` ran bf16 before `decoding._for_precision`;
- `fp32_reductions`: fp32, NCHW, LayerNorm as reductions over the channel axis in PyTorch
  (`blocks.layer_norm_by_reductions`, what `LayerNorm2d` falls back to on a GPU without Triton);
- `fp32`: fp32, NCHW, LayerNorm as `LayerNorm2d` computes it when decoding on a GPU (the fused kernel of
  `kernels.channel_norm`): `dnv decode`'s default precision on a GPU;
- `fp32_channels_last`: the same in channels-last layout: `dnv decode` on a CPU (`decoding._for_precision`);
- `bf16_layer_norm`: weights and inputs cast to bf16 once, channels-last layout, F.layer_norm;
- `bf16_reductions`: the same with PyTorch's reductions;
- `bf16_var_mean`: the same with LayerNorm in fewer memory passes (`torch.var_mean`, then fused
  multiply-adds);
- `bf16`: the same with `LayerNorm2d`'s own choice (the fused kernel): `dnv decode --precision bf16` on a GPU
  (`decoding._for_precision`);
- `bf16_products`: as `bf16` with hinerv's 1x1 convolutions as matrix products over the channel axis, whose
  bias cuBLASLt adds inside the product (`_pointwise_as_product`), where cuDNN leaves it to a broadcast add over
  the whole output: a candidate for hinerv's blocks;
- `benchmark`: as `bf16` with cuDNN free to time its algorithms (the frames may then differ in the
  last bit between runs);
- `compiled`: as `bf16` through torch.compile (its compile time is `first_call_seconds`: it would be paid
  by every `dnv decode`).

Each setting's output is compared with fp32 (no autocast) on the same inputs: `psnr_vs_fp32` in dB over
[0, 1] frames (random weights: a check that the setting computes the same network, not a quality figure).
The record also holds the ten kernels that take the most GPU time in the first and the fastest setting
(torch.profiler), and `fused_norm_max_error`: the largest difference between the fused LayerNorm kernel and
F.layer_norm in fp32 over a few shapes and both layouts (GPU only). Prints a table; with --out writes
network_MODEL_WxH_DATE.json there.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import math
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import machine, markdown_table, sync, write_file
from nvcodec import decoding, sizing
from nvcodec.models import Decoder
from nvcodec.kernels import channel_norm
from nvcodec.models.blocks import LayerNorm2d, layer_norm_by_kernel, layer_norm_by_reductions
from nvcodec.models.dsnerv import decoder_inputs
from nvcodec.models.hinerv import MLPBlock
from nvcodec.models.registry import spec_of

SETTINGS = ("autocast_layer_norm", "fp32_reductions", "fp32", "fp32_channels_last", "bf16_layer_norm",
            "bf16_reductions", "bf16_var_mean", "bf16", "bf16_products", "benchmark", "compiled")


def build(model: str, width: int, height: int, frames: int, bpp: float):
    """The plan `dnv encode` makes for that size, rate and length; its decoder and tables, random."""
    spec = spec_of(model)
    plan = sizing.plan_for_bpp(model, width, height, frames, bpp, spec.quant_bits)
    torch.manual_seed(0)
    tables = {name: torch.randn(shape) * 0.1 for name, shape in plan.arch.section_shapes(frames).items()}
    return plan, Decoder(plan.arch).eval(), tables


def _layer_norm(self, x):
    """LayerNorm2d through F.layer_norm's kernel, as training runs it (the `*_layer_norm` settings)."""
    return layer_norm_by_kernel(x, self.weight, self.bias, self.eps)


def _reductions_norm(self, x):
    """LayerNorm2d as PyTorch reductions (the `*_reductions` settings)."""
    return layer_norm_by_reductions(x, self.weight, self.bias, self.eps)


def _var_mean_norm(self, x):
    """LayerNorm2d in fewer memory passes than LayerNorm2d's reductions (the `bf16_var_mean` setting): one
    reduction for mean and variance, one fused multiply-add to normalise, one for the affine."""
    var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
    scale = torch.rsqrt(var + self.eps)
    return torch.addcmul(self.bias[:, None, None], torch.addcmul(-mean * scale, x, scale), self.weight[:, None, None])


def use_layer_norm(decoder: torch.nn.Module, form: str = "") -> None:
    """Make the decoder's LayerNorm2d run F.layer_norm (`form` "kernel"), PyTorch reductions ("reductions"),
    `_var_mean_norm` ("var_mean") or as LayerNorm2d itself decides ("")."""
    for m in decoder.modules():
        if isinstance(m, LayerNorm2d):
            replacement = {"kernel": _layer_norm, "reductions": _reductions_norm,
                           "var_mean": _var_mean_norm}.get(form)
            m.forward = types.MethodType(replacement, m) if replacement else type(m).forward.__get__(m)


def _pointwise_as_product(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution of a channels-last tensor as a matrix product over the channel axis (else the conv)."""
    if torch.is_grad_enabled() or not x.is_contiguous(memory_format=torch.channels_last):
        return conv(x)
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)     # a view: channels-last is (B, H, W, C) in memory
    return F.linear(rows, conv.weight.flatten(1), conv.bias).view(b, h, w, -1).permute(0, 3, 1, 2)


def _block_with_products(self, x):
    """hinerv's MLPBlock with its 1x1 convolutions through `_pointwise_as_product` (the `*_products` settings)."""
    y = _pointwise_as_product(self.pw2, F.gelu(_pointwise_as_product(self.pw1, self.norm(self.dwconv(x)))))
    return x + y if self.residual else y


def use_products(decoder: torch.nn.Module, on: bool) -> None:
    for m in decoder.modules():
        if isinstance(m, MLPBlock):
            m.forward = types.MethodType(_block_with_products, m) if on else type(m).forward.__get__(m)


def prepare(setting: str, decoder: torch.nn.Module, inputs: list, device: torch.device):
    """(callable, inputs, context factory) for one setting."""
    use_layer_norm(decoder, next((form for suffix, form in (("layer_norm", "kernel"), ("reductions", "reductions"),
                                                           ("var_mean", "var_mean")) if setting.endswith(suffix)), ""))
    use_products(decoder, setting.endswith("products"))
    decoder = decoder.to(device)
    if setting in ("autocast_layer_norm", "fp32", "fp32_reductions"):
        net, cast = decoder, (lambda x: x)
    elif setting == "fp32_channels_last":
        net = copy.deepcopy(decoder).to(memory_format=torch.channels_last)

        def cast(x):
            return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    else:
        net, cast = decoding._for_precision(decoder, device, torch.bfloat16)
    xs = [cast(x.to(device)) for x in inputs]
    fn = torch.compile(net) if setting == "compiled" else net

    def context():
        stack = contextlib.ExitStack()
        stack.enter_context(torch.backends.cudnn.flags(enabled=True, benchmark=setting == "benchmark",
                                                       deterministic=setting != "benchmark"))
        if setting == "autocast_layer_norm":
            stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        return stack
    return fn, xs, context


@torch.no_grad()
def run_setting(setting: str, decoder, inputs, device, batch: int, iters: int, reference: torch.Tensor) -> dict:
    fn, xs, context = prepare(setting, decoder, inputs, device)
    start = time.perf_counter()
    with context():
        out = fn(*xs)
    sync(device)
    first = time.perf_counter() - start
    mse = (out.float().cpu() - reference).square().mean().item()
    with context():
        for _ in range(3):
            fn(*xs)
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            fn(*xs)
        sync(device)
    seconds = time.perf_counter() - start
    return {"setting": setting, "frames_per_second": round(batch * iters / seconds, 1),
            "ms_per_batch": round(1000 * seconds / iters, 2), "first_call_seconds": round(first, 2),
            "psnr_vs_fp32": round(10 * math.log10(1 / mse), 1) if mse > 0 else math.inf,
            "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None}


@torch.no_grad()
def top_kernels(setting: str, decoder, inputs, device, count: int = 10) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile
    fn, xs, context = prepare(setting, decoder, inputs, device)
    with context():
        fn(*xs)
        sync(device)
        with profile(activities=[ProfilerActivity.CUDA if device.type == "cuda" else ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                fn(*xs)
            sync(device)
    spent = (lambda e: e.device_time_total) if device.type == "cuda" else (lambda e: e.self_cpu_time_total)
    events = sorted((e for e in prof.key_averages() if spent(e) > 0), key=lambda e: -spent(e))
    total = sum(spent(e) for e in events)
    return [{"kernel": e.key[:120], "calls": e.count, "share": round(spent(e) / total, 3),
             "ms_per_batch": round(spent(e) / 3 / 1000, 3)} for e in events[:count]]


@torch.no_grad()
def fused_norm_max_error(widths, device) -> float | None:
    """Largest |fused kernel - F.layer_norm| in fp32 over each width, odd sizes, both layouts (None: no kernel)."""
    probe = torch.empty(1, 1, 1, 1, device=device)
    if not channel_norm.usable(probe):
        return None
    worst = 0.0
    gen = torch.Generator(device="cpu").manual_seed(0)
    for c in sorted(set(widths)):
        for shape in ((3, c, 37, 23), (2, c, 9, 1), (1, c, 1, 1)):
            x = (torch.randn(shape, generator=gen) * 3 + 1).to(device)
            w, b = torch.randn(c, generator=gen).to(device), torch.randn(c, generator=gen).to(device)
            ref = layer_norm_by_kernel(x, w, b, 1e-6)
            for layout in (torch.contiguous_format, torch.channels_last):
                y = channel_norm.layer_norm(x.contiguous(memory_format=layout), w, b, 1e-6)
                worst = max(worst, (y - ref).abs().max().item())
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="hinerv")
    ap.add_argument("--size", default="1280x720", help="WxH")
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--bpp", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (to try the script; the figures are for GPUs)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("no CUDA GPU here (--device cpu to try the script)")
    width, height = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    plan, decoder, tables = build(args.model, width, height, args.frames, args.bpp)
    times = torch.arange(args.batch, dtype=torch.float64) % args.frames
    inputs = decoder_inputs(plan.arch, tables, times, args.frames)
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        use_layer_norm(decoder, "kernel")   # the reference: fp32 without TF32, F.layer_norm
        reference = decoder.to(device)(*(x.to(device) for x in inputs)).float().cpu()
    norm_error = fused_norm_max_error(plan.arch.widths, device)
    print(json.dumps({"fused_norm_max_error": norm_error}), flush=True)
    rows = []
    for setting in args.settings:
        rows.append(run_setting(setting, decoder, inputs, device, args.batch, args.iters, reference))
        print(json.dumps(rows[-1]), flush=True)
    fastest = max((r for r in rows if r["setting"] != "compiled"), key=lambda r: r["frames_per_second"])["setting"]
    kernels = {s: top_kernels(s, decoder, inputs, device) for s in dict.fromkeys([args.settings[0], fastest])}
    record = {"model": args.model, "width": width, "height": height, "frames": args.frames, "bpp": args.bpp,
              "params": plan.params, "widths": list(plan.arch.widths), "strides": list(plan.arch.strides),
              "batch": args.batch, "iters": args.iters, "fused_norm_max_error": norm_error, "settings": rows,
              "top_kernels": kernels, **machine()}
    print(markdown_table(rows, ["setting", "frames_per_second", "ms_per_batch", "first_call_seconds", "psnr_vs_fp32",
                              "peak_gib"]))
    for s, ks in kernels.items():
        print(f"\n{s}:\n" + markdown_table(ks, ["kernel", "calls", "share", "ms_per_batch"]))
    if args.out:
        name = f"network_{args.model}_{width}x{height}_{datetime.date.today():%Y-%m-%d}.json"
        write_file(args.out / name, json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
