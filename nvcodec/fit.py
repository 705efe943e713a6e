"""Fitting a network to one video: the training loop (device, precision, compile, schedule, pruning,
evaluation, progress), and the settings and recipes it trains with.

The whole video stays on the device as uint8 (T, 3, pad_h, pad_w) (in host memory if it does not
fit there); each step gathers a batch of frames, runs the model's inputs + decoder, and takes the loss
on the original (unpadded) area only. After the main schedule the decoder is pruned by global
magnitude (unless `prune` is 0) and fine-tuned with the mask held fixed (quantization-aware where a
quantizer is given). The result is the float decoder and the tables the file stores beside it.

The loop knows no model: what a model trains besides its decoder (encoders fed with frames t-1, t, t+1,
or learnable tables with their own learning-rate scale), how a step's batch is built and what the file
stores come from its registry entry (`ModelSpec.training`, `models.training`).

A long encode survives trouble (`nvcodec.train`):
- Checkpoints (`train.checkpoint`): every `checkpoint_every` seconds, on Ctrl-C or SIGTERM (at the end of
  the running step) and when training ends, the whole state (`Trainer.state`: networks, optimizers,
  pruning masks, position in the schedule, RNG) is written atomically; `resume=True` continues from it at
  the same step, bit for bit on a CPU. A checkpoint belongs to one video, architecture and set of
  training settings; another encode refuses it with one line.
- Recovery (`train.recovery`): a step out of memory is retried at half the batch; an epoch that diverged
  is undone and the learning rate capped.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import planeloss
from .compress.flatgrid import FileValues
from .compress.freeze import OscillationFreezer
from .compress.prune import apply_masks, magnitude_masks
from .compress.qat import describe as describe_bits
from .memory import gib
from .models import Arch, Decoder, spec_of
from .train import checkpoint, recovery
from .train.errors import Interrupted, TrainingError, signal_interrupt

# Let cuDNN time its algorithms for each convolution shape on the first steps and keep the fastest: every
# training step has the same shapes, so the search pays back at once (measured: benchmarks/train_probe.py).
CUDNN_BENCHMARK = True


# Epochs and fine-tuning epochs after pruning, per preset and optimizer; like x264's presets, slower means better.
# Adam's medium is what fits 100 frames of 1280x720 in 5 minutes from a cold compile: 273-277 s alone on an H100 at
# 0.05 bpp, where 300 + 30 took 373 s; it costs 0.20-0.33 dB RGB at equal bpp on four clips
# (benchmarks/results/lr_short_schedule_gpu_2026-12-06, medium_epochs_cpu_2026-12-06); slow is for quality.
# Adan's medium is the recipe that reached the paper's 3M Bunny figure (38.09 dB) in under 3 minutes of training
# on an H200: 38.28-38.29 dB in 175-178 s with fine-tuning (benchmarks/results/bunny_adan_2026-12-02).
PRESETS = {
    "fast": {"adam": (100, 10), "adan": (100, 10)},
    "medium": {"adam": (230, 23), "adan": (210, 21)},
    "slow": {"adam": (600, 60), "adan": (600, 60)},
}
# The peak learning rate of each optimizer where none is given (`--lr`, `--train lr=`) and the model has none of its own
# (`ModelSpec.learning_rates`): at 4e-3 Adam diverges.
OPTIMIZER_LR = {"adam": 1e-3, "adan": 4e-3}


@dataclass
class TrainSettings:
    # An encode takes optimizer, lr and epochs from `recipe` (the preset's, for the network's size) unless given.
    epochs: int = PRESETS["medium"]["adam"][0]
    # Batch 1 (the paper's), with CUDA graphs on a GPU: on an H100, 3M Bunny at 300 epochs reached 37.58-37.90 dB
    # (three runs, 329-364 s), against 36.96 dB at batch 2 (benchmarks/results/bunny/recipes.md).
    batch: int = 1
    lr: float = OPTIMIZER_LR["adam"]
    warmup: float = 0.2           # fraction of the main schedule spent warming up
    loss: str = "l2"              # "l2" or "l1ssim" (NeRV's 0.7 * L1 + 0.3 * (1 - SSIM))
    prune: float = 0.1            # fraction of decoder conv weights removed after training
    prune_epochs: int = PRESETS["medium"]["adam"][1]   # fine-tuning epochs with the pruning mask held fixed
    prune_size_exponent: float = 0.0     # pruning scores |w| / (its tensor's size) ** this (compress.prune)
    # Where in the main phase the pruning masks are set (a share of its epochs; 1: at its end), so that the rest of
    # the main phase, at its higher learning rates, trains the pruned network before the fine-tuning.
    prune_at: float = 1.0
    finetune_lr: float = 0.2      # the fine-tuning's peak learning rate, as a fraction of `lr` (cosine to zero)
    # Quantization-aware fine-tuning does not settle: the quantized network's quality swings by up to 1.5 dB from one
    # epoch's end to the next, even as the learning rate nears zero (weights oscillating across rounding thresholds,
    # as Nagel et al. 2022 describe for low-bit depthwise networks). So this share of its last epochs are each
    # evaluated as the file is measured and the best is kept (0: none; benchmarks/results/medium_fixed_grid_2026-12-03).
    # With the freezing below the swings are gone: in 9 encodes on 4 clips (results/medium_720p_freeze_2026-12-03)
    # the best of the last half was always one of the last two epochs, at most 0.007 dB above the last; so only the
    # last tenth (3 of 30 epochs) is evaluated, each evaluation a decode of every frame.
    finetune_pick: float = 0.1
    # Values that oscillate across a rounding threshold in quantization-aware fine-tuning are frozen once their
    # oscillations per check (a moving average; a check every 4 steps) pass this (compress.freeze; 0: off). On the
    # CPU: carphone +0.24 to +0.43 dB YUV, CiscoVT +0.02, Bunny 320x180 +0.15 (results/qat_oscillation_cpu_2026-12-03).
    freeze: float = 0.24
    enc_dim: int = 64             # encoder width (paper: 64)
    grad_clip: float = 1.0
    beta1: float = 0.9            # Adam's first beta (NeRV's and DNeRV's code use 0.5: it diverged here)
    beta2: float = 0.999          # Adam's second beta (0.99: even on two CPU clips, results/adam_beta2_cpu_2026-12-06)
    # "adam" (torch's fused Adam) or "adan" (Adan, torch-optimi's foreach version, betas 0.98/0.92/0.99, no weight
    # decay): DNeRV's appendix (Table 10, 0.35M Bunny) finds Adan stable at lr 3e-3, where Adam fails, and better.
    optimizer: str = "adam"
    amp: bool = True              # bf16 autocast on CUDA
    compile: bool = False         # torch.compile the training step (on by default on CUDA, see codec)
    # torch.compile mode. CUDA graphs ("reduce-overhead") cut the launch overhead that bounds a small-batch
    # step: 70 -> 148 frames/s at batch 1 on an H100 (benchmarks/results/bunny/recipes.md).
    compile_mode: str = "reduce-overhead"
    seed: int = 0
    code_lr_scale: float = 30.0   # DS-NeRV: learning rate of the codes relative to the decoder's
    qat: bool = True              # fine-tune after pruning with the file's quantizers in the loop (compress.qat)
    # Fine-tune after pruning for D + lambda * R with learned steps and entropy models (compress.learned), which
    # the file then carries; lambda is driven to the rate control's target.
    rate: bool = False
    # Where in the main phase rate-aware training starts (a share of its epochs; 1: at the fine-tuning after
    # pruning). Before the fine-tuning it runs on the weights and tables plus uniform noise of the learned steps (the
    # usual differentiable stand-in for rounding: NVRC's and C3's first stage), rounded from the fine-tuning on.
    rate_from: float = 1.0
    # The main phase's rate term on the weights (compress.rate_prior): a 1 % change of the weights' estimated bits
    # weighs as this many % of the distortion (0: off). Needs a --bpp target and the l2 loss.
    rate_prior: float = 0.0
    # The last share of the main phase (0: none) whose steps run on the weights and tables plus uniform noise of
    # the rounding step at the planned depth (`--quant-bits`; flatgrid.FileValues), so that the network the
    # fine-tuning starts from already lives with the file's grid.
    quant_noise: float = 0.0
    plane_weights: str = planeloss.DEFAULT_WEIGHTS    # Y:U:V weights of the loss on YUV 4:2:0 planes (planeloss)
    # What the plane weights weigh: the planes' losses ("mse") or their logarithms ("psnr", planeloss). On the CPU
    # (carphone and CiscoVT crops, 300 epochs, 0.3 bpp) "mse" lost 0.3-1.4 dB of RGB and YUV PSNR to RGB coding, its
    # chroma starved; "psnr" gained 0.4-0.6 dB RGB and 0.8-1.4 dB YUV (benchmarks/results/yuv420_cpu_smoke_2026-12-02).
    plane_balance: str = "psnr"


# A short clip takes few steps an epoch: at 300 epochs CiscoVT's 9 frames got 2,700 steps (carphone's 120
# frames 36,000), and 1,000 epochs gained it 1.6 dB RGB at 0.1 bpp (results/short_clip_steps_cpu_2026-12-04). So
# a clip of fewer than STEP_FRAMES frames gets the epochs (and fine-tuning epochs) of as many steps as a clip of
# STEP_FRAMES frames: its encode takes about as long as that clip's would.
STEP_FRAMES = 64
# Times in the main phase that rate-aware training retakes the share of its target the modelled symbols have
# (`learned.RateTerm.retarget`: a compression of the network, 0.3 s for 720p's on the CPU).
RATE_RETARGETS = 20

# A preset's epochs are set for about BUDGET_FRAMES frames of BUDGET_PIXELS, where medium's fill issue 17's 5 minutes
# on one GPU. A step on a smaller frame costs less, down to a floor (a small network's step is bound by kernel
# launches), so such a clip gets the epochs that fit that clip's training time: up to MAX_BUDGET_FACTOR times the
# preset's (what was measured: twice medium's epochs gained carphone 0.35-0.81 dB RGB, blackswan 0.23-0.48,
# CiscoVT 0.025 and 0.1 0.24 and 0.42, CiscoVT 0.05 -0.07 / -0.11 over two seeds;
# results/medium_epochs2x_cpu_2026-12-06, results/epoch_budget_2026-12-06, results/blackswan_budget_gpu_2026-12-06;
# three times gained blackswan 0.07-0.11 and lost CiscoVT 0.16-0.17, the small network losing more of its better
# float fit to pruning and quantization: results/budget_cap3_2026-12-06). The step costs are the average training
# step (fine-tuning included) of an encode alone on an H100 at 0.05 bpp: 1280x720 9.15 ms, 176x144 3.9 ms (and
# 854x480 4.8 ms, where the floor meets the line).
BUDGET_FRAMES, BUDGET_PIXELS = 100, 1280 * 720
STEP_SECONDS_AT_BUDGET, STEP_SECONDS_FLOOR = 9.15e-3, 3.9e-3
MAX_BUDGET_FACTOR = 2.0


def budget_factor(frames: int, pixels: int) -> float:
    """How many times the preset's epochs (after STEP_FRAMES) a clip of `frames` frames of `pixels` pixels trains
    in the budget's time: 1 to MAX_BUDGET_FACTOR, to a tenth (so that a clip near the budget keeps the preset's)."""
    step = max(STEP_SECONDS_FLOOR, STEP_SECONDS_AT_BUDGET * pixels / BUDGET_PIXELS)
    factor = BUDGET_FRAMES * STEP_SECONDS_AT_BUDGET / (max(frames, STEP_FRAMES) * step)
    return min(MAX_BUDGET_FACTOR, max(1.0, round(factor, 1)))


def recipe(preset: str, model: str, params: int, optimizer: str | None = None, epochs: int | None = None,
           frames: int | None = None, pixels: int | None = None) -> dict:
    """Optimizer, learning rate and epochs that `preset` gives a `model` network of `params` decoder parameters
    fitted to `frames` frames of `pixels` pixels (`optimizer`, `epochs`: the user's choice, if any; the fine-tuning
    epochs after pruning then keep the preset's share of them, at least one). KeyError for an unknown preset."""
    if optimizer is None:
        optimizer = "adan" if params >= spec_of(model).adan_min_params else "adam"
    preset_epochs, prune_epochs = PRESETS[preset][optimizer]
    if epochs is None:
        epochs = preset_epochs
        if frames is not None and frames < STEP_FRAMES:
            epochs = -(-preset_epochs * STEP_FRAMES // frames)       # rounded up
        if frames is not None and pixels is not None:
            epochs = round(epochs * budget_factor(frames, pixels))
    prune_epochs = max(1, -(-epochs * prune_epochs // preset_epochs))    # the preset's share, rounded up
    lr = spec_of(model).learning_rates.get(optimizer, OPTIMIZER_LR[optimizer])
    return dict(optimizer=optimizer, lr=lr, epochs=epochs, prune_epochs=prune_epochs)


# Settings a user may override by name (`dnv encode --train NAME=VALUE`, `codec.encode(train_options=)`).
TRAIN_OPTIONS = ("epochs", "batch", "lr", "warmup", "loss", "prune_epochs", "finetune_lr", "finetune_pick", "freeze",
                 "enc_dim", "grad_clip", "beta1", "beta2", "optimizer", "amp", "compile_mode", "code_lr_scale", "qat",
                 "rate", "rate_prior", "quant_noise", "plane_weights", "plane_balance", "prune_size_exponent",
                 "prune_at", "rate_from")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
LOSSES = ("l2", "l1ssim")
OPTIMIZERS = ("adam", "adan")


def parse_train_option(text: str) -> tuple[str, object]:
    """"NAME=VALUE" -> (name, value typed like the setting); ValueError with a one-line reason."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in TRAIN_OPTIONS:
        raise ValueError(f"{text!r}: expected NAME=VALUE with NAME one of {', '.join(TRAIN_OPTIONS)}")
    kind = type(getattr(TrainSettings, name))
    raw = raw.strip()
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "on", "off"):
                raise ValueError
            value = raw.lower() in ("true", "1", "on")
        else:
            value = kind(raw)
    except ValueError:
        wanted = {int: "an integer", float: "a number", bool: "true or false"}.get(kind, "text")
        raise ValueError(f"{text!r}: {name} takes {wanted}") from None
    check_train_option(name, value)
    return name, value


def check_train_option(name: str, value) -> None:
    """ValueError (one line) unless `name` is a setting users may override and `value` fits it."""
    if name not in TRAIN_OPTIONS:
        raise ValueError(f"unknown training option {name!r} (choose {', '.join(TRAIN_OPTIONS)})")
    if name == "compile_mode" and value not in COMPILE_MODES:
        raise ValueError(f"compile_mode {value!r}: choose {', '.join(COMPILE_MODES)}")
    if name == "loss" and value not in LOSSES:
        raise ValueError(f"loss {value!r}: choose {' or '.join(LOSSES)}")
    if name == "optimizer" and value not in OPTIMIZERS:
        raise ValueError(f"optimizer {value!r}: choose {' or '.join(OPTIMIZERS)}")
    if name in ("epochs", "batch", "enc_dim") and value < 1:
        raise ValueError(f"{name} must be at least 1")
    if name in ("lr", "code_lr_scale", "finetune_lr") and not value > 0:
        raise ValueError(f"{name} must be positive")
    if name in ("finetune_pick", "quant_noise") and not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1]")
    if name in ("warmup", "beta1", "beta2") and not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1)")
    if name == "rate_from" and not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1]")
    if name == "prune_at" and not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1]")
    if name in ("prune_epochs", "grad_clip", "freeze", "rate_prior", "prune_size_exponent") and value < 0:
        raise ValueError(f"{name} must not be negative")
    if name == "plane_weights":
        planeloss.parse_weights(value)
    if name == "plane_balance" and value not in planeloss.BALANCES:
        raise ValueError(f"plane_balance {value!r}: choose {' or '.join(planeloss.BALANCES)}")


@dataclass
class FitResult:
    decoder: torch.nn.Module
    # What gets stored beside the decoder, by section name (`arch.sections`): CONTENT (+ DIFF) embeddings,
    # DS-NeRV's STATIC and DYNAMIC codes, HiNeRV's grids; float32, CPU.
    tables: dict[str, torch.Tensor]
    train_seconds: float                   # of this run (after a resume: since the resume)
    frames_per_second: float
    train_psnr: float                      # running PSNR of the last epoch (while the weights moved)
    history: list[dict] = field(default_factory=list)
    batch: int = 0                         # the batch at the end (lower than asked after running out of memory)
    rollbacks: int = 0                     # times training diverged and was rolled back
    resumed: bool = False                  # continued from a checkpoint
    steady_frames_per_second: float = math.nan     # after the first epoch (see `steady_rate`)
    rate_model: object = None              # compress.learned.RateModel of rate-aware training, or None
    # The depth(s) quantization-aware fine-tuning ran at (one, or a dict by tensor); None where it did not run.
    qat_bits: object = None

    def evaluated_psnr(self, after: str) -> float | None:
        return evaluated_psnr(self.history, after)

    def float_psnr(self, after: str) -> float:
        return float_psnr(self.history, after)


def evaluated_psnr(history: list[dict], after: str) -> float | None:
    """The float model's exact PSNR over all frames (fp32) after "train" (before pruning) or at the end
    ("final"), from a training history; None where it was not measured (a checkpoint from before)."""
    return next((h["psnr"] for h in reversed(history) if h.get("after") == after), None)


FINETUNE_EVAL = "finetune epoch "     # history name of an evaluation after a fine-tuning epoch (+ its number)


def finetune_evals(history: list[dict], field: str = "psnr") -> dict[int, float]:
    """The fine-tuning epochs evaluated for the choice of the one kept (`finetune_pick`): {epoch: PSNR}, or with
    `field="seconds"`, when each evaluation ended."""
    return {int(h["after"][len(FINETUNE_EVAL):]): h.get(field) for h in history
            if str(h.get("after", "")).startswith(FINETUNE_EVAL)}


def steady_rate(history: list[dict], frames: int) -> float:
    """Training frames/s after the first epoch of the main phase (which holds compiling and CUDA-graph
    capture): the later epochs' frames over the time from the first's end to the last's; NaN with fewer
    than two timed epochs. An epoch undone by a rollback counts its time but not its frames."""
    times = [h.get("seconds") for h in history if h["phase"] == "train"]
    if len(times) < 2 or None in times or times[-1] <= times[0]:
        return math.nan
    return (len(times) - 1) * frames / (times[-1] - times[0])


def float_psnr(history: list[dict], after: str) -> float:
    """`evaluated_psnr`, or where a resumed checkpoint predates it, the running PSNR of the last epoch
    of that point ("train": of the main phase; "final": of any phase); NaN if none."""
    exact = evaluated_psnr(history, after)
    if exact is not None:
        return exact
    phases = ("train",) if after == "train" else ("train", "prune")
    return next((h["psnr"] for h in reversed(history) if h["phase"] in phases), float("nan"))


def pad_frames(frames_u8: torch.Tensor, arch: Arch, device) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, pad_h, pad_w) uint8 on `device`, edges replicated."""
    x = frames_u8.to(device, non_blocking=True).permute(0, 3, 1, 2)
    t, _, h, w = x.shape
    ph, pw = arch.padded_size
    rows = torch.arange(ph, device=device).clamp_(max=h - 1)
    cols = torch.arange(pw, device=device).clamp_(max=w - 1)
    return x[:, :, rows][:, :, :, cols].contiguous()


def lr_at(step: int, total: int, warmup_steps: int, peak: float) -> float:
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_loss(kind: str):
    if kind == "l2":
        return lambda out, ref: F.mse_loss(out, ref)
    if kind == "l1ssim":
        from pytorch_msssim import ssim

        def l1ssim(out, ref):
            win = min(11, (min(out.shape[-2:]) // 2) * 2 - 1)
            return 0.7 * F.l1_loss(out, ref) + 0.3 * (1 - ssim(out, ref, data_range=1.0, win_size=max(win, 3)))
        return l1ssim
    raise ValueError(f"unknown loss {kind!r} (choose {' or '.join(LOSSES)})")


def video_fingerprint(frames_u8: torch.Tensor) -> str:
    """A hash of (a sample of) the frames: tells a checkpoint's video from another."""
    step = max(1, frames_u8.shape[0] // 64)
    sample = frames_u8[::step, ::2, ::2].contiguous().cpu().numpy()
    return hashlib.blake2b(sample.tobytes(), digest_size=16).hexdigest() + f"-{tuple(frames_u8.shape)}"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


# torch.compile caches graphs per code object, so every Trainer of a process shares `_forward_loss`'s
# cache: each new model shape or last-batch size adds one entry. At dynamo's default limit (8), a process
# that encodes several videos or models (benchmarks/models.py hit it on a GPU) silently trains eagerly
# from then on. Graphs of one shape are still reused across segments.
RECOMPILE_LIMIT = 64


def _allow_recompiles() -> None:
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))


# Inductor's settings for the training step's compile, beyond its mode's. Inductor times several launch
# configurations of every pointwise kernel as it first compiles it; without that, on an H200 the cold first step of
# Bunny 0.05's 720p step took 79.0 s instead of 94.1 and the steady step ran as fast (128.6 against 123.4 frames/s;
# benchmarks/results/compile_autotune_adan_gpu_2026-12-06). The max-autotune modes keep the search: they ask for it.
INDUCTOR_OPTIONS = {"triton.autotune_pointwise": False}


def compile_options(mode: str) -> dict:
    """torch.compile's `options` for `mode` (one of COMPILE_MODES): the mode's own settings plus INDUCTOR_OPTIONS
    (torch.compile takes a mode or options, not both)."""
    import torch._inductor

    options = dict(torch._inductor.list_mode_options(mode))
    if not options.get("max_autotune"):
        options.update(INDUCTOR_OPTIONS)
    return options


class Trainer:
    """Fits a decoder and its model's inputs to a video (`fit` runs it). Knows no model: `inputs`, from the
    model's registry entry, says what else is trained and how batches are built."""
    after_step = None    # hook for tests: called with the Trainer after every completed step

    def __init__(self, frames_u8: torch.Tensor, arch: Arch, settings: TrainSettings, device: torch.device,
                 progress: bool = True, log=_stderr, checkpoint=None, resume: bool = False,
                 checkpoint_every: float = 60.0, quantizer=None, rate=None, prior=None, noise_bits=None):
        # `quantizer(decoder_state, tables) -> bits`: the bit depth the file would be quantized at now (rate
        # control's choice: one depth, or a dict of depths by tensor, see `compress.qat`); given, the fine-tuning
        # after pruning is quantization-aware at that depth.
        # `rate`: a compress.learned.RateTerm; with `settings.rate`, the fine-tuning after pruning adds its term.
        # `prior`: a compress.rate_prior.WeightRatePrior, whose term the main phase adds.
        self.prior = prior
        # `noise_bits`: the planned depth, whose rounding step the main phase's noise has (when `settings.quant_noise`).
        self.noise_bits = noise_bits
        torch.manual_seed(settings.seed)
        self.quantizer, self.qat_bits = quantizer, None
        self.file_values = FileValues()    # puts the file's values in the parameters (`_on_file_grid`)
        self.rate, self.rate_on = rate, False
        self.freezer = None     # compress.freeze.OscillationFreezer of the quantization-aware fine-tuning, if any
        self.arch, self.s, self.device, self.progress, self.log = arch, settings, device, progress, log
        self.frames, self.height, self.width = frames_u8.shape[:3]
        self.video = self._place_video(frames_u8)
        self.inputs = spec_of(arch.model).training(arch, self.frames, settings)    # built first (seeded order)
        self.inputs.module.to(device)
        self.decoder = Decoder(arch).to(device)
        if device.type == "cuda":
            self.inputs.module.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)
        self.loss_fn = planeloss.plane_loss(make_loss(settings.loss), arch.color.planes, settings.plane_weights,
                                            settings.plane_balance)
        self.batch_mse = planeloss.batch_mse(arch.color.planes, settings.plane_weights)
        self.frame_psnr = planeloss.frame_psnr(arch.color.planes)
        self.amp = settings.amp and device.type == "cuda"
        self.step_fn = self._forward_loss
        if settings.compile:
            _allow_recompiles()
            options = compile_options(settings.compile_mode)
            self.step_fn = self._compiled_with_fallback(torch.compile(self._forward_loss, options=options))
        self.history: list[dict] = []
        # Where training stands: what a checkpoint and a rollback snapshot hold (`state`).
        self.phase, self.epoch, self.pos, self.order = "train", 0, 0, None
        self.mse_sum = torch.zeros((), device=device)
        self.batch = max(1, min(settings.batch, self.frames))
        self.lr_cap, self.rollbacks, self.masks = math.inf, 0, {}
        # The best fine-tuning epoch so far ({"epoch", "psnr", "modules"}), kept at the end (`finetune_pick`).
        self.best = None
        self.optimizers = self._optimizers()
        self._since = time.perf_counter()
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        self.identity = {
            "settings": {k: v for k, v in asdict(settings).items() if k not in ("compile", "compile_mode")},
            "arch": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(arch).items() if k != "extra"},
            "video": video_fingerprint(frames_u8) if self.checkpoint is not None else None,
        }
        # _stop: the signal (Ctrl-C's SIGINT or SIGTERM) that asked training to stop at the end of the step, or 0.
        # _stepped: whether this process has finished a step (before that there is nothing new to save).
        # good: the state at the end of the last good epoch (what a rollback returns to).
        self.bar, self.resumed, self._stop, self._stepped, self.good = None, False, 0, False, None
        self._saved_at = time.monotonic()
        if resume and self.checkpoint is not None:
            if self.checkpoint.is_file():
                self._resume()
            else:
                log(f"note: no checkpoint at {self.checkpoint}; starting from the beginning")

    def _place_video(self, frames_u8):
        try:
            return pad_frames(frames_u8, self.arch, self.device)
        except torch.OutOfMemoryError:
            pass    # (out of the except block, so that the failed allocation's memory is free)
        recovery.free_cached(self.device)
        self.log(f"note: the video ({gib(frames_u8.numel())}) does not fit in {self.device.type} memory; "
                 "keeping it in host memory (slower)")
        return pad_frames(frames_u8, self.arch, torch.device("cpu"))

    def _optimizers(self) -> list:
        """One optimizer per list of parameter groups the model's inputs ask for (`TrainingInputs.param_groups`)."""
        per_optimizer = self.inputs.param_groups(self.decoder)
        if self.rate_on:    # the entropy models' parameters train with the decoder
            per_optimizer[0] = per_optimizer[0] + [self.rate.param_group()]
        return [self._optimizer(groups) for groups in per_optimizer]

    def _optimizer(self, groups: list[dict]):
        if self.s.optimizer == "adan":
            from optimi import Adan
            # foreach on a GPU: a few multi-tensor kernels per step. (optimi would pick its Triton kernels, one
            # launch per parameter tensor: host time that a CUDA-graph step cannot hide.)
            return Adan(groups, lr=self.s.lr, weight_decay=0.0, eps=1e-8, foreach=self.device.type == "cuda")
        return torch.optim.Adam(groups, lr=self.s.lr, betas=(self.s.beta1, self.s.beta2),
                                fused=self.device.type == "cuda")

    def parameters(self) -> list[torch.Tensor]:
        """Every trained tensor, in the optimizers' order."""
        return [p for opt in self.optimizers for g in opt.param_groups for p in g["params"]]

    def _learned_tables(self) -> dict[str, torch.Tensor]:
        """The tables that are parameters (and so get a learned entropy model in rate-aware training)."""
        return self.inputs.learned_table_params()

    def _compiled_with_fallback(self, compiled):
        """Use the compiled step; if compiling fails (no compiler, unsupported op), say so and run eagerly."""
        def step(*args):
            try:
                return compiled(*args)
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to the same maths
                self.say(f"note: torch.compile failed ({type(e).__name__}); training without it")
                self.step_fn = self._forward_loss
                return self._forward_loss(*args)
        return step

    def _forward_loss(self, *batch):
        out, ref = self._predict(*batch)
        mse = self.batch_mse(out, ref)
        loss = self.loss_fn(out, ref)
        if self.rate_on:
            loss = loss + self.rate.penalty(self.decoder, self._learned_tables())
        if self.prior is not None and self.phase == "train":
            loss = loss + self.prior.penalty(self.decoder, mse, self._steps_done())
        return loss, mse

    def _predict(self, *batch, amp=None):
        """(output, reference) frames of a batch, cropped to the video's own size, float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp if amp is None else amp):
            inputs = self.inputs.decoder_inputs(batch, self.rate if self.rate_on else None)
            out = self._decode(*inputs)
        ref = self.inputs.reference(batch)
        return out[..., : self.height, : self.width].float(), ref[..., : self.height, : self.width]

    def _decode(self, *inputs):
        """The decoder on its inputs; in rate-aware fine-tuning, with its weights rounded to the learned steps.
        (Quantization-aware fine-tuning puts the file's weights in the decoder around the step: `_on_file_grid`.)"""
        if self.rate_on:
            return torch.func.functional_call(self.decoder, self.rate.decoder_params(self.decoder), inputs)
        return self.decoder(*inputs)

    def _batch(self, idx):
        return self.inputs.batch(self.video, idx, self.device)

    def say(self, message: str) -> None:
        """A log line that does not break the progress bar."""
        if self.bar is not None:
            self.bar.clear()
        self.log(message)
        if self.bar is not None:
            self.bar.refresh()

    # --- the loop ---------------------------------------------------------------------------------

    def _step(self, idx, lr: float) -> torch.Tensor:
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
        with self._on_file_grid(step=True):     # (quantization-aware: forward and backward on the file's values)
            loss, mse = self.step_fn(*self._batch(idx))
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
        if self.s.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.s.grad_clip)
        for opt in self.optimizers:
            opt.step()
        apply_masks(self.decoder, self.masks)
        if self.freezer is not None:
            self.freezer.step(self.decoder, self._learned_tables(), self.qat_bits)
        if self.rate_on:
            self.rate.after_step(self.decoder, self._learned_tables())
        return mse.detach()

    def _steps_done(self) -> int:
        """Steps taken in the current phase (what its schedules are indexed by)."""
        return self.epoch * math.ceil(self.frames / self.batch) + math.ceil(self.pos / self.batch)

    def _phase(self, epochs: int, peak_lr: float, warmup: float) -> None:
        """Run the current phase's epochs from where training stands."""
        # The best running PSNR so far, kept apart by `_regime`.
        best = collections.defaultdict(lambda: -math.inf)
        for h in self.history:
            if h["phase"] == self.phase:
                regime = self._regime(h["epoch"] - 1)
                best[regime] = max(best[regime], h["psnr"])
        self.good = self.state(copy=True)

        def rate(step: int, per_epoch: int) -> float:     # the schedule at `step`, under a rollback's cap
            total = epochs * per_epoch
            return min(lr_at(step, total, int(warmup * total), peak_lr), self.lr_cap)
        while self.epoch < epochs:
            if self._rate_main() and not self.rate_on:
                self._start_rate(self.noise_bits)
            if self.order is None:
                self.order = torch.randperm(self.frames, device=self.device)
                self.pos, self.mse_sum = 0, torch.zeros((), device=self.device)
            while self.pos < self.frames:
                idx = self.order[self.pos:self.pos + self.batch]
                per_epoch = math.ceil(self.frames / self.batch)
                lr = rate(self._steps_done(), per_epoch)
                oom = None
                try:
                    mse = self._step(idx, lr)
                except torch.OutOfMemoryError as e:
                    oom = str(e)
                if oom is not None:     # handled here, where the failed step's tensors are freed
                    recovery.lower_batch(self, oom)
                    continue
                self.mse_sum += mse * idx.numel()
                self.pos += idx.numel()
                if self.bar is not None:
                    self.bar.update(idx.numel())
                self._after_step()
            psnr = -10 * math.log10(max(float(self.mse_sum) / self.frames, 1e-12))
            regime = self._regime()
            if recovery.diverged(psnr, best[regime]):
                per_epoch = math.ceil(self.frames / self.batch)
                first = self.epoch * per_epoch
                recovery.roll_back(self, psnr, best[regime],
                                   max(rate(step, per_epoch) for step in range(first, first + per_epoch)))
                continue
            self.epoch, self.order = self.epoch + 1, None
            self.history.append({"phase": self.phase, "epoch": self.epoch, "psnr": psnr, "seconds": self._clock()})
            if self.freezer is not None:
                self.history[-1]["frozen"] = self.freezer.frozen()
                self.history[-1]["freeze_seconds"] = round(self.freezer.seconds, 3)
            best[regime] = max(best[regime], psnr)
            if (self.phase == "train" and self.s.prune > 0 and self.s.prune_at < 1 and not self.masks
                    and self.epoch >= round(self.s.prune_at * epochs)):
                self._set_masks()
                # (The next epoch's running PSNR dips by up to 1.3 dB, results/pruning_cpu_2026-12-05/: far from
                # what the divergence check takes for a divergence.)
                self.say(f"pruned {self.s.prune:.0%} of the weights after epoch {self.epoch}")
            if self.rate_on and self.phase == "train" and self.epoch % max(1, epochs // RATE_RETARGETS) == 0:
                self.rate.retarget(self.decoder, self._learned_tables())
            if self._picking(epochs):
                self._keep_if_best()
            self.good = self.state(copy=True)
            if self.bar is not None:
                self.bar.set_postfix_str(f"{self.phase} epoch {self.epoch}/{epochs} PSNR {psnr:.2f} dB")

    def _picking(self, epochs: int) -> bool:
        """Whether the epoch just ended is one of the quantization-aware fine-tuning's last `finetune_pick` share.
        (Not with the rate term: its epochs differ in rate as well, which the evaluation does not see.)"""
        share = self.s.finetune_pick
        return (self.phase == "prune" and self.qat_bits is not None and not self.rate_on and share > 0
                and self.epoch > epochs - max(1, round(epochs * share)))

    def _keep_if_best(self) -> None:
        """Evaluate the quantized network as the file is measured; keep a copy of it if it is the best so far."""
        self._evaluate(f"{FINETUNE_EVAL}{self.epoch}")
        psnr = self.history[-1]["psnr"]
        if self.best is None or psnr > self.best["psnr"]:
            modules = {"inputs": self.inputs.module.state_dict(), "decoder": self.decoder.state_dict()}
            self.best = {"epoch": self.epoch, "psnr": psnr, "modules": checkpoint.cloned(modules)}

    def _restore_best(self) -> None:
        """At the end of the fine-tuning, go back to its best evaluated epoch if that was not the last; its
        evaluation is the final one."""
        if self.best is None:
            return
        if self.best["epoch"] != self.epoch:
            self.inputs.module.load_state_dict(self.best["modules"]["inputs"])
            self.decoder.load_state_dict(self.best["modules"]["decoder"])
            last = finetune_evals(self.history)[self.epoch]
            self.say(f"kept fine-tuning epoch {self.best['epoch']} ({self.best['psnr']:.2f} dB; the last, "
                     f"{self.epoch}, gave {last:.2f} dB)")
        self.history.append({"phase": "eval", "after": "final", "psnr": self.best["psnr"], "seconds": self._clock()})

    def _after_step(self) -> None:
        self._stepped = True
        try:
            if self.after_step is not None:
                self.after_step()
            if self._stop:
                raise signal_interrupt(self._stop)
        except KeyboardInterrupt as e:
            if self.checkpoint is None or not self.save():
                raise
            raise Interrupted(self.checkpoint, getattr(e, "signum", signal.SIGINT)) from None
        if (self.checkpoint is not None and self.checkpoint_every > 0
                and time.monotonic() - self._saved_at >= self.checkpoint_every):
            self.save()

    @contextlib.contextmanager
    def _signals(self):
        """While training with a checkpoint: Ctrl-C / SIGTERM stop at the end of the step (twice: at once). Before
        this process's first step has ended they stop at once: that step compiles (a minute or more on a GPU,
        several when encodes share one) and there is nothing new to save; a checkpoint resumed from stays as it was."""
        if self.checkpoint is None or threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum, _frame):
            if not self._stepped:
                raise Interrupted(self.checkpoint, signum) if self.resumed else signal_interrupt(signum)
            if self._stop:
                raise signal_interrupt(signum)
            self._stop = signum

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _set_masks(self) -> None:
        """Prune: the masks that the steps from here on keep applying."""
        self.masks = magnitude_masks(self.decoder, self.s.prune, self.s.prune_size_exponent)
        apply_masks(self.decoder, self.masks)

    def _start_pruning(self) -> None:
        s = self.s
        if s.prune > 0:
            if not self.masks:      # (unless the main phase set them, `prune_at`)
                self._set_masks()
            if s.prune_epochs == 0:
                self.masks = {}
        # The fine-tuning (quantization-aware where a quantizer is given) runs with or without pruning.
        self.phase = "prune" if s.prune_epochs > 0 else "done"
        if self.phase == "prune" and self.rate_on:     # (started in the main phase: from noise to rounding)
            self.qat_bits = self.rate.bits
            self.rate.harden(self.decoder, self._learned_tables())
            self.say(f"rate-aware fine-tuning on rounded values, lambda {self.rate.lam:.3g}")
        elif self.phase == "prune" and (s.qat or s.rate) and self.quantizer is not None:
            state = {k: v.detach().float().cpu() for k, v in self.decoder.state_dict().items()}
            self.qat_bits = self.quantizer(state, self.tables())
            if s.rate and self.rate is not None:
                self._start_rate(self.qat_bits)
            else:
                self.say(f"quantization-aware fine-tuning at {describe_bits(self.qat_bits)}")
                self.freezer = OscillationFreezer(s.freeze) if s.freeze > 0 else None
        self.epoch, self.pos, self.order = 0, 0, None
        self.optimizers = self._optimizers()

    def _start_rate(self, bits: float) -> None:
        """Rate-aware training from here on (`bits`: the depth of the tensors it does not model); in the main phase
        on noisy values, with the entropy models' parameters joining the running optimizer."""
        mse = next((10 ** (-h["psnr"] / 10) for h in reversed(self.history) if "psnr" in h), 1e-3)
        self.rate.start(self.decoder, self._learned_tables(), bits, mse, noisy=self.phase == "train")
        self.rate_on = True
        if self.phase == "train":
            self.optimizers[0].add_param_group(self.rate.param_group())
        self.say(f"rate-aware {'training' if self.phase == 'train' else 'fine-tuning'} from {bits:.3g} bits, "
                 f"lambda {self.rate.lam:.3g}")

    def _rate_main(self, epoch: int | None = None) -> bool:
        """Whether epoch `epoch` (0-based; the current one by default) of the main phase is rate-aware."""
        epoch = self.epoch if epoch is None else epoch
        return (self.phase == "train" and self.s.rate and self.rate is not None and self.noise_bits is not None
                and self.s.rate_from < 1 and epoch >= self.s.rate_from * self.s.epochs)

    def _regime(self, epoch: int | None = None) -> tuple[bool, bool]:
        """What an epoch's running PSNR is comparable with (the divergence check): epochs with the same noise and
        rate term. Their onsets lower it by up to 6 dB (4-bit plans), which is no divergence."""
        return self._noisy(epoch), self._rate_main(epoch)

    def fit(self) -> FitResult:
        s = self.s
        epochs = {"train": s.epochs, "prune": s.prune_epochs}
        total_frames = sum(epochs.values()) * self.frames
        before = {"train": 0, "prune": epochs["train"]}.get(self.phase)    # epochs of earlier phases
        done = total_frames if before is None else (before + self.epoch) * self.frames + self.pos
        if self.progress:
            from tqdm import tqdm
            # On a terminal the bar redraws often; in a log file, one line every 30 s is enough.
            interval = 0.5 if sys.stderr.isatty() else 30.0
            self.bar = tqdm(total=total_frames, initial=done, unit="frame", desc="training", dynamic_ncols=True,
                            leave=True, mininterval=interval, maxinterval=max(10.0, interval))
        self._since = time.perf_counter()
        try:
            with self._signals(), cudnn_benchmark(self.device.type == "cuda" and CUDNN_BENCHMARK):
                if self.phase == "train":
                    self._phase(s.epochs, s.lr, s.warmup)
                    self._evaluate("train")
                    if self.prior is not None:
                        with torch.no_grad():
                            estimate = float(self.prior.bits(self.decoder, noise=False)) / 8
                        self.say(f"rate prior: the weights' estimate {estimate:,.0f} bytes at the planned depth "
                                 f"(the file's target {self.prior.target_bits / 8:,.0f})")
                    self._start_pruning()
                if self.phase == "prune":
                    self._phase(s.prune_epochs, s.lr * s.finetune_lr, 0.0)
                    self._restore_best()
                    self.phase = "done"
                if evaluated_psnr(self.history, "final") is None:
                    self._evaluate("final")
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                if self.checkpoint is not None:
                    self.save()     # an interrupt from here on resumes without training again
            if self._stop:          # Ctrl-C after the last step
                raise Interrupted(self.checkpoint, self._stop)
        finally:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        seconds = time.perf_counter() - self._since
        tables = self.tables()
        self.decoder.eval()
        running = [h["psnr"] for h in self.history if h["phase"] in ("train", "prune")]
        psnr = running[-1] if running else float("nan")
        return FitResult(self.decoder.float().to(memory_format=torch.contiguous_format), tables, seconds,
                         (total_frames - done) / max(seconds, 1e-9), psnr, self.history,
                         self.batch, self.rollbacks, self.resumed,
                         math.nan if self.resumed else steady_rate(self.history, self.frames),
                         self.rate.model if self.rate_on else None, self.qat_bits)

    @torch.no_grad()
    def _evaluate(self, after: str) -> None:
        """The float model's PSNR over every frame (fp32, in eval mode, per frame then averaged; RGB, or YUV 6:1:1 as
        the report measures the file: `planeloss.frame_psnr`), put in the history. The epochs' own PSNRs are running
        figures taken while the weights move (on the loss's weighted MSE)."""
        self.inputs.module.eval()
        self.decoder.eval()
        psnrs = []
        with self._on_file_grid():
            for i in range(0, self.frames, self.batch):
                idx = torch.arange(i, min(i + self.batch, self.frames), device=self.device)
                out, ref = self._predict(*self._batch(idx), amp=False)
                psnrs.append(self.frame_psnr(out.clamp(0, 1), ref))
        self.inputs.module.train()
        self.decoder.train()
        self.history.append({"phase": "eval", "after": after, "psnr": float(torch.cat(psnrs).mean()),
                             "seconds": self._clock()})

    @contextlib.contextmanager
    def _on_file_grid(self, step: bool = False):
        """During quantization-aware fine-tuning: the decoder's weights and the learnable tables hold the values the
        file would store, and their trained values come back after (`flatgrid.FileValues`: the straight-through
        estimator by swapping, so that the step compiled for the main phase serves unchanged). During a training
        `step` of the main phase's noisy share: those values plus the planned depth's rounding noise instead."""
        if step and self._noisy():
            with self.file_values(self.decoder, self._learned_tables(), self.noise_bits, noise=True):
                yield
            return
        if self.qat_bits is None or self.rate_on:
            yield
            return
        with self.file_values(self.decoder, self._learned_tables(), self.qat_bits):
            yield

    def _noisy(self, epoch: int | None = None) -> bool:
        """Whether epoch `epoch` (0-based; the current one by default) of the current phase trains with rounding
        noise: the main phase's last `settings.quant_noise` share."""
        epoch = self.epoch if epoch is None else epoch
        return (self.phase == "train" and self.noise_bits is not None and self.s.quant_noise > 0
                and epoch >= (1 - self.s.quant_noise) * self.s.epochs)

    def _clock(self) -> float:
        """Seconds since this run's `fit` started (taken where the device has just been waited for: an epoch's
        PSNR or an evaluation was read back), so a history tells the first epoch's compiling from the rest."""
        return round(time.perf_counter() - self._since, 3)

    @torch.no_grad()
    def tables(self) -> dict[str, torch.Tensor]:
        """What the file stores beside the decoder, by section name (float32, CPU): what gets quantized."""
        # (encoders run in batches, smaller where training had to lower its batch for memory)
        return self.inputs.tables(self.video, self.device, min(16, 8 * self.batch))

    # --- state: checkpoints and rollback snapshots ------------------------------------------------

    def state(self, copy: bool = False) -> dict:
        """Everything training needs to go on from here, as a tree of state dicts (what `train.checkpoint`
        saves); `copy`: sharing no tensor with the training (a rollback snapshot)."""
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "modules": {"inputs": self.inputs.module.state_dict(), "decoder": self.decoder.state_dict()},
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "masks": dict(self.masks),
            "loop": {"phase": self.phase, "epoch": self.epoch, "pos": self.pos, "batch": self.batch,
                     "order": self.order, "mse_sum": self.mse_sum, "history": [dict(h) for h in self.history]},
            "recovery": {"lr_cap": self.lr_cap, "rollbacks": self.rollbacks},
            "qat_bits": self.qat_bits,
            "finetune_best": self.best,
            "rate": self.rate.model.state_dict() if self.rate_on else None,
            "freeze": self.freezer.state_dict() if self.freezer is not None else None,
            "rng": rng,
        }
        return checkpoint.cloned(state) if copy else state

    def load_state(self, state: dict, rng: bool = True) -> None:
        """Go on from `state` (from `state` or a checkpoint); `rng`: with its random number generators."""
        state = checkpoint.cloned(state)        # never alias a snapshot
        loop = state["loop"]
        self.phase, self.epoch, self.pos, self.batch = loop["phase"], loop["epoch"], loop["pos"], loop["batch"]
        self.history = [dict(h) for h in loop["history"]]
        self.order = None if loop["order"] is None else loop["order"].to(self.device)
        self.mse_sum = loop["mse_sum"].to(self.device)
        self.lr_cap, self.rollbacks = state["recovery"]["lr_cap"], state["recovery"]["rollbacks"]
        self.qat_bits = state["qat_bits"]
        self.best = state.get("finetune_best")     # (absent from checkpoints written before it existed)
        self.inputs.module.load_state_dict(state["modules"]["inputs"])
        self.decoder.load_state_dict(state["modules"]["decoder"])
        self.masks = {k: v.to(self.device) for k, v in state["masks"].items()}
        freeze_state = state.get("freeze")     # (absent from checkpoints written before it existed)
        self.freezer = None
        if freeze_state is not None:
            self.freezer = OscillationFreezer(self.s.freeze)
            self.freezer.load_state_dict(freeze_state, self.device)
        rate_state = state.get("rate")
        self.rate_on = rate_state is not None and self.rate is not None
        if self.rate_on:
            bits = self.noise_bits if self.phase == "train" else self.qat_bits
            self.rate.load_state(self.decoder, self._learned_tables(), bits,
                                 {k: v.to(self.device) for k, v in rate_state.items()}, noisy=self.phase == "train")
        self.optimizers = self._optimizers()
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError(f"{len(state['optimizers'])} optimizers saved, {len(self.optimizers)} here")
        for opt, saved in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(saved)
        if rng:
            torch.set_rng_state(state["rng"]["cpu"])
            if self.device.type == "cuda" and "cuda" in state["rng"]:
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)

    def save(self) -> bool:
        """Write the training state to the checkpoint file (`train.checkpoint.write`: atomically).

        A state whose epoch has gone NaN/inf is not saved; the last good one is. A checkpoint that
        cannot be written (disk full, no permission) is said on the log and training goes on.
        """
        state = self.state() if torch.isfinite(self.mse_sum) or self.good is None else self.good
        self._saved_at = time.monotonic()
        try:
            checkpoint.write(self.checkpoint, self.identity, state)
            return True
        except (OSError, RuntimeError) as e:
            reason = " ".join(str(getattr(e, "strerror", None) or e).split())
            self.say(f"note: could not write the checkpoint {self.checkpoint} ({reason}); training goes on")
            return False

    def _resume(self) -> None:
        path = self.checkpoint
        state = checkpoint.read(path, self.identity)
        try:
            self.load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise TrainingError(f"cannot resume: {path} does not fit this model ({type(e).__name__})") from None
        self.resumed = True
        where = "training done" if self.phase == "done" else \
            f"{self.phase} epoch {self.epoch + 1}, {self.pos}/{self.frames} frames in"
        self.log(f"resuming from {path} ({where})")


# The names earlier code imports: one loop serves every model.
Fitter = CodeFitter = Trainer


@contextlib.contextmanager
def cudnn_benchmark(on: bool):
    """cuDNN's algorithm search on (or as it was) inside the block, as it was after it."""
    cudnn = torch.backends.cudnn
    before = cudnn.benchmark
    cudnn.benchmark = on or before
    try:
        yield
    finally:
        cudnn.benchmark = before


def fit(frames_u8: torch.Tensor, arch: Arch, settings: TrainSettings, device: torch.device,
        progress: bool = True, **options) -> FitResult:
    """Fit a network to the frames. `options`: log, checkpoint, resume, checkpoint_every, quantizer (see Trainer)."""
    return Trainer(frames_u8, arch, settings, device, progress, **options).fit()
