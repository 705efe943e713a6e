"""Fitting a network to one video: the training loop (device, precision, schedule, pruning, progress,
checkpoints, recovery).

The whole video stays on the device as uint8 (T, 3, pad_h, pad_w) (in host memory if it does not
fit there); each step gathers a batch of frames and their neighbours, runs encoders + decoder, and
takes the loss on the original (unpadded) area only. After the main schedule the decoder is pruned
by global magnitude and fine-tuned with the mask held fixed. The result is the float decoder and
the embeddings of every frame.

A long encode survives trouble:
- Checkpoints: every `checkpoint_every` seconds, on Ctrl-C or SIGTERM (at the end of the running
  step) and when training ends, the whole state (networks, optimizer, pruning masks, position in
  the schedule, RNG) is written atomically to a safetensors file; `resume=True` continues from it
  at the same step, bit for bit on a CPU. A checkpoint belongs to one video, architecture and set
  of training settings; another encode refuses it with one line.
- Out of memory: a step that runs out of GPU memory is retried at half the batch, and the log says
  so; at batch 1 a TrainingError names the memory needed.
- Divergence: an epoch whose loss is NaN/inf, or whose PSNR falls more than DIVERGENCE_DB below the
  best of its phase (a known failure of NeRV training), is undone: the last good state comes back,
  the learning rate is capped at half the highest rate of the failed epoch, and the log says so;
  after MAX_ROLLBACKS, a TrainingError. A cap, not a scale: once the schedule decays below it,
  training follows the schedule again, instead of running the whole rest of it at half rate.

Models whose inputs are learned tables (`ModelSpec.learned_tables`: DS-NeRV's codes, HiNeRV's grids)
train with `CodeFitter`: no encoders, the tables are parameters trained with the decoder, and each
step reads them at the batch's frame times.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import planeloss
from .compress.prune import apply_masks, magnitude_masks
from .compress.qat import quantized_parameters
from .memory import available_bytes, decode_bytes_per_frame, gib
from .models import Arch, Decoder, spec_of
from .models.dsnerv import Codes
from .models.encoders import Encoders
from .outputs import file_mode, temp_file

DIVERGENCE_DB = 5.0       # an epoch this far below the best PSNR of its phase has diverged
MAX_ROLLBACKS = 4
CHECKPOINT_FORMAT = 3     # 3: learnable tables named by section, the quantization-aware tuning's bit depth
# Flags of an optimizer's parameter groups that a checkpoint keeps (optimi's: whether the group's state, its step
# count included, has been set up, and the kernels it chose).
OPTIMIZER_GROUP_FLAGS = ("setup", "triton", "foreach", "kahan_sum")
# Let cuDNN time its algorithms for each convolution shape on the first steps and keep the fastest: every
# training step has the same shapes, so the search pays back at once (measured: benchmarks/train_probe.py).
CUDNN_BENCHMARK = True


# Epochs and fine-tuning epochs after pruning, per preset and optimizer; like x264's presets, slower means better.
# Adan's medium is the recipe that reached the paper's 3M Bunny figure (38.09 dB) in under 3 minutes of training
# on an H200: 38.28-38.29 dB in 175-178 s with fine-tuning (benchmarks/results/bunny_adan_2026-12-02).
PRESETS = {
    "fast": {"adam": (100, 10), "adan": (100, 10)},
    "medium": {"adam": (300, 30), "adan": (210, 21)},
    "slow": {"adam": (600, 60), "adan": (600, 60)},
}
# The peak learning rate of each optimizer where none is given (`--lr`, `--train lr=`): at 4e-3 Adam diverges.
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
    enc_dim: int = 64             # encoder width (paper: 64)
    grad_clip: float = 1.0
    beta1: float = 0.9            # Adam's first beta (NeRV's and DNeRV's code use 0.5: it diverged here)
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
    plane_weights: str = planeloss.DEFAULT_WEIGHTS    # Y:U:V weights of the loss on YUV 4:2:0 planes (planeloss)
    # What the plane weights weigh: the planes' losses ("mse") or their logarithms ("psnr", planeloss). On the CPU
    # (carphone and CiscoVT crops, 300 epochs, 0.3 bpp) "mse" lost 0.3-1.4 dB of RGB and YUV PSNR to RGB coding, its
    # chroma starved; "psnr" gained 0.4-0.6 dB RGB and 0.8-1.4 dB YUV (benchmarks/results/yuv420_cpu_smoke_2026-12-02).
    plane_balance: str = "psnr"


def recipe(preset: str, model: str, params: int, optimizer: str | None = None, epochs: int | None = None) -> dict:
    """Optimizer, learning rate and epochs that `preset` gives a `model` network of `params` decoder parameters
    (`optimizer`, `epochs`: the user's choice, if any; the fine-tuning epochs after pruning then keep the preset's
    share of them, at least one). KeyError for an unknown preset."""
    if optimizer is None:
        optimizer = "adan" if params >= spec_of(model).adan_min_params else "adam"
    preset_epochs, prune_epochs = PRESETS[preset][optimizer]
    if epochs is not None:
        prune_epochs = max(1, -(-epochs * prune_epochs // preset_epochs))    # rounded up
    else:
        epochs = preset_epochs
    return dict(optimizer=optimizer, lr=OPTIMIZER_LR[optimizer], epochs=epochs, prune_epochs=prune_epochs)


# Settings a user may override by name (`dnv encode --train NAME=VALUE`, `codec.encode(train_options=)`).
TRAIN_OPTIONS = ("epochs", "batch", "lr", "warmup", "loss", "prune_epochs", "enc_dim", "grad_clip", "beta1",
                 "optimizer", "amp", "compile_mode", "code_lr_scale", "qat", "plane_weights",
                 "plane_balance")
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
    if name in ("lr", "code_lr_scale") and not value > 0:
        raise ValueError(f"{name} must be positive")
    if name in ("warmup", "beta1") and not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1)")
    if name in ("prune_epochs", "grad_clip") and value < 0:
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

    def evaluated_psnr(self, after: str) -> float | None:
        return evaluated_psnr(self.history, after)

    def float_psnr(self, after: str) -> float:
        return float_psnr(self.history, after)


def evaluated_psnr(history: list[dict], after: str) -> float | None:
    """The float model's exact PSNR over all frames (fp32) after "train" (before pruning) or at the end
    ("final"), from a training history; None where it was not measured (a checkpoint from before)."""
    return next((h["psnr"] for h in reversed(history) if h.get("after") == after), None)


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


class TrainingError(Exception):
    """Training cannot go on (out of memory at batch 1, diverging again and again, a checkpoint that
    belongs to another encode): one line saying why."""


def signal_interrupt(signum: int) -> KeyboardInterrupt:
    """The KeyboardInterrupt that a signal raises; `signum` says which (Ctrl-C exits 130, SIGTERM 143)."""
    interrupt = KeyboardInterrupt()
    interrupt.signum = int(signum)
    return interrupt


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (`signum`) during training, raised once the state is saved to `checkpoint`."""

    def __init__(self, checkpoint, signum: int = signal.SIGINT):
        super().__init__(f"interrupted; training state saved to {checkpoint}")
        self.checkpoint = Path(checkpoint)
        self.signum = int(signum)


def pad_frames(frames_u8: torch.Tensor, arch: Arch, device) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, pad_h, pad_w) uint8 on `device`, edges replicated."""
    x = frames_u8.to(device, non_blocking=True).permute(0, 3, 1, 2)
    t, _, h, w = x.shape
    ph, pw = arch.padded_size
    rows = torch.arange(ph, device=device).clamp_(max=h - 1)
    cols = torch.arange(pw, device=device).clamp_(max=w - 1)
    return x[:, :, rows][:, :, :, cols].contiguous()


def neighbours(video: torch.Tensor, idx: torch.Tensor):
    """Float frames t-1, t, t+1 for a batch of indices (ends repeat, so their differences are zero)."""
    last = video.shape[0] - 1
    get = lambda i: video[i].float().div_(255.0)  # noqa: E731
    return get((idx - 1).clamp(min=0)), get(idx), get((idx + 1).clamp(max=last))


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


def _differences(saved: dict, current: dict) -> str:
    keys = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    return ", ".join(f"{k} {saved.get(k)} there, {current.get(k)} here" for k in keys[:3])


# torch.compile caches graphs per code object, so every Fitter of a process shares `_forward_loss`'s
# cache: each new model shape or last-batch size adds one entry. At dynamo's default limit (8), a process
# that encodes several videos or models (benchmarks/models.py hit it on a GPU) silently trains eagerly
# from then on. Graphs of one shape are still reused across segments.
RECOMPILE_LIMIT = 64


def _allow_recompiles() -> None:
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))


class Fitter:
    after_step = None    # hook for tests: called with the Fitter after every completed step

    def __init__(self, frames_u8: torch.Tensor, arch: Arch, settings: TrainSettings, device: torch.device,
                 progress: bool = True, log=_stderr, checkpoint=None, resume: bool = False,
                 checkpoint_every: float = 60.0, quantizer=None):
        # `quantizer(decoder_state, tables) -> bits`: the bit depth the file would be quantized at now (rate
        # control's choice); given, the fine-tuning after pruning is quantization-aware at that depth.
        torch.manual_seed(settings.seed)
        self.quantizer, self.qat_bits = quantizer, None
        self.arch, self.s, self.device, self.progress, self.log = arch, settings, device, progress, log
        self.frames, self.height, self.width = frames_u8.shape[:3]
        self.video = self._place_video(frames_u8)
        self.encoders = self._make_inputs().to(device)  # what gives the decoder its inputs
        self.decoder = Decoder(arch).to(device)
        if device.type == "cuda":
            self.encoders.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)
        self.loss_fn = planeloss.plane_loss(make_loss(settings.loss), arch.color.planes, settings.plane_weights,
                                            settings.plane_balance)
        self.batch_mse = planeloss.batch_mse(arch.color.planes, settings.plane_weights)
        self.frame_mse = planeloss.frame_mse(arch.color.planes, settings.plane_weights)
        self.amp = settings.amp and device.type == "cuda"
        self.step_fn = self._forward_loss
        if settings.compile:
            _allow_recompiles()
            mode = None if settings.compile_mode == "default" else settings.compile_mode
            self.step_fn = self._compiled_with_fallback(torch.compile(self._forward_loss, mode=mode))
        self.history: list[dict] = []
        # Where training stands: what a checkpoint and a rollback snapshot hold.
        self.phase, self.epoch, self.pos, self.order = "train", 0, 0, None
        self.mse_sum = torch.zeros((), device=device)
        self.batch = max(1, min(settings.batch, self.frames))
        self.lr_cap, self.rollbacks, self.masks = math.inf, 0, {}
        self.opt = self._optimizer()
        self._since = time.perf_counter()
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        self.identity = {
            "format": CHECKPOINT_FORMAT,
            "settings": {k: v for k, v in asdict(settings).items() if k not in ("compile", "compile_mode")},
            "arch": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(arch).items() if k != "extra"},
            "video": video_fingerprint(frames_u8) if self.checkpoint is not None else None,
        }
        # _stop: the signal (Ctrl-C's SIGINT or SIGTERM) that asked training to stop at the end of the step, or 0.
        self.bar, self.resumed, self._stop, self._good = None, False, 0, None
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
        _free_cached(self.device)
        self.log(f"note: the video ({gib(frames_u8.numel())}) does not fit in {self.device.type} memory; "
                 "keeping it in host memory (slower)")
        return pad_frames(frames_u8, self.arch, torch.device("cpu"))

    def _batch(self, idx):
        if self.video.device != idx.device:
            return tuple(x.to(self.device, non_blocking=True) for x in neighbours(self.video, idx.cpu()))
        return neighbours(self.video, idx)

    def _optimizer(self):
        if self.s.optimizer == "adan":
            from optimi import Adan
            # foreach on a GPU: a few multi-tensor kernels per step. (optimi would pick its Triton kernels, one
            # launch per parameter tensor: host time that a CUDA-graph step cannot hide.)
            return Adan(self._param_groups(), lr=self.s.lr, weight_decay=0.0, eps=1e-8,
                        foreach=self.device.type == "cuda")
        return torch.optim.Adam(self._param_groups(), lr=self.s.lr, betas=(self.s.beta1, 0.999),
                                fused=self.device.type == "cuda")

    def _make_inputs(self) -> torch.nn.Module:
        return Encoders(self.arch, self.s.enc_dim)

    def _param_groups(self) -> list[dict]:
        return [{"params": list(self.encoders.parameters()) + list(self.decoder.parameters())}]

    def _compiled_with_fallback(self, compiled):
        """Use the compiled step; if compiling fails (no compiler, unsupported op), say so and run eagerly."""
        def step(*args):
            try:
                return compiled(*args)
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to the same maths
                self._say(f"note: torch.compile failed ({type(e).__name__}); training without it")
                self.step_fn = self._forward_loss
                return self._forward_loss(*args)
        return step

    def _forward_loss(self, *batch):
        out, ref = self._predict(*batch)
        mse = self.batch_mse(out, ref)
        return self.loss_fn(out, ref), mse

    def _predict(self, prev, cur, nxt, amp=None):
        """(output, reference) frames of a batch, cropped to the video's own size, float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp if amp is None else amp):
            out = self._decode(*self.encoders(prev, cur, nxt))
        return out[..., : self.height, : self.width].float(), cur[..., : self.height, : self.width]

    def _decode(self, *inputs):
        """The decoder on its inputs; during quantization-aware fine-tuning, with the file's weights."""
        if self.qat_bits is None:
            return self.decoder(*inputs)
        return torch.func.functional_call(self.decoder, quantized_parameters(self.decoder, self.qat_bits), inputs)

    def _say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.clear()
        self.log(message)
        if self.bar is not None:
            self.bar.refresh()

    # --- the loop ---------------------------------------------------------------------------------

    def _step(self, idx, lr: float) -> torch.Tensor:
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        loss, mse = self.step_fn(*self._batch(idx))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.s.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                           self.s.grad_clip)
        self.opt.step()
        apply_masks(self.decoder, self.masks)
        return mse.detach()

    def _phase(self, epochs: int, peak_lr: float, warmup: float) -> None:
        """Run the current phase's epochs from where training stands."""
        best = max((h["psnr"] for h in self.history if h["phase"] == self.phase), default=-math.inf)
        self._good = self._state(copy=True)

        def rate(step: int, per_epoch: int) -> float:     # the schedule at `step`, under a rollback's cap
            total = epochs * per_epoch
            return min(lr_at(step, total, int(warmup * total), peak_lr), self.lr_cap)
        while self.epoch < epochs:
            if self.order is None:
                self.order = torch.randperm(self.frames, device=self.device)
                self.pos, self.mse_sum = 0, torch.zeros((), device=self.device)
            while self.pos < self.frames:
                idx = self.order[self.pos:self.pos + self.batch]
                per_epoch = math.ceil(self.frames / self.batch)
                lr = rate(self.epoch * per_epoch + math.ceil(self.pos / self.batch), per_epoch)
                oom = None
                try:
                    mse = self._step(idx, lr)
                except torch.OutOfMemoryError as e:
                    oom = str(e)
                if oom is not None:     # handled here, where the failed step's tensors are freed
                    self._lower_batch(oom)
                    continue
                self.mse_sum += mse * idx.numel()
                self.pos += idx.numel()
                if self.bar is not None:
                    self.bar.update(idx.numel())
                self._after_step()
            psnr = -10 * math.log10(max(float(self.mse_sum) / self.frames, 1e-12))
            if not math.isfinite(psnr) or psnr < best - DIVERGENCE_DB:
                per_epoch = math.ceil(self.frames / self.batch)
                first = self.epoch * per_epoch
                self._roll_back(psnr, best, max(rate(step, per_epoch) for step in range(first, first + per_epoch)))
                continue
            self.epoch, self.order = self.epoch + 1, None
            self.history.append({"phase": self.phase, "epoch": self.epoch, "psnr": psnr, "seconds": self._clock()})
            best = max(best, psnr)
            self._good = self._state(copy=True)
            if self.bar is not None:
                self.bar.set_postfix_str(f"{self.phase} epoch {self.epoch}/{epochs} PSNR {psnr:.2f} dB")

    def _roll_back(self, psnr: float, best: float, failed_lr: float) -> None:
        """Back to the last good epoch, with the learning rate capped at half of `failed_lr` (the highest
        rate of the failed epoch) from then on."""
        failed = self.epoch + 1
        rollbacks, cap = self.rollbacks + 1, failed_lr * 0.5
        if rollbacks > MAX_ROLLBACKS:
            raise TrainingError(f"training diverged {rollbacks} times (last at {self.phase} epoch {failed}, "
                                f"PSNR {psnr:.2f} dB); try a lower --lr or another --seed")
        batch = self.batch          # (a batch lowered for memory stays lowered)
        self._load_state(*self._good, rng=False)
        self.rollbacks, self.lr_cap, self.batch = rollbacks, cap, batch
        self._say(f"training diverged at {self.phase} epoch {failed} (PSNR {best:.2f} -> {psnr:.2f} dB); "
                  f"rolled back to epoch {self.epoch}, learning rate now at most {cap:.3g}")

    def _lower_batch(self, message: str) -> None:
        self.opt.zero_grad(set_to_none=True)
        _free_cached(self.device)
        if self.batch == 1:
            need, have = self._memory_needed(message)
            raise TrainingError(f"out of {self.device.type} memory even at batch 1: training on {self.width}x"
                                f"{self.height} frames needs about {gib(need)}, the device has {gib(have)}; "
                                "use a lower --bpp, fewer frames or another --device")
        old, self.batch = self.batch, self.batch // 2
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._say(f"note: out of {self.device.type} memory at batch {old}; continuing with batch {self.batch}")

    def _memory_needed(self, message: str) -> tuple[float, float]:
        """(bytes a batch-1 step needs, at least; bytes the device has)."""
        params = sum(p.numel() for g in self.opt.param_groups for p in g["params"])
        need = 16 * params + self.video.numel() + 4 * decode_bytes_per_frame(self.arch)
        if self.device.type == "cuda":
            units = {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10}
            m = re.search(r"Tried to allocate ([\d.]+) (GiB|MiB|KiB)", message)
            tried = float(m.group(1)) * units[m.group(2)] if m else 0.0
            need = max(need, torch.cuda.max_memory_allocated(self.device) + tried)
            return need, torch.cuda.get_device_properties(self.device).total_memory
        return need, available_bytes(self.device)

    def _after_step(self) -> None:
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
        """While training with a checkpoint: Ctrl-C / SIGTERM stop at the end of the step (twice: at once)."""
        if self.checkpoint is None or threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum, _frame):
            if self._stop:
                raise signal_interrupt(signum)
            self._stop = signum

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _start_pruning(self) -> None:
        s = self.s
        if s.prune > 0:
            masks = magnitude_masks(self.decoder, s.prune)
            apply_masks(self.decoder, masks)
            self.masks = masks if s.prune_epochs > 0 else {}
        self.phase = "prune" if s.prune > 0 and s.prune_epochs > 0 else "done"
        if self.phase == "prune" and s.qat and self.quantizer is not None:
            state = {k: v.detach().float().cpu() for k, v in self.decoder.state_dict().items()}
            self.qat_bits = self.quantizer(state, self.tables())
            self._say(f"quantization-aware fine-tuning at {self.qat_bits:.3g} bits")
        self.epoch, self.pos, self.order = 0, 0, None
        self.opt = self._optimizer()

    def fit(self) -> FitResult:
        s = self.s
        epochs = {"train": s.epochs, "prune": s.prune_epochs if s.prune > 0 else 0}
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
                    self._start_pruning()
                if self.phase == "prune":
                    self._phase(s.prune_epochs, s.lr * 0.2, 0.0)
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
                         math.nan if self.resumed else steady_rate(self.history, self.frames))

    @torch.no_grad()
    def _evaluate(self, after: str) -> None:
        """The float model's PSNR over every frame (fp32, in eval mode, per frame then averaged), put in
        the history. The epochs' own PSNRs are running figures taken while the weights move."""
        self.encoders.eval()
        self.decoder.eval()
        psnrs = []
        for i in range(0, self.frames, self.batch):
            idx = torch.arange(i, min(i + self.batch, self.frames), device=self.device)
            out, ref = self._predict(*self._batch(idx), amp=False)
            mse = self.frame_mse(out.clamp(0, 1), ref).double()
            psnrs.append(-10 * torch.log10(mse.clamp_min(1e-12)))
        self.encoders.train()
        self.decoder.train()
        self.history.append({"phase": "eval", "after": after, "psnr": float(torch.cat(psnrs).mean()),
                             "seconds": self._clock()})

    def _clock(self) -> float:
        """Seconds since this run's `fit` started (taken where the device has just been waited for: an epoch's
        PSNR or an evaluation was read back), so a history tells the first epoch's compiling from the rest."""
        return round(time.perf_counter() - self._since, 3)

    # --- state: checkpoints and rollback snapshots ------------------------------------------------

    def _state(self, copy: bool = False) -> tuple[dict, dict]:
        """(tensors, metadata) of everything training needs to go on from here."""
        t = {f"enc.{k}": v for k, v in self.encoders.state_dict().items()}
        t.update({f"dec.{k}": v for k, v in self.decoder.state_dict().items()})
        # Beside an optimizer's per-parameter tensors: None entries (optimi's unused Kahan buffers) and per-group
        # tensors and flags (optimi's step count). Adam has neither.
        opt_state, opt_none, opt_groups = self.opt.state_dict(), [], []
        for i, st in opt_state["state"].items():
            for k, v in st.items():
                if v is None:
                    opt_none.append([i, k])
                else:
                    t[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        for i, g in enumerate(opt_state["param_groups"]):
            t.update({f"optgroup.{i}.{k}": v for k, v in g.items() if torch.is_tensor(v)})
            opt_groups.append({k: v for k, v in g.items() if k in OPTIMIZER_GROUP_FLAGS})
        t.update({f"mask.{k}": v for k, v in self.masks.items()})
        if self.order is not None:
            t["order"] = self.order
        t["mse_sum"] = self.mse_sum
        t["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            t["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if copy:
            t = {k: v.detach().clone() for k, v in t.items()}
        meta = {"phase": self.phase, "epoch": self.epoch, "pos": self.pos, "batch": self.batch,
                "qat_bits": self.qat_bits,
                "lr_cap": None if math.isinf(self.lr_cap) else self.lr_cap, "rollbacks": self.rollbacks,
                "history": [dict(h) for h in self.history], "opt_none": opt_none, "opt_groups": opt_groups}
        return t, meta

    def _load_state(self, tensors: dict, meta: dict, rng: bool = True) -> None:
        t = {k: v.detach().clone() for k, v in tensors.items()}     # never alias a snapshot
        self.phase, self.epoch, self.pos, self.batch = meta["phase"], meta["epoch"], meta["pos"], meta["batch"]
        self.lr_cap = math.inf if meta["lr_cap"] is None else meta["lr_cap"]
        self.rollbacks = meta["rollbacks"]
        self.qat_bits = meta.get("qat_bits")
        self.history = [dict(h) for h in meta["history"]]
        self.encoders.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("enc.")})
        self.decoder.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("dec.")})
        self.masks = {k[5:]: v.to(self.device) for k, v in t.items() if k.startswith("mask.")}
        self.opt = self._optimizer()
        state = defaultdict(dict)
        for k, v in t.items():
            if k.startswith("opt."):
                _, i, name = k.split(".", 2)
                state[int(i)][name] = v
        for i, name in meta.get("opt_none", []):
            state[int(i)][name] = None
        opt_state = self.opt.state_dict()
        opt_state["state"] = dict(state)
        for i, (group, flags) in enumerate(zip(opt_state["param_groups"], meta.get("opt_groups", []))):
            prefix = f"optgroup.{i}."
            group.update(flags)
            group.update({k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)})
        self.opt.load_state_dict(opt_state)
        self.order = t["order"].to(self.device) if "order" in t else None
        self.mse_sum = t["mse_sum"].to(self.device)
        if rng:
            torch.set_rng_state(t["rng.cpu"])
            if self.device.type == "cuda" and "rng.cuda" in t:
                torch.cuda.set_rng_state(t["rng.cuda"], self.device)

    def save(self) -> bool:
        """Write the training state to the checkpoint file, atomically (temporary file, then rename).

        A state whose epoch has gone NaN/inf is not saved; the last good one is. A checkpoint that
        cannot be written (disk full, no permission) is said on the log and training goes on.
        """
        from safetensors import SafetensorError
        from safetensors.torch import save_file
        tensors, meta = self._state() if torch.isfinite(self.mse_sum) or self._good is None else self._good
        path, tmp = self.checkpoint, None
        self._saved_at = time.monotonic()
        try:
            tmp = temp_file(path)
            save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp),
                      metadata={"nvcodec": json.dumps({**self.identity, **meta})})
            tmp.chmod(file_mode())      # safetensors writes a new file of its own, mode 0600
            os.replace(tmp, path)
            return True
        except (OSError, SafetensorError) as e:
            reason = " ".join(str(getattr(e, "strerror", None) or e).split())
            self._say(f"note: could not write the checkpoint {path} ({reason}); training goes on")
            return False
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)

    def _resume(self) -> None:
        from safetensors import safe_open
        path = self.checkpoint
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads(f.metadata()["nvcodec"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one line
            raise TrainingError(f"cannot resume: {path} is not a readable dnv checkpoint "
                                f"({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
        for key in ("format", "video", "arch", "settings"):
            saved, current = meta.get(key), json.loads(json.dumps(self.identity[key]))
            if saved != current:
                why = _differences(saved, current) if isinstance(saved, dict) and isinstance(current, dict) else ""
                what = {"video": "another video or frame range", "settings": "other training settings",
                        "arch": "another network (--model, --bpp or --model-size)"}.get(key, "another format")
                raise TrainingError(f"cannot resume: {path} is from an encode with {what}"
                                    + (f" ({why})" if why else "") + "; delete it or run without --resume")
        try:
            self._load_state(tensors, meta)
        except (KeyError, ValueError, RuntimeError) as e:
            raise TrainingError(f"cannot resume: {path} does not fit this model ({type(e).__name__})") from None
        self.resumed = True
        where = "training done" if self.phase == "done" else \
            f"{self.phase} epoch {self.epoch + 1}, {self.pos}/{self.frames} frames in"
        self.log(f"resuming from {path} ({where})")

    @torch.no_grad()
    def tables(self, batch: int = 16) -> dict[str, torch.Tensor]:
        """The content (and diff) embeddings of every frame, float32 on the CPU, by section name (what gets
        quantized)."""
        self.encoders.eval()
        batch = min(batch, 8 * self.batch)      # smaller where training had to lower its batch for memory
        contents, diffs = [], []
        for i in range(0, self.frames, batch):
            idx = torch.arange(i, min(i + batch, self.frames), device=self.device)
            c, d = self.encoders(*self._batch(idx))
            contents.append(c.float().cpu())
            if d is not None:
                diffs.append(d.float().cpu())
        return dict(zip(self.arch.sections, [torch.cat(contents)] + ([torch.cat(diffs)] if diffs else [])))


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


def _free_cached(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class CodeFitter(Fitter):
    """DS-NeRV and HiNeRV: the decoder's inputs are learnable tables read at the frame times (no encoders)."""

    def _make_inputs(self) -> torch.nn.Module:
        return Codes(self.arch, self.frames)

    def _param_groups(self) -> list[dict]:
        return [{"params": list(self.decoder.parameters())},
                {"params": list(self.encoders.parameters()), "lr_scale": self.s.code_lr_scale}]

    def _batch(self, idx: torch.Tensor):
        frames = self.video[idx.to(self.video.device)].to(self.device, non_blocking=True)
        return idx, frames.float().div_(255.0)

    def _predict(self, idx, cur, amp=None):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp if amp is None else amp):
            out = self._decode(*self._tables_at(idx))
        return out[..., : self.height, : self.width].float(), cur[..., : self.height, : self.width]

    def _tables_at(self, idx: torch.Tensor) -> list:
        """The tables read at the frames `idx`; during quantization-aware fine-tuning, as the file holds them."""
        if self.qat_bits is None:
            return self.encoders(idx)
        params = quantized_parameters(self.encoders, self.qat_bits, table=True)
        return torch.func.functional_call(self.encoders, params, (idx,))

    def tables(self, batch: int = 16) -> dict[str, torch.Tensor]:
        return self.encoders.tables()


def fit(frames_u8: torch.Tensor, arch: Arch, settings: TrainSettings, device: torch.device,
        progress: bool = True, **options) -> FitResult:
    """Fit a network to the frames. `options`: log, checkpoint, resume, checkpoint_every, quantizer (see Fitter)."""
    fitter = CodeFitter if spec_of(arch.model).learned_tables else Fitter
    return fitter(frames_u8, arch, settings, device, progress, **options).fit()
