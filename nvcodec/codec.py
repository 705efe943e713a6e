"""The public API: `encode`, `decode`, `decode_to_array`, `info`. Each returns a report dict.

Every figure in a report is measured on what the file holds: encode builds the .dnv bytes, decodes
them with the same code `decode` runs, and measures PSNR / MS-SSIM on those frames; bpp is the
file's own size over the video's original width x height x frames.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import bitstream, decoding, metrics
from .bitstream import BitstreamError, Header
from .models import MODELS, param_count


class CodecError(Exception):
    """A user-facing failure: one line, no traceback."""


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

def encode(input, output, *, bpp: float | None = None, model_size: float | None = None, model: str = "dnerv",
           preset: str = "medium", epochs: int | None = None, prune_epochs: int | None = None,
           batch: int | None = None, lr: float | None = None, loss: str = "l2", prune: float = 0.1,
           quant_bits: int = 8, device: str = "auto", frame_range=(0, None), size=None, pix_fmt: str = "yuv420p",
           fps=None, seed: int = 0, compile: bool | None = None, progress: bool = True, log=_quiet) -> dict:
    """Fit a network to the video `input` and write the .dnv file `output`. Returns the report."""
    from . import sizing
    from .compress.ratecontrol import compress_to_target
    from .fit import PRESETS, TrainSettings, fit
    from .video import read_video

    started = time.perf_counter()
    if model not in MODELS:
        raise CodecError(f"unknown model {model!r} (choose {', '.join(MODELS)})")
    if preset not in PRESETS:
        raise CodecError(f"unknown preset {preset!r} (choose {', '.join(PRESETS)})")
    if bpp is not None and not (0 < bpp < 1000):
        raise CodecError("--bpp must be a positive number")
    if not (2 <= quant_bits <= 16):
        raise CodecError("--quant-bits must be between 2 and 16")
    if not (0 <= prune < 1):
        raise CodecError("--prune must be in [0, 1)")
    if bpp is None and model_size is None:
        bpp = 0.05
    dev = resolve_device(device)
    _check_output_folder(output)

    frames, vinfo = read_video(input, frame_range=frame_range, size=size, pix_fmt=pix_fmt, fps=fps)
    for note in vinfo.notes:
        log(f"note: {note}")
    t, h, w = frames.shape[:3]
    if t < 2:
        raise CodecError(f"{input}: the video has {t} frame; dnv needs at least 2")

    if bpp is not None:
        try:
            plan = sizing.plan_for_bpp(model, w, h, t, bpp, quant_bits, prune)
        except sizing.InfeasibleRate as e:
            raise CodecError(str(e)) from None
    else:
        plan = sizing.plan_for_params(model, w, h, model_size, frames=t)
    arch = plan.arch
    settings = TrainSettings(**PRESETS[preset], loss=loss, prune=prune, seed=seed)
    if epochs is not None:
        settings.epochs = epochs
    if prune_epochs is not None:
        settings.prune_epochs = prune_epochs
    if batch is not None:
        settings.batch = batch
    if lr is not None:
        settings.lr = lr
    settings.compile = (dev.type == "cuda") if compile is None else compile
    log(f"{w}x{h}, {t} frames at {float(vinfo.fps):.3f} fps -> {model} with {plan.params:,} decoder parameters, "
        + ", ".join(f"{name.lower()} {'x'.join(map(str, shape))}" for name, shape in arch.section_shapes(t).items())
        + f"; {settings.epochs}+{settings.prune_epochs} epochs on {device_name(dev)}")

    result = fit(torch.from_numpy(frames), arch, settings, dev, progress=progress)

    header = Header(arch, t, vinfo.fps, quant_bits)
    framing = len(bitstream.pack(header, {})) + 9 * (1 + len(arch.sections))
    target_payload = None if bpp is None else int(bpp * w * h * t / 8) - framing
    state = {k: v.detach().cpu() for k, v in result.decoder.state_dict().items()}
    packed = compress_to_target(state, result.tables, quant_bits, target_payload)
    data = bitstream.pack(header, packed.sections)

    bitstream.write_atomic(output, data)
    # Quality of what the file holds: decode the bytes exactly as `decode` does.
    loaded = decoding.load(data, dev)
    recon = np.concatenate(list(decoding.render(loaded, dev)))
    psnr = metrics.psnr(recon, frames)
    ms_ssim = metrics.ms_ssim(recon, frames)
    seconds = time.perf_counter() - started
    report = {
        "input": str(input), "output": str(output), "model": model, "preset": preset,
        "bpp": metrics.bpp(len(data), w, h, t), "target_bpp": bpp, "bytes": len(data),
        "psnr": psnr, "ms_ssim": ms_ssim, "psnr_float_model": result.train_psnr,
        "frames": t, "width": w, "height": h, "fps": float(vinfo.fps),
        "params": plan.params, "quant_bits": quant_bits, "effective_bits": round(packed.bits, 3),
        "epochs": settings.epochs, "prune_epochs": settings.prune_epochs, "batch": settings.batch,
        "train_seconds": result.train_seconds, "train_frames_per_second": result.frames_per_second,
        "encode_seconds": seconds, "device": device_name(dev),
        "sections": bitstream.section_sizes(data),
    }
    return report


def _check_output_folder(output) -> None:
    parent = Path(output).resolve().parent
    if not parent.is_dir():
        raise CodecError(f"output folder does not exist: {parent}")


# --- decode -------------------------------------------------------------------------------------

def _load(path, dev: torch.device):
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"no such file: {path}")
    data = path.read_bytes()
    read_seconds = time.perf_counter() - started
    loaded = decoding.load(data, dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return loaded, {"read_seconds": read_seconds, "load_seconds": time.perf_counter() - started}


def _output_times(frames: int, fps_scale: int) -> torch.Tensor:
    try:
        return decoding.output_times(frames, fps_scale)
    except ValueError as e:
        raise CodecError(str(e)) from None


def decode_to_array(path, *, device: str = "auto", batch: int = 8, fps_scale: int = 1) -> tuple[np.ndarray, dict]:
    """Decode a .dnv into a (N, H, W, 3) uint8 RGB array at the video's own size.

    N = T frames, or K*(T-1)+1 with `fps_scale` K > 1 (frame interpolation, see `decode`).
    """
    dev = resolve_device(device)
    loaded, timings = _load(path, dev)
    h = loaded.header
    times = _output_times(h.frames, fps_scale)
    started = time.perf_counter()
    frames = np.concatenate(list(decoding.render(loaded, dev, batch, timings=timings, times=times)))
    timings["decode_seconds"] = time.perf_counter() - started + timings["load_seconds"]
    return frames, {"frames": len(times), "coded_frames": h.frames, "fps_scale": fps_scale,
                    "width": h.width, "height": h.height, "device": device_name(dev),
                    "bytes": loaded.file_bytes, "bpp": metrics.bpp(loaded.file_bytes, h.width, h.height, h.frames),
                    **timings}


def decode(path, output=None, *, ref=None, ref_range=(0, None), device: str = "auto", batch: int = 8,
           fps_scale: int = 1, log=_quiet) -> dict:
    """Decode `path`, write the frames to `output` (if given), measure against `ref` (if given).

    `fps_scale` K > 1 interpolates K-1 frames between each pair of coded frames: K*(T-1)+1 frames at
    K x the frame rate. `ref` is then the video at that rate (e.g. the full clip whose even frames were
    encoded, with --fps-scale 2): PSNR is reported over all output frames, and separately over the coded
    times (`psnr_coded`) and the interpolated ones (`psnr_interpolated`).
    """
    from .video import VideoWriter, read_video

    dev = resolve_device(device)
    loaded, timings = _load(path, dev)
    h = loaded.header
    times = _output_times(h.frames, fps_scale)
    count, fps = len(times), h.fps * fps_scale
    reference = None
    if ref is not None:
        reference, rinfo = read_video(ref, frame_range=ref_range)
        if reference.shape[0] != count or reference.shape[1:3] != (h.height, h.width):
            wanted = f"{count} frames" + (f" (the coded {h.frames} at {fps_scale}x the rate)" if fps_scale > 1 else "")
            raise CodecError(f"--ref {ref} is {rinfo.width}x{rinfo.height} with {reference.shape[0]} frames, "
                             f"but the .dnv decodes to {h.width}x{h.height} with {wanted}")
    started = time.perf_counter()
    write_seconds = 0.0
    recon = []
    writer = VideoWriter(output, h.width, h.height, fps) if output is not None else None
    try:
        for frames in decoding.render(loaded, dev, batch, timings=timings, times=times):
            if writer is not None:
                t0 = time.perf_counter()
                writer.write(frames)
                write_seconds += time.perf_counter() - t0
            if reference is not None:
                recon.append(frames)
        if writer is not None:
            t0 = time.perf_counter()
            writer.close()
            write_seconds += time.perf_counter() - t0
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    total = time.perf_counter() - started + timings["load_seconds"]
    report = {
        "input": str(path), "output": None if output is None else str(output),
        "bpp": metrics.bpp(loaded.file_bytes, h.width, h.height, h.frames), "bytes": loaded.file_bytes,
        "frames": count, "coded_frames": h.frames, "fps_scale": fps_scale,
        "width": h.width, "height": h.height, "fps": float(fps),
        "load_seconds": timings["load_seconds"], "neural_seconds": timings["neural_seconds"],
        "write_seconds": write_seconds, "decode_seconds": total,
        "decode_fps": count / max(timings["neural_seconds"], 1e-9),
        "psnr": None, "ms_ssim": None, "psnr_coded": None, "psnr_interpolated": None, "device": device_name(dev),
    }
    if reference is not None:
        out = np.concatenate(recon)
        report["psnr"] = metrics.psnr(out, reference)
        report["ms_ssim"] = metrics.ms_ssim(out, reference)
        if fps_scale > 1:
            coded = np.arange(count) % fps_scale == 0
            report["psnr_coded"] = metrics.psnr(out[coded], reference[coded])
            report["psnr_interpolated"] = metrics.psnr(out[~coded], reference[~coded])
    return report


# --- info ---------------------------------------------------------------------------------------

def info(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"no such file: {path}")
    data = path.read_bytes()
    header, _ = bitstream.unpack(data)
    a = header.arch
    return {
        "file": str(path), "bytes": len(data), "format_version": bitstream.FORMAT_VERSION,
        "model": a.model, "width": a.width, "height": a.height, "frames": header.frames,
        "fps": f"{header.fps.numerator}/{header.fps.denominator}", "quant_bits": header.quant_bits,
        "padded_size": list(a.padded_size)[::-1], "strides": list(a.strides), "widths": list(a.widths),
        "kernels": list(a.kernels), "content_embedding": list(a.content_shape) if a.model != "dsnerv" else None,
        "diff_embedding": list(a.diff_shape) if a.has_diff else None,
        "static_codes": list(a.section_shapes(header.frames)["STATIC"]) if a.model == "dsnerv" else None,
        "dynamic_codes": list(a.section_shapes(header.frames)["DYNAMIC"]) if a.model == "dsnerv" else None,
        "attention_heads": a.heads if a.model == "dsnerv" else None,
        "fuse_stage": a.fuse_stage if a.two_stream else None, "diff_up": a.diff_up if a.two_stream else None,
        "decoder_params": param_count(a),
        "embedding_values": a.embedding_values(header.frames),
        "sections": bitstream.section_sizes(data),
        "bpp": metrics.bpp(len(data), a.width, a.height, header.frames),
    }


__all__ = ["encode", "decode", "decode_to_array", "info", "CodecError", "BitstreamError", "resolve_device"]
