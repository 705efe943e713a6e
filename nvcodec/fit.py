"""Fitting a network to one video: the training loop (device, precision, schedule, pruning, progress).

The whole video stays on the device as uint8 (T, 3, pad_h, pad_w); each step gathers a batch of
frames and their neighbours, runs encoders + decoder, and takes the loss on the original (unpadded)
area only. After the main schedule the decoder is pruned by global magnitude and fine-tuned with
the mask held fixed. The result is the float decoder and the embeddings of every frame.

DS-NeRV (`CodeFitter`) has no encoders: its static and dynamic codes are parameters trained with
the decoder, and each step reads them at the batch's frame times.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .compress.prune import apply_masks, magnitude_masks
from .models import Arch, Decoder
from .models.dsnerv import Codes
from .models.encoders import Encoders


@dataclass
class TrainSettings:
    epochs: int = 300
    batch: int = 2
    lr: float = 1e-3
    warmup: float = 0.2           # fraction of the main schedule spent warming up
    loss: str = "l2"              # "l2" or "l1ssim" (NeRV's 0.7 * L1 + 0.3 * (1 - SSIM))
    prune: float = 0.1            # fraction of decoder conv weights removed after training
    prune_epochs: int = 30        # fine-tuning epochs with the pruning mask held fixed
    enc_dim: int = 64             # encoder width (paper: 64)
    grad_clip: float = 1.0
    amp: bool = True              # bf16 autocast on CUDA
    compile: bool = False         # torch.compile the training step (on by default on CUDA, see codec)
    seed: int = 0
    code_lr_scale: float = 30.0   # DS-NeRV: learning rate of the codes relative to the decoder's


PRESETS = {
    # epochs and fine-tuning after pruning; like x264's presets, slower means better.
    "fast": dict(epochs=100, prune_epochs=10),
    "medium": dict(epochs=300, prune_epochs=30),
    "slow": dict(epochs=600, prune_epochs=60),
}


@dataclass
class FitResult:
    decoder: Decoder
    content: torch.Tensor                  # (T, emb_ch, h, w) float32, CPU
    diff: torch.Tensor | None              # (T, diff_ch, hd, wd) float32, CPU
    train_seconds: float
    frames_per_second: float
    train_psnr: float                      # PSNR of the float model on the training frames (last epoch)
    history: list[dict] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, torch.Tensor]:
        """What gets stored, by section name: CONTENT (+ DIFF) embeddings, or DS-NeRV's STATIC and
        DYNAMIC codes (which `content` and `diff` hold for that model)."""
        return dict(zip(self.decoder.arch.sections, [t for t in (self.content, self.diff) if t is not None]))


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
    raise ValueError(f"unknown loss {kind!r} (choose l2 or l1ssim)")


class Fitter:
    def __init__(self, frames_u8: torch.Tensor, arch: Arch, settings: TrainSettings, device: torch.device,
                 progress: bool = True):
        torch.manual_seed(settings.seed)
        self.arch, self.s, self.device, self.progress = arch, settings, device, progress
        self.height, self.width = frames_u8.shape[1:3]
        self.video = pad_frames(frames_u8, arch, device)
        self.frames = self.video.shape[0]
        self.encoders = self._make_inputs().to(device)  # what gives the decoder its inputs
        self.decoder = Decoder(arch).to(device)
        if device.type == "cuda":
            self.encoders.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)
        self.loss_fn = make_loss(settings.loss)
        self.amp = settings.amp and device.type == "cuda"
        self.step_fn = self._forward_loss
        if settings.compile:
            self.step_fn = self._compiled_with_fallback(torch.compile(self._forward_loss))
        self.history: list[dict] = []

    def _make_inputs(self) -> torch.nn.Module:
        return Encoders(self.arch, self.s.enc_dim)

    def _param_groups(self) -> list[dict]:
        return [{"params": list(self.encoders.parameters()) + list(self.decoder.parameters())}]

    def _batch(self, idx: torch.Tensor):
        """The arguments of `_forward_loss` for a batch of frame indices."""
        return neighbours(self.video, idx)

    def _compiled_with_fallback(self, compiled):
        """Use the compiled step; if compiling fails (no compiler, unsupported op), say so and run eagerly."""
        def step(*args):
            try:
                return compiled(*args)
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to the same maths
                import sys
                print(f"note: torch.compile failed ({type(e).__name__}); training without it", file=sys.stderr)
                self.step_fn = self._forward_loss
                return self._forward_loss(*args)
        return step

    def _forward_loss(self, prev, cur, nxt):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            content, diff = self.encoders(prev, cur, nxt)
            out = self.decoder(content, diff)
        out = out[..., : self.height, : self.width].float()
        ref = cur[..., : self.height, : self.width]
        mse = F.mse_loss(out, ref)
        return self.loss_fn(out, ref), mse

    def _run(self, epochs: int, peak_lr: float, warmup: float, masks, label: str, bar=None):
        params = list(self.encoders.parameters()) + list(self.decoder.parameters())
        fused = self.device.type == "cuda"
        opt = torch.optim.Adam(self._param_groups(), lr=peak_lr, betas=(0.9, 0.999), fused=fused)
        batch = min(self.s.batch, self.frames)
        steps_per_epoch = math.ceil(self.frames / batch)
        total = epochs * steps_per_epoch
        warmup_steps = int(warmup * total)
        step = 0
        for epoch in range(epochs):
            order = torch.randperm(self.frames, device=self.device)
            mse_sum = torch.zeros((), device=self.device)
            for i in range(0, self.frames, batch):
                idx = order[i:i + batch]
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, total, warmup_steps, peak_lr) * g.get("lr_scale", 1.0)
                loss, mse = self.step_fn(*self._batch(idx))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.s.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, self.s.grad_clip)
                opt.step()
                apply_masks(self.decoder, masks)
                mse_sum += mse.detach() * idx.numel()
                step += 1
                if bar is not None:
                    bar.update(idx.numel())
            psnr = -10 * math.log10(max(float(mse_sum) / self.frames, 1e-12))
            self.history.append({"phase": label, "epoch": epoch + 1, "psnr": psnr})
            if bar is not None:
                bar.set_postfix_str(f"{label} epoch {epoch + 1}/{epochs} PSNR {psnr:.2f} dB")
        return self.history[-1]["psnr"] if epochs else float("nan")

    def fit(self) -> FitResult:
        s = self.s
        total_frames = (s.epochs + (s.prune_epochs if s.prune > 0 else 0)) * self.frames
        bar = None
        if self.progress:
            import sys

            from tqdm import tqdm
            # On a terminal the bar redraws often; in a log file, one line every 30 s is enough.
            interval = 0.5 if sys.stderr.isatty() else 30.0
            bar = tqdm(total=total_frames, unit="frame", desc="training", dynamic_ncols=True, leave=True,
                       mininterval=interval, maxinterval=max(10.0, interval))
        start = time.perf_counter()
        try:
            psnr = self._run(s.epochs, s.lr, s.warmup, {}, "train", bar)
            if s.prune > 0 and s.prune_epochs > 0:
                masks = magnitude_masks(self.decoder, s.prune)
                apply_masks(self.decoder, masks)
                psnr = self._run(s.prune_epochs, s.lr * 0.2, 0.0, masks, "prune", bar)
            elif s.prune > 0:
                apply_masks(self.decoder, magnitude_masks(self.decoder, s.prune))
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        content, diff = self.embeddings()
        self.decoder.eval()
        return FitResult(self.decoder.float().to(memory_format=torch.contiguous_format), content, diff, seconds,
                         total_frames / max(seconds, 1e-9), psnr, self.history)

    @torch.no_grad()
    def embeddings(self, batch: int = 16):
        """Content and diff embeddings of every frame, in float32 (what gets quantized)."""
        self.encoders.eval()
        contents, diffs = [], []
        for i in range(0, self.frames, batch):
            idx = torch.arange(i, min(i + batch, self.frames), device=self.device)
            c, d = self.encoders(*neighbours(self.video, idx))
            contents.append(c.float().cpu())
            if d is not None:
                diffs.append(d.float().cpu())
        return torch.cat(contents), (torch.cat(diffs) if diffs else None)


class CodeFitter(Fitter):
    """DS-NeRV: the decoder's inputs are learnable codes read at the frame times (no encoders)."""

    def _make_inputs(self) -> torch.nn.Module:
        return Codes(self.arch, self.frames)

    def _param_groups(self) -> list[dict]:
        return [{"params": list(self.decoder.parameters())},
                {"params": list(self.encoders.parameters()), "lr_scale": self.s.code_lr_scale}]

    def _batch(self, idx: torch.Tensor):
        return idx, self.video[idx].float().div_(255.0)

    def _forward_loss(self, idx, cur):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            static, dynamic = self.encoders(idx)
            out = self.decoder(static, dynamic)
        out = out[..., : self.height, : self.width].float()
        ref = cur[..., : self.height, : self.width]
        mse = F.mse_loss(out, ref)
        return self.loss_fn(out, ref), mse

    def embeddings(self, batch: int = 16):
        """The static and dynamic codes (float32, CPU), in the places of content and diff."""
        tables = self.encoders.tables()
        return tables["STATIC"], tables["DYNAMIC"]


def fit(frames_u8: torch.Tensor, arch: Arch, settings: TrainSettings, device: torch.device,
        progress: bool = True) -> FitResult:
    fitter = CodeFitter if arch.model == "dsnerv" else Fitter
    return fitter(frames_u8, arch, settings, device, progress).fit()
