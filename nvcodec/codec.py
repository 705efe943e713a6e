"""The public API: `encode`, `decode`, `decode_to_array`, `info`. Each returns a report dict.

Every figure in a report is measured on what the file holds: encode builds the .dnv bytes, decodes
them with the same code `decode` runs, and measures PSNR / MS-SSIM on those frames; bpp is the
file's own size over the video's original width x height x frames.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import bitstream, decoding, metrics, outputs, segments
from .flops import decoder_flops
from .bitstream import BitstreamError, Header
from .config import EncodeConfig
from .models import SPECS, param_count, spec_of


class CodecError(Exception):
    """A user-facing failure: one line, no traceback."""


# An encode whose file is further than this from --bpp says so in its report, with the reason.
TARGET_TOLERANCE = 0.05


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda was asked for, but no CUDA GPU is available")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise CodecError(f"unknown device {name!r} (choose auto, cuda or cpu)")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _quiet(*_args, **_kwargs):
    pass


# --- encode -------------------------------------------------------------------------------------

def encode(input, output, config: EncodeConfig | None = None, *, log=_quiet, **options) -> dict | None:
    """Fit networks to the video `input` and write the .dnv file `output`. Returns the report.

    The options are `config` (an `EncodeConfig`, which says what each means), with `options` changed by name
    (`encode(clip, out, bpp=0.1, epochs=50)`); a name that is no option is a TypeError. `log` takes the progress
    messages.

    The video is read as a stream, `segment_frames` frames at a time (default
    `segments.DEFAULT_SEGMENT_FRAMES`); each segment gets its own network and the same bpp target, so
    memory does not grow with the video's length. One segment is written as a plain .dnv, several as
    a segmented one (see `segments`). With `gpus` > 1, or under torchrun, segments are spread over
    processes; rank 0 writes the file and returns the report, other torchrun ranks return None.

    `train_options` sets training settings by name (`fit.TRAIN_OPTIONS`), like the keywords above. Optimizer,
    learning rate and epochs not given come from `preset`'s recipe for each network's size (`fit.recipe`).

    Training state is checkpointed to `checkpoint_path(output)` (one per segment) every
    `checkpoint_every` seconds, at the end of training and on Ctrl-C during training (which raises
    fit.Interrupted); `resume=True` continues from it. It is removed once the .dnv is written.

    Before any work, `output` and the checkpoint are checked (`outputs.check_output`: never the input, an
    existing `output` only with `overwrite`, a folder that takes files) and `output` is locked until the end.
    """
    from . import distributed

    config = EncodeConfig(**options) if config is None else config.replace(**options)
    job = _EncodeJob(input, output, config, log)
    group = distributed.from_environment()
    lock = outputs.OutputLock(output)
    claim = partial(_claim_output, input, output, config.overwrite, lock)
    if group is None:
        claim()
    else:   # under torchrun: the rank that writes the file checks and locks it
        try:
            distributed.run_on_first_rank(group, claim)
        except distributed.RankFailed as e:
            raise CodecError(f"encoding failed: {e}") from None
    try:
        return _run_job(job, group, config.gpus, output)
    finally:
        lock.release()


def _claim_output(input, output, overwrite: bool, lock: outputs.OutputLock) -> None:
    """Refuse an output that may not or cannot be written (see `outputs.check_output`), then lock it."""
    outputs.check_output(output, overwrite=overwrite, sources=[input])
    outputs.check_output(checkpoint_path(output), overwrite=True, sources=[input], option="checkpoint")
    lock.acquire()


def _run_job(job, group, gpus: int, output):
    from . import distributed

    if group is None and gpus > 1:
        job.log = _log_to_stderr  # the worker processes get a copy of the job: no closures
        report_file = Path(output).with_name(f".{Path(output).name}.report.json")
        try:
            distributed.spawn_local(gpus, partial(_run_and_save_report, job, report_file))
            return json.loads(report_file.read_text())
        except distributed.RankFailed as e:
            raise CodecError(f"encoding failed: {e}") from None
        finally:
            report_file.unlink(missing_ok=True)
    try:
        return job.run(group or distributed.SINGLE)
    except distributed.RankFailed as e:
        raise CodecError(f"encoding failed: {e}") from None


def _log_to_stderr(message: str) -> None:
    import sys
    print(message, file=sys.stderr, flush=True)


def _run_and_save_report(job, report_file: Path, group) -> None:
    report = job.run(group)
    if report is not None:
        report_file.write_text(json.dumps(report))


class _EncodeJob:
    """One encode: read segments in order, fit and compress this rank's, gather, write, report."""

    def __init__(self, input, output, config: EncodeConfig, log):
        self.input, self.output, self.config, self.log = input, output, config, log
        self.settings, self.chosen = config.train_settings()
        # The defaults that depend on the other options, resolved once.
        self.bpp, self.quant_bits = config.target_bpp, config.planned_quant_bits
        self.segment_frames = config.segment_frames or segments.DEFAULT_SEGMENT_FRAMES
        if self.settings.rate_from < 1 and not self.settings.rate:
            raise CodecError("--train rate_from needs --train rate=true (it says when rate-aware training starts)")
        if self.settings.rate and config.bit_depths == "rd":
            raise CodecError("--bit-depths rd does not combine with --train rate=true (rate-aware training learns "
                             "its own quantization steps)")

    def run(self, group) -> dict | None:
        from . import distributed
        from .video import VideoReader

        started = time.perf_counter()
        dev = resolve_device(group.device(self.config.device))
        self.settings.compile = (dev.type == "cuda") if self.config.compile is None else self.config.compile
        with VideoReader(self.input, **self.config.read_options) as reader:
            fps = reader.info.fps
            logged = 0

            def log_new_notes():  # reading frames can add notes (alpha dropped, corrupt tail, ...)
                nonlocal logged
                if group.rank == 0:
                    for note in reader.info.notes[logged:]:
                        self.log(f"note: {note}")
                logged = len(reader.info.notes)

            log_new_notes()

            def work():
                done = {}
                for i, first, frames in segments.read_segments(reader, self.segment_frames):
                    log_new_notes()
                    if group.mine(i):
                        done[i] = (first, *self._segment(i, first, frames, fps, reader.info.color, dev, group))
                    if i == 0 and frames.shape[0] < 2:
                        raise CodecError(f"{self.input}: the video has {frames.shape[0]} frame; dnv needs at least 2")
                log_new_notes()
                return done

            results = distributed.gather_results(group, work)
        if group.rank != 0:
            return None
        parts = [results[i] for i in sorted(results)]
        if not parts:
            raise CodecError(f"{self.input}: the video has no frames")
        h, w = parts[0][2]["height"], parts[0][2]["width"]
        if len(parts) == 1:
            data = parts[0][1]
        else:
            data = segments.pack_segmented(w, h, fps, [(first, blob) for first, blob, _ in parts])
        bitstream.write_atomic(self.output, data)
        for i in range(len(parts)):
            self._checkpoint(i, len(parts)).unlink(missing_ok=True)
        stats = [st for _, _, st in parts]
        t = sum(st["frames"] for st in stats)
        mean = lambda key: sum(st[key] * st["frames"] for st in stats) / t  # noqa: E731 - per-frame means
        report = {
            "input": str(self.input), "output": str(self.output),
            "model": self.config.model, "preset": self.config.preset,
            "bpp": metrics.bpp(len(data), w, h, t), "target_bpp": self.bpp, "bytes": len(data),
            "psnr": mean("psnr"), "psnr_yuv": mean("psnr_yuv"), "ms_ssim": mean("ms_ssim"),
            "color": stats[0]["color"],
            "psnr_float_model": mean("psnr_float_model"), "psnr_float_unpruned": mean("psnr_float_unpruned"),
            "frames": t, "width": w, "height": h, "fps": float(fps),
            # The frames of the input asked for (--frames START:END; END None: to the end).
            "frame_range": list(self.config.frame_range),
            "params": sum(st["params"] for st in stats), "quant_bits": self.quant_bits,
            # Rate-aware training (`--train rate=true`): the training's estimate of the file's size, and the lambda
            # rate control drove it to (segment 0's; each segment's below); None without it.
            "estimated_bytes": None if any(st["estimated_bytes"] is None for st in stats)
            else round(len(data) - sum(st["bytes"] for st in stats) + sum(st["estimated_bytes"] for st in stats)),
            "lambda": stats[0]["lambda"],
            "effective_bits": round(mean("effective_bits"), 3),
            "effective_bits": round(mean("effective_bits"), 3), "bit_depths_choice": self.config.bit_depths,
            # Segment 0's depth of each group of tensors (one depth for all with bit_depths_choice "single").
            "bit_depths": stats[0]["bit_depths"],
            "epochs": stats[0]["train_options"]["epochs"], "prune_epochs": stats[0]["train_options"]["prune_epochs"],
            "batch": min(st["batch"] for st in stats), "rollbacks": sum(st["rollbacks"] for st in stats),
            "resumed": any(st["resumed"] for st in stats),
            "target_missed": self._target_missed(metrics.bpp(len(data), w, h, t), stats),
            "compiled": self.settings.compile,
            "train_seconds": sum(st["train_seconds"] for st in stats),
            "train_frames_per_second": mean("train_frames_per_second"), "train_tflops": mean("train_tflops"),
            "train_steady_frames_per_second": mean("train_steady_frames_per_second"),
            "train_steady_tflops": mean("train_steady_tflops"),
            "encode_seconds": time.perf_counter() - started, "device": device_name(dev), "processes": group.world,
            "sections": bitstream.section_sizes(data) if len(parts) == 1 else {"segments": len(data)},
            # Segment 0's settings; a segment whose network differs in size may have another recipe (below).
            "train_options": stats[0]["train_options"],
            # Running PSNR of each main-phase epoch, per segment (for learning curves).
            "train_curves": [st["train_curve"] for st in stats],
            "train_curves_seconds": [st["train_curve_seconds"] for st in stats],
            # The same for the fine-tuning after pruning (on the loss's weighted MSE, the weights quantized).
            "finetune_curves": [st["finetune_curve"] for st in stats],
            "finetune_evals": [st["finetune_evals"] for st in stats],
            "finetune_curves_seconds": [st["finetune_curve_seconds"] for st in stats],
            "finetune_evals_seconds": [st["finetune_evals_seconds"] for st in stats],
            "finetune_frozen": [st["finetune_frozen"] for st in stats],
            "finetune_payload": [st["finetune_payload"] for st in stats],
            "finetune_freeze_seconds": [st["finetune_freeze_seconds"] for st in stats],
            "finetune_kept_epochs": [max(st["finetune_evals"], key=st["finetune_evals"].get, default=None)
                                     for st in stats],
            "train_seconds_unpruned": sum(st["train_seconds_unpruned"] for st in stats),
            "segments": [{"first_frame": first,
                          **{k: st[k] for k in ("frames", "bytes", "bpp", "psnr", "seconds", "estimated_bytes",
                                                "lambda", "step_scale")},
                          **{k: st["train_options"][k] for k in ("optimizer", "lr", "epochs")}}
                         for first, _, st in parts],
        }
        return report

    def _target_missed(self, bpp: float, stats: list[dict]) -> str | None:
        """A file more than TARGET_TOLERANCE off --bpp: by how much, and why (None when on target)."""
        if self.bpp is None or abs(bpp / self.bpp - 1) <= TARGET_TOLERANCE:
            return None
        above = bpp > self.bpp
        reasons = dict.fromkeys(st["rate_limit"] for st in stats if st["rate_limit"] and st["over"] == above)
        return (f"{abs(bpp / self.bpp - 1):.0%} {'above' if above else 'below'} the target {self.bpp:g} bpp: "
                + ("; ".join(reasons) or "the closest the quantizer's bit depth could get"))

    def _settings_for(self, params: int, frames: int, pixels: int):
        """The caller's settings, with the preset's recipe for a network of `params` parameters fitted to `frames`
        frames of `pixels` pixels where it chose none."""
        from .fit import recipe

        settings = dataclasses.replace(self.settings)
        chosen_optimizer = settings.optimizer if "optimizer" in self.chosen else None
        chosen_epochs = settings.epochs if "epochs" in self.chosen else None
        options = recipe(self.config.preset, self.config.model, params, chosen_optimizer, chosen_epochs, frames,
                         pixels)
        for name, value in options.items():
            if name not in self.chosen:
                setattr(settings, name, value)
        return settings

    def _checkpoint(self, i: int, count: int) -> Path:
        base = checkpoint_path(self.output)
        return base if i == 0 and count == 1 else base.with_name(base.name.replace(".ckpt", f".seg{i}.ckpt"))

    def _segment(self, i: int, first: int, frames: np.ndarray, fps, color, dev, group) -> tuple[bytes, dict]:
        """Fit, compress and measure one segment: (single-segment .dnv bytes, figures). `frames` are in the sample
        format of `color` (`nvcodec.color`), which the network is built to output."""
        from . import sizing
        from .compress import learned_compress
        from .compress.learned import RateTerm
        from .compress.rate_prior import WeightRatePrior
        from .compress.bitalloc import Probe, compress_at_depths, compress_rd, group_depths
        from .compress.ratecontrol import compress_to_target
        from .fit import TRAIN_OPTIONS, TrainingError, finetune_evals, fit
        from .flops import training_flops

        t, h, w = frames.shape[:3]
        if t < 2:
            raise CodecError(f"{self.input}: the video has {t} frame; dnv needs at least 2")
        if self.bpp is not None:
            try:
                plan = sizing.plan_for_bpp(self.config.model, w, h, t, self.bpp, self.quant_bits, self.settings.prune)
            except sizing.InfeasibleRate as e:
                raise CodecError(str(e)) from None
        else:
            plan = sizing.plan_for_params(self.config.model, w, h, self.config.model_size, frames=t)
        arch, s = dataclasses.replace(plan.arch, color=color), self._settings_for(plan.params, t, h * w)
        where = f"segment {i} (frames {first}-{first + t - 1}): " if i or t >= self.segment_frames else ""
        self.log(f"{where}{w}x{h}, {t} frames at {float(fps):.3f} fps -> {self.config.model} with {plan.params:,} "
                 "decoder parameters, "
                 + ", ".join(f"{name.lower()} {'x'.join(map(str, shape))}"
                             for name, shape in arch.section_shapes(t).items())
                 + f"; coded as {color.describe()}; {s.epochs}+{s.prune_epochs} epochs, {s.optimizer} at lr {s.lr:g}, on {device_name(dev)}"
                 + (f" (process {group.rank})" if group.world > 1 else ""))
        checkpoint = self._checkpoint(i, 1 if t < self.segment_frames and i == 0 else 2)  # plain name if alone
        if checkpoint.is_file() and not self.config.resume:
            self.log(f"note: {checkpoint} is left from an earlier encode; starting over "
                     "(add --resume to continue it)")
        header = Header(arch, t, fps, self.quant_bits)
        framing = len(bitstream.pack(header, {})) + 9 * (1 + len(arch.sections))
        target_payload = None if self.bpp is None else int(self.bpp * w * h * t / 8) - framing

        probe = Probe(arch, frames, dev) if self.config.bit_depths == "rd" else None

        def rate_control(state, tables, under=False):
            """The sections at the depth(s) rate control chooses (`under`: see `compress_to_target`)."""
            if probe is None:
                return compress_to_target(state, tables, self.quant_bits, target_payload, under=under)
            return compress_rd(state, tables, self.quant_bits, target_payload, probe, under=under)

        tuned_payload = {}      # the payload at the depths quantization-aware fine-tuning runs at: before, after

        def quantizer(state, tables):   # the depth(s) fine-tuning runs at: the file keeps them, so none over target
            packed = rate_control(state, tables, under=True)
            tuned_payload["start"] = packed.payload_bytes
            return {n: packed.depth(n) for n in [*state, *tables]} if packed.offsets else packed.bits
        log_loss = color.planes != "rgb" and s.plane_balance == "psnr"    # (`planeloss`: 4:2:0's log-MSE loss)
        rate = RateTerm(w * h * t, target_payload, log_loss=log_loss) if s.rate else None
        prior = None
        if s.rate_prior > 0:
            if target_payload is None or s.loss != "l2":
                raise CodecError("--train rate_prior needs a --bpp target and the l2 loss")
            prior = WeightRatePrior(s.rate_prior, self.quant_bits, 8 * target_payload, log_loss=log_loss)
        clock = {"start": time.perf_counter()}
        try:
            result = fit(torch.from_numpy(frames), arch, s, dev, progress=self.config.progress and group.rank == 0,
                         log=self.log, checkpoint=checkpoint, resume=self.config.resume,
                         checkpoint_every=self.config.checkpoint_every, quantizer=quantizer, rate=rate,
                         prior=prior, noise_bits=self.quant_bits)
        except TrainingError as e:
            raise CodecError(str(e)) from None
        state = {k: v.detach().cpu() for k, v in result.decoder.state_dict().items()}
        clock["fit"] = time.perf_counter()
        if result.rate_model is not None:
            packed = learned_compress.compress_to_target(state, result.tables, result.rate_model, rate.bits,
                                                         target_payload)
        elif result.qat_bits is not None:
            packed, tuned_payload["end"] = compress_at_depths(state, result.tables, result.qat_bits, target_payload)
            if packed.payload_bytes != tuned_payload["end"]:     # rate control had to move the tuned depths
                self.log(f"note: {where}at the depths fine-tuning ran at the file would be "
                         f"{tuned_payload['end'] / target_payload - 1:.1%} over its target; re-quantized at "
                         f"{packed.bits:.3g} bits, which the network was not tuned for (expect a loss of quality)")
        else:
            packed = rate_control(state, result.tables)
        data = bitstream.pack(header, packed.sections)
        target_bytes = None if self.bpp is None else self.bpp * w * h * t / 8
        over, limit = _rate_limit(plan, packed.bits, self.quant_bits, len(data), target_bytes)
        clock["compress"] = time.perf_counter()
        # Quality of what the file holds: decode the bytes exactly as `decode` does.
        # Batch by batch on the device: the whole segment in float on the host would take gigabytes
        # (and minutes of CPU time that several ranks would fight over).
        loaded = decoding.load(data, dev)
        quality = metrics.Tally(dev, color)
        for batch in decoding.render(loaded, dev):
            quality.add(batch, frames[quality.frames:quality.frames + len(batch)])
        psnr, ms_ssim = quality.result()
        clock["check"] = time.perf_counter()
        tflop_per_frame = training_flops(arch, s.enc_dim) / 1e12
        return data, {
            "frames": t, "width": w, "height": h, "bytes": len(data), "bpp": metrics.bpp(len(data), w, h, t),
            "psnr": psnr, "psnr_yuv": quality.yuv_result(), "ms_ssim": ms_ssim, "color": color.describe(),
            "psnr_float_model": result.float_psnr("final"), "psnr_float_unpruned": result.float_psnr("train"),
            "params": plan.params, "effective_bits": packed.bits, "batch": result.batch,
            "bit_depths": group_depths(packed, state, result.tables),
            "over": over, "rate_limit": limit,
            # Rate-aware training: its estimate of the file (the modelled symbols by its rate formula, the rest
            # as coded), its last lambda (MSE per bpp), and the factor rate control put on the learned steps.
            "estimated_bytes": None if result.rate_model is None
            else packed.estimated_bytes + len(data) - packed.payload_bytes,
            "lambda": None if result.rate_model is None else float(result.rate_model.lam),
            "step_scale": None if result.rate_model is None else packed.step_scale,
            "train_options": {k: getattr(s, k) for k in TRAIN_OPTIONS},
            "rollbacks": result.rollbacks, "resumed": result.resumed, "train_seconds": result.train_seconds,
            "train_frames_per_second": result.frames_per_second,
            "train_tflops": tflop_per_frame * result.frames_per_second,
            "train_steady_frames_per_second": result.steady_frames_per_second,
            "train_steady_tflops": tflop_per_frame * result.steady_frames_per_second,
            "train_curve": [round(h["psnr"], 3) for h in result.history if h["phase"] == "train"],
            "finetune_curve": [round(h["psnr"], 3) for h in result.history if h["phase"] == "prune"],
            # The fine-tuning's epochs evaluated as the file is measured, and the one kept (`--train finetune_pick=`).
            "finetune_evals": {e: round(p, 3) for e, p in finetune_evals(result.history).items()},
            # Values frozen for oscillating (`--train freeze=`) at the end of each fine-tuning epoch.
            "finetune_frozen": [h["frozen"] for h in result.history if h["phase"] == "prune" and "frozen" in h],
            # The host seconds the freezing took by then (its kernels' launches; after a resume, since the resume).
            "finetune_freeze_seconds": next((h["freeze_seconds"] for h in reversed(result.history)
                                             if h["phase"] == "prune" and "freeze_seconds" in h), None),
            # The payload at the depth(s) fine-tuning ran at, before it (None after a resume past that point) and
            # after: what fine-tuning itself adds or saves.
            "finetune_payload": [tuned_payload.get("start"), tuned_payload["end"]] if "end" in tuned_payload else None,
            # Seconds since fitting started at the end of each of those epochs (the first holds compiling), and
            # when the float model before pruning had been evaluated (NaN after a resume: another run's clock).
            "train_curve_seconds": [h.get("seconds") for h in result.history if h["phase"] == "train"],
            # The same for the fine-tuning's epochs and its evaluations: where the time after training goes.
            "finetune_curve_seconds": [h.get("seconds") for h in result.history if h["phase"] == "prune"],
            "finetune_evals_seconds": finetune_evals(result.history, "seconds"),
            "train_seconds_unpruned": math.nan if result.resumed else next(
                (h.get("seconds", math.nan) for h in result.history if h.get("after") == "train"), math.nan),
            # Where the segment's wall time went: fitting (with compile and embeddings), rate control +
            # entropy coding, and decoding the bytes again to measure them.
            "seconds": {"fit": clock["fit"] - clock["start"], "compress": clock["compress"] - clock["fit"],
                        "check": clock["check"] - clock["compress"]},
        }


def _rate_limit(plan, bits: float, quant_bits: int, size: int, target: float | None) -> tuple[bool, str | None]:
    """Whether a segment's file is over its target, and the limit of rate control that kept it there, if one did."""
    from .compress.ratecontrol import MIN_BITS, highest_bits

    if not target:
        return False, None
    over = size > target
    network = "the largest network for this video" if plan.largest else "the network sized for the target"
    if over and bits <= MIN_BITS + 1e-6:
        return over, f"{network} ({plan.params:,} parameters) codes larger even at {bits:g} bits, the fewest allowed"
    if not over and bits >= highest_bits(quant_bits) - 1e-6:
        return over, (f"{network} ({plan.params:,} parameters) codes smaller even at {bits:g} bits, the most "
                      f"allowed with --quant-bits {quant_bits}")
    return over, None


def checkpoint_path(output) -> Path:
    """Where an encode to `output` keeps its training checkpoint."""
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


# --- decode -------------------------------------------------------------------------------------

class _Parts:
    """A .dnv file as its segments: (first frame, frames, a way to get the segment's bytes).

    A plain file is one segment. For a segmented file only the index is read here; each segment's
    bytes are read from its offset when asked for, so a frame range touches only its segments.
    """

    def __init__(self, path):
        path = Path(path)
        if not path.is_file():
            raise CodecError(f"no such file: {path}")
        self.file_bytes = path.stat().st_size
        if segments.is_segmented(path):
            index = segments.read_index(path)
            self.width, self.height, self.fps, self.frames = index.width, index.height, index.fps, index.total_frames
            self.items = [(e.first_frame, e.frames, partial(segments.read_segment, path, e)) for e in index.entries]
            self.header = None
            # Every segment is coded from the same reader: the first one's sample format is the file's.
            self.color = segments.read_color(path, index.entries[0])
        else:
            data = path.read_bytes()
            header, _ = bitstream.unpack(data)
            self.width, self.height, self.fps, self.frames = header.width, header.height, header.fps, header.frames
            self.items = [(0, header.frames, lambda: data)]
            self.header = header    # (a plain file's; None for a segmented one)
            self.color = header.arch.color

    def select(self, frame_range) -> tuple[int, int]:
        start, end = frame_range
        if start >= self.frames:
            asked = f"{start}:{'' if end is None else end}"
            raise CodecError(f"--frames {asked} selects no frame: the file holds {self.frames} frames "
                             f"(0-{self.frames - 1})")
        return start, self.frames if end is None else min(end, self.frames)

    def output_count(self, frame_range, fps_scale: int) -> int:
        start, end = frame_range
        if fps_scale == 1:
            return end - start
        if len(self.items) != 1 or (start, end) != (0, self.frames):
            raise CodecError("--fps-scale works on whole single-segment files (no --frames, no segments)")
        return len(_output_times(self.frames, fps_scale))

    def render(self, dev, batch, precision, frame_range, timings, fps_scale: int = 1, packed: bool = False):
        """Yield uint8 frame batches of frames [start, end), loading only the segments needed (`packed`: in
        yuv420p's layout, see `decoding.render`).

        With `fps_scale` K > 1 (whole single-segment files), K*(T-1)+1 frames at fractional times.
        """
        start, end = frame_range
        timings.setdefault("load_seconds", 0.0)
        if fps_scale > 1:
            self.output_count(frame_range, fps_scale)
            t0 = time.perf_counter()
            loaded = decoding.load(self.items[0][2](), dev)
            timings["load_seconds"] += time.perf_counter() - t0
            yield from decoding.render(loaded, dev, batch, timings=timings, precision=precision,
                                       times=_output_times(self.frames, fps_scale), packed=packed)
            return
        for first, count, get in self.items:
            if first >= end or first + count <= start:
                continue
            t0 = time.perf_counter()
            loaded = decoding.load(get(), dev)
            if loaded.header.width != self.width or loaded.header.height != self.height:
                raise BitstreamError("a segment's frame size differs from the index")
            if loaded.header.arch.color != self.color:
                raise BitstreamError("a segment's sample format differs from the first segment's")
            timings["load_seconds"] += time.perf_counter() - t0
            wanted = range(max(start, first) - first, min(end, first + count) - first)
            yield from decoding.render(loaded, dev, batch, frames=wanted, timings=timings, precision=precision,
                                       packed=packed)


class _Scorer:
    """PSNR and MS-SSIM against a reference read alongside, batch by batch (memory stays flat)."""

    def __init__(self, ref, ref_range, parts: _Parts, first: int, count: int, device=None):
        from .video import VideoReader

        ref_start = ref_range[0] + first
        ref_end = ref_start + count
        if ref_range[1] is not None and ref_end > ref_range[1]:
            held = max(0, ref_range[1] - ref_start)
            raise CodecError(f"--ref-frames {ref_range[0]}:{ref_range[1]} holds {held} frames from frame {first} on, "
                             f"but {count} frames are decoded")
        # The reference in its own sample format: the YUV PSNR against a 4:2:0 source's own planes, whatever the
        # file's, and the RGB PSNR against its RGB conversion (the frames an RGB encode reads).
        self.reader = VideoReader(ref, frame_range=(ref_start, ref_end), color=None)
        info = self.reader.info
        if (info.width, info.height) != (parts.width, parts.height):
            self.reader.close()
            raise CodecError(f"--ref {ref} is {info.width}x{info.height}, but the .dnv holds "
                             f"{parts.width}x{parts.height}")
        self.frames = iter(self.reader)
        self.tally, self.ref, self.expected = metrics.Tally(device, parts.color, info.color), ref, count

    def add(self, batch: np.ndarray) -> None:
        ref = [next(self.frames, None) for _ in range(len(batch))]
        if any(r is None for r in ref):
            raise CodecError(f"--ref {self.ref} ends after {self.tally.frames + sum(r is not None for r in ref)} "
                             f"of the {self.expected} frames decoded")
        self.tally.ref_color = self.reader.info.color   # (as its first frame declares it)
        self.tally.add(batch, np.stack(ref))

    def close(self):
        self.reader.close()

    def result(self) -> tuple[float, float]:
        return self.tally.result()

    def psnr_every(self, k: int) -> tuple[float, float]:
        """Mean PSNR of the frames at multiples of k (the coded ones) and of the others (interpolated)."""
        coded = [p for i, p in enumerate(self.tally.psnr) if i % k == 0]
        between = [p for i, p in enumerate(self.tally.psnr) if i % k != 0]
        return sum(coded) / len(coded), sum(between) / len(between)


def _output_times(frames: int, fps_scale: int) -> torch.Tensor:
    try:
        return decoding.output_times(frames, fps_scale)
    except ValueError as e:
        raise CodecError(str(e)) from None


def decode_to_array(path, *, device: str = "auto", batch: int | None = None, precision: str = "fp32",
                    frame_range=(0, None), fps_scale: int = 1, planes: bool = False) -> tuple[np.ndarray, dict]:
    """Decode a .dnv (or frames START:END of it) into a (N, H, W, 3) uint8 RGB array at its own size.

    N = the selected frames, or K*(T-1)+1 with `fps_scale` K > 1 (frame interpolation, see `decode`).
    A file coded as YUV 4:2:0 is converted to RGB with its matrix and range, unless `planes`: then the frames
    are the coded planes as they are (each chroma sample repeated over its 2x2 block, `nvcodec.color`; the
    report's `color` says which).
    """
    dev = resolve_device(device)
    started = time.perf_counter()
    parts = _Parts(path)
    selected = parts.select(frame_range)
    timings = {}
    frames = np.concatenate(list(parts.render(dev, batch, precision, selected, timings, fps_scale)))
    if parts.color.yuv and not planes:
        from .video import yuv_to_rgb
        frames = yuv_to_rgb(frames, parts.color)
    elif parts.color.yuv:
        from .color import fill_chroma
        frames = fill_chroma(frames)
    timings["decode_seconds"] = time.perf_counter() - started
    return frames, {"frames": len(frames), "coded_frames": parts.frames, "fps_scale": fps_scale,
                    "color": parts.color.describe() if planes else "rgb",
                    "width": parts.width, "height": parts.height,
                    "device": device_name(dev), "bytes": parts.file_bytes,
                    "bpp": metrics.bpp(parts.file_bytes, parts.width, parts.height, parts.frames), **timings}


def decode(path, output=None, *, ref=None, ref_range=(0, None), frame_range=(0, None), device: str = "auto",
           batch: int | None = None, precision: str = "fp32", fps_scale: int = 1, log=_quiet,
           overwrite: bool = True) -> dict:
    """Decode `path` (or frames START:END of it), write them to `output`, measure against `ref`.

    Frames stream from the network to the writer and the metrics: memory does not grow with length.
    The writer works in its own thread (`background.BackgroundWriter`), so that writing the last
    frames and computing the next ones go on at once. `output` "-" writes a y4m stream to standard output.
    `ref_range` says which frames of `ref` were encoded; `frame_range` picks frames of the .dnv.
    `fps_scale` K > 1 interpolates K-1 frames between each pair of coded frames: K*(T-1)+1 frames at
    K x the frame rate. `ref` is then the video at that rate (e.g. the full clip whose even frames were
    encoded, with --fps-scale 2): PSNR is reported over all output frames, and separately over the coded
    times (`psnr_coded`) and the interpolated ones (`psnr_interpolated`).
    `output` is never `path` nor `ref`, and replaces an existing file only with `overwrite`.

    Timing: `decode_seconds` and `decode_fps` cover the whole decode (reading the file, the network,
    writing), everything but scoring against `ref`, whose time is `score_seconds` (`total_seconds` holds
    both). `neural_seconds` / `neural_fps` are the network's own; `write_seconds` is the writer thread's
    working time, which overlaps the network's.
    """
    from .background import BackgroundWriter
    from .video import VideoWriter

    outputs.check_output(output, overwrite=overwrite, sources=[path, ref], folder_ok=True)
    dev = resolve_device(device)
    started = time.perf_counter()
    parts = _Parts(path)
    selected = parts.select(frame_range)
    expected = parts.output_count(selected, fps_scale)
    fps = parts.fps * fps_scale
    timings, score_seconds, count = {}, 0.0, 0
    scorer = None
    if ref is not None:
        t0 = time.perf_counter()
        scorer = _Scorer(ref, ref_range, parts, selected[0], expected, dev)
        score_seconds += time.perf_counter() - t0
    writer = None
    try:
        packed = False
        if output is not None:
            video = VideoWriter(output, parts.width, parts.height, fps, parts.color)
            # 4:2:0 planes go to a video file as the encoder takes them, packed on the device: no conversion,
            # half the bytes to copy. Scoring and PNG need whole frames.
            packed = video.takes_packed and scorer is None
            writer = BackgroundWriter(video)
        for frames in parts.render(dev, batch, precision, selected, timings, fps_scale, packed=packed):
            count += len(frames)
            if writer is not None:
                writer.write(frames)
            if scorer is not None:
                t0 = time.perf_counter()
                scorer.add(frames)
                score_seconds += time.perf_counter() - t0
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if scorer is not None:
            scorer.close()
    total = time.perf_counter() - started
    neural = timings.get("neural_seconds", 0.0)
    decode_seconds = total - score_seconds
    report = {
        "input": str(path), "output": None if output is None else str(output),
        "bpp": metrics.bpp(parts.file_bytes, parts.width, parts.height, parts.frames), "bytes": parts.file_bytes,
        "frames": count, "first_frame": selected[0], "file_frames": parts.frames, "coded_frames": parts.frames,
        "fps_scale": fps_scale, "width": parts.width, "height": parts.height, "fps": float(fps),
        "decode_seconds": decode_seconds, "decode_fps": count / max(decode_seconds, 1e-9),
        "load_seconds": timings["load_seconds"], "neural_seconds": neural,
        "neural_fps": count / max(neural, 1e-9), "write_seconds": writer.busy_seconds if writer is not None else 0.0,
        "score_seconds": score_seconds if scorer is not None else 0.0, "total_seconds": total,
        "batch": timings.get("batch"),
        "color": parts.color.describe(), "psnr": None, "psnr_yuv": None, "ms_ssim": None, "psnr_coded": None,
        "psnr_interpolated": None, "device": device_name(dev), "precision": precision,
    }
    if parts.header is not None:
        report["neural_tflops"] = decoder_flops(parts.header.arch) * count / max(neural, 1e-9) / 1e12
    if scorer is not None:
        t0 = time.perf_counter()
        report["psnr"], report["ms_ssim"] = scorer.result()
        report["psnr_yuv"] = scorer.tally.yuv_result()
        if fps_scale > 1:
            report["psnr_coded"], report["psnr_interpolated"] = scorer.psnr_every(fps_scale)
        scoring = time.perf_counter() - t0
        report["score_seconds"] += scoring
        report["total_seconds"] += scoring
    return report


# --- info ---------------------------------------------------------------------------------------

def info(path) -> dict:
    """What a .dnv file holds: video, bit rate, decoder, and the bytes of each section (`sections`, framing
    included). A segmented file adds `segment_index` (each segment's frames, bytes, bpp, model, parameters)
    and `first_segment` (the first segment's own record)."""
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"no such file: {path}")
    size = path.stat().st_size
    if not segments.is_segmented(path):
        return info_of_bytes(path, path.read_bytes())
    index = segments.read_index(path)
    records = [info_of_bytes(path, segments.read_segment(path, e)) for e in index.entries]
    return {"file": str(path), "bytes": size, "format_version": bitstream.FORMAT_VERSION,
            "width": index.width, "height": index.height, "frames": index.total_frames,
            **_rate_fields(index.fps, index.total_frames, size, index.width, index.height),
            "segments": len(index.entries),
            "segment_index": [{"first_frame": e.first_frame, "frames": e.frames, "bytes": e.length,
                               "bpp": metrics.bpp(e.length, index.width, index.height, e.frames),
                               "model": r["model"], "decoder_params": r["decoder_params"],
                               "quant_bits": r["quant_bits"]}
                              for e, r in zip(index.entries, records)],
            "first_segment": records[0],
            "sections": segments.section_sizes(index, size)}


def _rate_fields(fps: Fraction, frames: int, size: int, width: int, height: int) -> dict:
    seconds = frames / fps
    return {"fps": f"{fps.numerator}/{fps.denominator}", "frame_rate": float(fps),
            "duration_seconds": float(seconds), "bitrate": float(size * 8 / seconds),
            "bpp": metrics.bpp(size, width, height, frames)}


def _learned_tensors(data: bytes, arch) -> int:
    from .compress import pack
    from .models import Decoder

    _, sections = bitstream.unpack(data)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Decoder(arch).state_dict().items()}
    return pack.learned_count({k: v for k, v in sections.items() if k == "DECODER" or k in arch.sections}, shapes)


def info_of_bytes(path, data: bytes) -> dict:
    header, _ = bitstream.unpack(data)
    a = header.arch
    shapes = a.section_shapes(header.frames)
    sections = bitstream.section_sizes(data)
    return {
        "file": str(path), "bytes": len(data), "format_version": bitstream.FORMAT_VERSION,
        "model": a.model, "width": a.width, "height": a.height, "frames": header.frames,
        **_rate_fields(header.fps, header.frames, len(data), a.width, a.height),
        "quant_bits": header.quant_bits,
        # The sample format coded and the source's colour description (COLOR section; files without one: rgb).
        "color": a.color.planes, "color_matrix": a.color.matrix, "color_range": a.color.range,
        "color_primaries": a.color.primaries, "color_trc": a.color.trc, "color_description": a.color.describe(),
        "padded_size": list(a.padded_size)[::-1], "strides": list(a.strides), "widths": list(a.widths),
        "kernels": list(a.kernels),
        # Each model's own fields, None in the files of the models without them.
        **{key: None for spec in SPECS.values() for key in spec.info_keys}, **spec_of(a.model).info(a, shapes),
        "decoder_params": param_count(a),
        # What the decoder's weights cost in the file, pruned ones included: the header keeps only the depth asked
        # for (quant_bits), not the one rate control trimmed it to.
        "decoder_bits_per_param": 8 * sections.get("DECODER", 0) / param_count(a),
        "embedding_values": a.embedding_values(header.frames),
        # Shape of each table the decoder reads its inputs from, by section (entries first).
        "tables": {name: list(shape) for name, shape in shapes.items()},
        # Tensors coded with the learned entropy models of rate-aware training (`compress.rowcoder`).
        "learned_tensors": _learned_tensors(data, a),
        "sections": sections,
    }


__all__ = ["encode", "EncodeConfig", "decode", "decode_to_array", "info", "CodecError", "BitstreamError", "resolve_device"]
