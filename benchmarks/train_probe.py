"""Training-step throughput of one architecture under several settings (eager/compiled, batch sizes).

    python3 -m benchmarks.train_probe CLIP [--model hinerv] [--frames 96] (--bpp 0.05 | --params 3e6) [--steps 40] [--batches 2 4 8]
        [--modes eager default reduce-overhead] [--rows 640] [--align 1 8] [--prune 0.1 0.2] [--cudnn-benchmark off on]
        [--enc-dim 64 32] [--optimizer adam adan] [--rate off on] [--loop-epochs N] [--profile STEPS]
--model picks the network (the default model unless given), sized for --bpp as `dnv encode` sizes it at the
model's planned depth. Prints frames/s for each setting; used to choose the GPU defaults of `dnv encode`. A mode is "eager"
or a torch.compile mode ("reduce-overhead", with CUDA graphs, is what `dnv encode` uses on a GPU;
"default" is plain compile). Speed only: a setting that wins here must still be checked for quality at full length.
Each step is the encoder's own (`Fitter._step`: forward, backward, gradient clipping, fused Adam).
--align rounds the network's channel widths to multiples of N (`sizing.WIDTH_ALIGN`, then the largest network
within the same --bpp or --params); --prune plans for --bpp as `dnv encode --prune` does (a larger pruned share
gives a wider network for the same file); --cudnn-benchmark turns cuDNN's algorithm search off or on (`fit.CUDNN_BENCHMARK`).
--rate on times the step of rate-aware training from the main phase (`--train rate=true --train rate_from=0`).
--loop-epochs N also times N epochs of the encoder's epoch loop around the same step (`Fitter._phase`), to see
what the loop adds to the bare steps.

--compile-times N prints, at the end, the N phases of torch.compile that took longest (Dynamo's own accounting,
summed over every compile of the run: tracing, lowering, Triton's compiles, waiting for them): where the first
epoch of an encode goes. It recorded nothing with torch 2.11 on an H200; --compile-profile N runs each setting's
first step under cProfile instead and prints the N functions of torch's compiler stack with the most cumulative time.
--inductor NAME=VALUE (repeatable) sets one of Inductor's settings first (`torch._inductor.config`, dotted, e.g.
`triton.autotune_pointwise=True`, which encodes turn off: `fit.INDUCTOR_OPTIONS`): a cold run with and one without
(empty caches each) says what it does to the first step's warm-up (compiling) and to the steady rate.

--profile STEPS first looks inside each mode at the first batch size, to see where an encode's time goes (so the
first mode's first step compiles from cold, as in an encode): the seconds of the first step (compiling and
CUDA-graph capture), of the next four, and of one fp32 evaluation over all frames
(as training does twice); then torch.profiler over STEPS steps: the operations that take the most device
time (CPU time on a CPU), and how busy the device was over the wall time of those steps (kernels replayed
from a CUDA graph may be seen by the profiler only as a whole, or not at all: compare with mode "default").
"""
from __future__ import annotations

import argparse
import itertools
import time

import torch

from nvcodec import fit, sizing
from nvcodec.models import DEFAULT_MODEL, MODELS, quant_bits_for
from nvcodec.fit import OPTIMIZERS, Fitter, TrainSettings
from nvcodec.video import read_video


def probe(step, batch, steps, device):
    warm = timed(device, lambda: [step() for _ in range(5)])
    return steps * batch / timed(device, lambda: [step() for _ in range(steps)]), warm


def loop_rate(f, epochs: int, device) -> float:
    """Frames/s of the Fitter's own epoch loop (`_phase`: schedule, PSNR read-back, rollback snapshots), which
    the bare steps above leave out; one epoch first, so that the step is warm."""
    f._phase(1, 1e-4, 0.0)
    f.epoch = 0
    return epochs * f.frames / timed(device, lambda: f._phase(epochs, 1e-4, 0.0))


def fitter_and_step(frames, arch, batch, mode, device, enc_dim=64, optimizer="adam", rate_bpp=None):
    """A Fitter for this setting, and one training step of it on random frames. `rate_bpp`: the step of rate-aware
    training in the main phase (`--train rate=true rate_from=0`) with this target, its entropy models' upkeep
    every `learned.RATE_EVERY` steps included."""
    from nvcodec.compress.learned import RateTerm
    settings = TrainSettings(batch=batch, compile=mode != "eager", compile_mode="default" if mode == "eager" else mode,
                             enc_dim=enc_dim, optimizer=optimizer, rate=rate_bpp is not None, rate_from=0.0)
    t, h, w = frames.shape[:3]
    bits = quant_bits_for(arch.model)
    rate = None if rate_bpp is None else RateTerm(t * h * w, int(rate_bpp * t * h * w / 8))
    f = Fitter(torch.from_numpy(frames), arch, settings, device, progress=False, rate=rate, noise_bits=bits)
    if rate is not None:
        f._start_rate(bits)

    def step():
        f._step(torch.randint(0, f.frames, (batch,), device=device), 1e-4)
    return f, step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def profile(frames, arch, batch, mode, steps, device, enc_dim=64, rows=25, optimizer="adam"):
    """Where the time of an encode goes (see the module's doc); prints a report."""
    from torch.profiler import ProfilerActivity, profile as torch_profile
    f, step = fitter_and_step(frames, arch, batch, mode, device, enc_dim, optimizer)
    first = timed(device, step)
    next_four = timed(device, lambda: [step() for _ in range(4)])
    evaluation = timed(device, lambda: f._evaluate("train"))
    print(f"{mode} batch={batch}: first step {first:.2f} s (compiling, capture), next 4 steps {next_four:.3f} s, "
          f"one fp32 evaluation of {f.frames} frames {evaluation:.2f} s", flush=True)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        wall = timed(device, lambda: [step() for _ in range(steps)])
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    busy = sum(getattr(e, key) for e in events) / 1e6     # microseconds -> s
    print(f"profiled {steps} steps: {wall:.3f} s wall ({steps * batch / wall:.1f} frames/s under the profiler), "
          f"{'device busy' if cuda else 'CPU time, all threads'} {busy:.3f} s ({100 * busy / wall:.0f} %)")
    print(events.table(sort_by=key, row_limit=rows), flush=True)


COMPILER_CODE = r"(_dynamo|_inductor|_functorch|triton|cudagraph|fx)"    # where compiling's functions live


def first_step_profile(step, device, limit: int) -> None:
    """The first step under cProfile (Python time only; kernel compiles in Inductor's worker processes show as the
    main thread's waits for them): its wall time, then the `limit` functions of torch's compiler stack with the most
    cumulative time. Dynamo's own accounting (`print_compile_times`) recorded nothing with torch 2.11."""
    import cProfile
    import io
    import pstats
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    step()
    sync(device)
    profiler.disable()
    print(f"first step under cProfile: {time.perf_counter() - t0:.1f} s; the {limit} compiler functions with the most "
          "cumulative time:", flush=True)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(COMPILER_CODE, limit)
    print(text.getvalue().split("\n\n", 1)[-1].rstrip(), flush=True)


def print_compile_times(limit: int) -> None:
    """The `limit` longest phases of torch.compile so far, from `torch._dynamo.utils.compile_times` (nested phases
    are each counted: a phase's time includes its parts')."""
    from torch._dynamo.utils import compile_times
    rows = []
    for line in compile_times(repr="str", aggregate=True).splitlines()[2:]:
        name, _, seconds = line.rpartition(", ")
        try:
            rows.append((float(seconds), name))
        except ValueError:
            continue
    if not rows:    # (seen with torch 2.11 on an H200: the warm-up took 60 s, the accounting had nothing)
        print(f"torch.compile's phases: torch {torch.__version__} recorded none (torch._dynamo.utils.compile_times)")
        return
    print(f"torch.compile, the {limit} longest phases (seconds, nested phases inside their parents'):")
    for seconds, name in sorted(rows, reverse=True)[:limit]:
        print(f"  {seconds:8.2f}  {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("--model", choices=MODELS, default=DEFAULT_MODEL)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--bpp", type=float, default=0.05)
    size.add_argument("--params", type=float, help="a network of about this many parameters (as bunny.py's sizes)")
    ap.add_argument("--frames", type=int, help="use the first FRAMES frames (the network is sized for them)")
    ap.add_argument("--rows", type=int, help="use the top ROWS rows of the frames (640: the Bunny benchmark's crop)")
    ap.add_argument("--align", type=int, nargs="+", default=[sizing.WIDTH_ALIGN], help="channel width multiples")
    ap.add_argument("--prune", type=float, nargs="+", default=[0.1], help="pruned shares the --bpp plan counts on")
    ap.add_argument("--cudnn-benchmark", nargs="+", choices=["off", "on"], default=["on"])
    ap.add_argument("--enc-dim", type=int, nargs="+", default=[TrainSettings.enc_dim],
                    help="encoder widths (training only)")
    ap.add_argument("--optimizer", nargs="+", choices=list(OPTIMIZERS), default=[TrainSettings.optimizer])
    ap.add_argument("--rate", nargs="+", choices=["off", "on"], default=["off"],
                    help="on: the step of rate-aware training (learned steps and entropy models, rate_from=0) "
                         "for the --bpp target")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--loop-epochs", type=int, default=0, metavar="N",
                    help="then time N epochs of the Fitter's own loop with the same step")
    ap.add_argument("--batches", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--modes", nargs="+", default=["eager", "default"],
                    help="eager, or torch.compile modes: default, reduce-overhead, max-autotune-no-cudagraphs")
    ap.add_argument("--compile-times", type=int, default=0, metavar="N",
                    help="at the end, print the N longest phases of torch.compile")
    ap.add_argument("--compile-profile", type=int, default=0, metavar="N",
                    help="run each setting's first step under cProfile and print the N compiler functions with the "
                         "most cumulative time (the warm-up printed after it is then of warm steps)")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="first profile STEPS steps of each mode at the first batch size (see above)")
    ap.add_argument("--inductor", action="append", default=[], metavar="NAME=VALUE",
                    help="set torch._inductor.config.NAME (dotted) to VALUE (True, False or a number) first")
    a = ap.parse_args()
    for setting in a.inductor:
        set_inductor(setting)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    frames, _ = read_video(a.clip)
    frames = frames[: a.frames, : a.rows]
    t, h, w = frames.shape[:3]
    print(f"{w}x{h} {t} frames, device {device}, torch {torch.__version__}", flush=True)
    for align, prune, bench, enc_dim, opt in itertools.product(a.align, a.prune, a.cudnn_benchmark, a.enc_dim,
                                                              a.optimizer):
        sizing.WIDTH_ALIGN = align
        torch.backends.cudnn.benchmark = bench == "on"
        plan = sizing.plan_for_params(a.model, w, h, a.params, frames=t) if a.params else \
            sizing.plan_for_bpp(a.model, w, h, t, a.bpp, quant_bits_for(a.model), prune)
        print(f"== {a.model}, widths {plan.arch.widths} (align {align}), {plan.params:,} params, cudnn.benchmark {bench}, "
              f"encoder width {enc_dim}, {opt}", flush=True)
        for mode in a.modes if a.profile else []:
            profile(frames, plan.arch, a.batches[0], mode, a.profile, device, enc_dim, optimizer=opt)
        for mode, rate in itertools.product(a.modes, a.rate):
            for batch in a.batches:
                f, step = fitter_and_step(frames, plan.arch, batch, mode, device, enc_dim, opt,
                                          a.bpp if rate == "on" else None)
                if a.compile_profile:
                    first_step_profile(step, device, a.compile_profile)
                fps, warm = probe(step, batch, a.steps, device)
                label = mode + (" rate" if rate == "on" else "")
                print(f"{label:>26} batch={batch}: {fps:7.1f} frames/s (warm-up {warm:.1f} s)", flush=True)
                if a.loop_epochs:
                    print(f"{'':>26} the same in the epoch loop: {loop_rate(f, a.loop_epochs, device):7.1f} frames/s "
                          f"({a.loop_epochs} epochs)", flush=True)
    if a.compile_times:
        print_compile_times(a.compile_times)


def set_inductor(setting: str) -> None:
    """`NAME=VALUE`: torch._inductor.config's NAME (dotted: `triton.autotune_pointwise`) set to VALUE, also where the
    training step's compile would set it itself (`fit.INDUCTOR_OPTIONS`). (The config module takes dotted names
    itself and refuses unknown ones.)"""
    import ast

    import torch._inductor.config as config
    name, _, value = setting.partition("=")
    try:
        setattr(config, name, ast.literal_eval(value))
    except AttributeError:
        raise SystemExit(f"--inductor {setting}: torch._inductor.config has no {name}") from None
    fit.INDUCTOR_OPTIONS.pop(name, None)
    print(f"torch._inductor.config.{name} = {getattr(config, name)!r}", flush=True)


if __name__ == "__main__":
    main()
