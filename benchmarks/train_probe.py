"""Training-step throughput of one architecture under several settings (eager/compiled, batch sizes).

    python benchmarks/train_probe.py CLIP --bpp 0.05 [--steps 40] [--batches 2 4 8]
        [--modes eager default reduce-overhead]
Prints frames/s for each setting; used to choose the GPU defaults of `dnv encode`. A mode is "eager"
or a torch.compile mode ("reduce-overhead", with CUDA graphs, is what `dnv encode` uses on a GPU;
"default" is plain compile). Speed only: a setting that wins here must still be checked for quality at full length.
"""
from __future__ import annotations

import argparse
import time

import torch

from nvcodec import sizing
from nvcodec.fit import Fitter, TrainSettings, neighbours
from nvcodec.video import read_video


def probe(frames, arch, batch, mode, steps, device):
    settings = TrainSettings(batch=batch, compile=mode != "eager", compile_mode="default" if mode == "eager" else mode)
    f = Fitter(torch.from_numpy(frames), arch, settings, device, progress=False)
    params = list(f.encoders.parameters()) + list(f.decoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, fused=device.type == "cuda")

    def step():
        idx = torch.randint(0, f.frames, (batch,), device=device)
        loss, _ = f.step_fn(*neighbours(f.video, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(5):
        step()
    torch.cuda.synchronize() if device.type == "cuda" else None
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize() if device.type == "cuda" else None
    return steps * batch / (time.perf_counter() - t0), warm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("--bpp", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batches", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--modes", nargs="+", default=["eager", "default"],
                    help="eager, or torch.compile modes: default, reduce-overhead, max-autotune-no-cudagraphs")
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    frames, _ = read_video(a.clip)
    t, h, w = frames.shape[:3]
    plan = sizing.plan_for_bpp("dnerv", w, h, t, a.bpp)
    print(f"{w}x{h} {t} frames, {plan.params:,} params, device {device}")
    for mode in a.modes:
        for batch in a.batches:
            fps, warm = probe(frames, plan.arch, batch, mode, a.steps, device)
            print(f"{mode:>26} batch={batch}: {fps:7.1f} frames/s (warm-up {warm:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
