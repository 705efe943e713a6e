"""`dnv`: click commands only. Parse options, call `nvcodec.codec`, print the report."""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from fractions import Fraction
from pathlib import Path

import click

from . import codec, fit, outputs
from .color import PLANES
from .config import BIT_DEPTHS, EncodeConfig
from .models import DEFAULT_MODEL, MODELS, SPECS
from .models.registry import table_sections

EXIT_ERROR = 1


def _user_errors():
    from .bitstream import BitstreamError
    from .video import VideoError
    return (codec.CodecError, BitstreamError, VideoError, outputs.OutputError, FileNotFoundError, PermissionError,
            IsADirectoryError)


def _on_sigterm(signum, _frame):
    # Unwind like Ctrl-C (temporary files removed, training checkpointed), then exit 143 rather than 130.
    raise fit.signal_interrupt(signum)


def run_guarded(fn, *args, **kwargs):
    """Run a command; any failure becomes one `Error: ...` line on stderr and a non-zero exit;
    Ctrl-C exits with status 130 and SIGTERM with 143 (128 + the signal, as the shell reports a killed process)."""
    main_thread = threading.current_thread() is threading.main_thread()   # only it may set signal handlers
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        word = "Terminated" if signum == signal.SIGTERM else "Interrupted"
        if getattr(e, "checkpoint", None) is not None:
            click.echo(f"{word}; resume with: {_resume_command()}", err=True)
        else:
            click.echo(f"{word}; no output file was written.", err=True)
        sys.exit(128 + signum)
    except _user_errors() as e:
        click.echo(f"Error: {_one_line(e)}", err=True)
        sys.exit(EXIT_ERROR)
    except BrokenPipeError:
        # The reader of our output left (`dnv info F | head -3`): stop quietly, as a killed writer would, with stdout
        # pointed at /dev/null so that the interpreter's last flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
    except Exception as e:  # noqa: BLE001 - the user gets one line; DNV_DEBUG=1 shows the traceback
        if os.environ.get("DNV_DEBUG"):
            raise
        import torch
        if isinstance(e, torch.OutOfMemoryError):
            click.echo("Error: out of GPU memory; try --batch 1, a lower --bpp or --device cpu", err=True)
        else:
            click.echo(f"Error: internal error ({type(e).__name__}: {_one_line(e)}); "
                       "rerun with DNV_DEBUG=1 for details", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _resume_command() -> str:
    """The encode command line that was run, with --resume."""
    import shlex
    args = sys.argv[1:]
    if "encode" not in args:     # called from Python (tests, another tool): name the form only
        return "dnv encode INPUT -o OUTPUT [the same options] --resume"
    return "dnv " + shlex.join(args + ([] if "--resume" in args else ["--resume"]))


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return " ".join(text.split())


def _write_json(path, report: dict) -> None:
    from .bitstream import write_atomic
    write_atomic(path, (json.dumps(report, indent=2) + "\n").encode())


def _parse_size(_ctx, _param, text):
    """--size as (width, height), checked while click parses the options (a bad one is a usage error)."""
    if text is None:
        return None
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise click.BadParameter(f"expected WxH, e.g. 1920x1080, not {text!r}") from None


def _parse_fps(_ctx, _param, text):
    if text is None:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"expected a rate such as 25 or 30000/1001, not {text!r}") from None
    if value <= 0:
        raise click.BadParameter("must be positive")
    return value


def _train_options(_ctx, _param, values) -> dict:
    options = {}
    for text in values:
        try:
            name, value = fit.parse_train_option(text)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        options[name] = value
    return options


def _frames(text, option: str):
    from .video import VideoError, parse_frame_range
    try:
        return parse_frame_range(text)
    except VideoError as e:
        raise codec.CodecError(f"{option}: {e}") from None


def _default_quant_bits() -> str:
    """Each model's planned quantizer depth, in words: "6 for a; 8 for b, c"."""
    models = {}
    for name, spec in SPECS.items():
        models.setdefault(spec.quant_bits, []).append(name)
    return "; ".join(f"{bits} for {', '.join(names)}" for bits, names in sorted(models.items()))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nvcodec")
def main():
    """dnv: a neural video codec. A .dnv file is a network fitted to one video (`dnv encode --help` lists them)."""


@main.command()
@click.argument("input", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="The .dnv file to write.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUTPUT (and the --json file) if it exists.")
@click.option("--bpp", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Target bits per pixel of the whole file (default 0.05).")
@click.option("--model-size", type=float, default=None, help="Decoder parameters instead of --bpp (e.g. 3e6).")
@click.option("--model", type=click.Choice(MODELS), default=DEFAULT_MODEL, show_default=True,
              help=", ".join(f"{spec.display} ({spec.description})" for spec in SPECS.values()) + ".")
@click.option("--preset", type=click.Choice(list(fit.PRESETS)), default="medium", show_default=True,
              help="Time for quality: {} epochs (Adam) or {} (Adan: DNeRV from 2M parameters), +10% fine-tuning, "
                   "for about 100 frames of 1280x720; a shorter clip or smaller frames train more epochs."
              .format(*(" / ".join(str(epochs[opt][0]) for epochs in fit.PRESETS.values())
                        for opt in ("adam", "adan"))))
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (overrides the preset).")
@click.option("--prune-epochs", type=click.IntRange(min=0), default=None, help="Fine-tuning epochs after pruning.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Frames per training step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Peak learning rate.")
@click.option("--loss", type=click.Choice(fit.LOSSES), default="l2", show_default=True,
              help="Training loss: L2, or NeRV's 0.7*L1 + 0.3*(1-SSIM).")
@click.option("--prune", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Fraction of decoder weights pruned.")
@click.option("--quant-bits", type=click.IntRange(2, 16), default=None,
              help=f"Quantization bit depth before rate control trims it (default {_default_quant_bits()}).")
@click.option("--bit-depths", type=click.Choice(BIT_DEPTHS), default="single", show_default=True,
              help="single: one quantizer depth for all tensors; rd: a depth per group of tensors (tables, stages, "
                   "head) chosen by rate-distortion (experimental).")
@click.option("--device", default="auto", show_default=True, help="auto, cuda, cuda:N or cpu.")
@click.option("--frames", "frame_range", default=None, help="Encode frames START:END only (END exclusive).")
@click.option("--size", default=None, callback=_parse_size, help="Raw .yuv input: frame size WxH.")
@click.option("--pix-fmt", default="yuv420p", show_default=True, help="Raw .yuv input: pixel format.")
@click.option("--fps", default=None, callback=_parse_fps,
              help="Frame rate for raw .yuv and image folders (default 25).")
@click.option("--color", type=click.Choice(PLANES), default=None,
              help="Sample format to code: the YUV 4:2:0 planes, or RGB (default: the source's own, yuv420 for "
                   "4:2:0 sources, rgb for the others).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of training (the same seed and input give the same file on one device).")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile the training step (default: on for CUDA, off on CPU).")
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--resume", is_flag=True, help="Continue an interrupted encode from OUTPUT.ckpt.")
@click.option("--checkpoint-every", type=float, default=60.0, show_default=True,
              help="Seconds between training checkpoints (OUTPUT.ckpt); 0: only on Ctrl-C.")
@click.option("--segment-frames", type=click.IntRange(min=2), default=None,
              help="Frames per segment, each with its own network (default 300).")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="Spread segments over this many GPUs (or CPU processes); see also torchrun.")
@click.option("--train", "train_options", multiple=True, metavar="NAME=VALUE", callback=_train_options,
              help="Override a training setting (repeatable), e.g. --train optimizer=adam --train "
                   "beta1=0.5. Names: " + ", ".join(fit.TRAIN_OPTIONS) + ".")
def encode(input, output, overwrite, bpp, model_size, model, preset, epochs, prune_epochs, batch, lr, loss, prune,
           quant_bits, bit_depths, device, frame_range, size, pix_fmt, fps, color, seed, compile_, json_path, quiet,
           resume, checkpoint_every, segment_frames, gpus, train_options):
    """Fit a network to INPUT and write it as a .dnv file. INPUT - reads a y4m stream from standard input."""
    def go():
        if input == "-" and gpus > 1:     # each process would read the video itself
            raise codec.CodecError("standard input can be read by one process only; use --gpus 1")
        outputs.check_output(json_path, overwrite=overwrite, sources=[input], others=[("-o", output)],
                             option="--json")
        config = EncodeConfig(
            bpp=bpp, model_size=model_size, model=model, preset=preset, epochs=epochs, prune_epochs=prune_epochs,
            batch=batch, lr=lr, loss=loss, prune=prune, quant_bits=quant_bits, bit_depths=bit_depths,
            device=device,
            frame_range=_frames(frame_range, "--frames"), size=size, pix_fmt=pix_fmt, fps=fps, color=color,
            seed=seed, compile=compile_, progress=not quiet, resume=resume, checkpoint_every=checkpoint_every,
            segment_frames=segment_frames, gpus=gpus, train_options=train_options, overwrite=overwrite)
        report = codec.encode(input, output, config, log=lambda m: click.echo(m, err=True))
        if report is None:  # a torchrun rank other than 0: rank 0 reports
            return
        print_encode_report(report)
        if json_path:
            _write_json(json_path, report)
    run_guarded(go)


def print_encode_report(r: dict) -> None:
    segs = r.get("segments") or []
    click.echo(f"encoded {r['frames']} frames {r['width']}x{r['height']} -> {r['output']}"
               + (f" in {len(segs)} segments" if len(segs) > 1 else ""))
    if len(segs) > 1:
        for i, seg in enumerate(segs):
            click.echo(f"  segment {i:<3} frames {seg['first_frame']}-{seg['first_frame'] + seg['frames'] - 1}: "
                       f"{seg['bytes']:,} bytes, {seg['bpp']:.5f} bpp, PSNR {seg['psnr']:.3f} dB")
    click.echo(f"  size     {r['bytes']:,} bytes, {r['bpp']:.5f} bpp"
               + (f" (target {r['target_bpp']:g})" if r.get("target_bpp") else ""))
    if r.get("target_missed"):
        click.echo(f"  note     {r['target_missed']}")
    training = " YUV 6:1:1" if r["color"].startswith("yuv420") else " RGB"
    options = r.get("train_options", {})
    grid = ", on the file's grid" if options.get("qat") or options.get("rate") else ", before quantization"
    click.echo(f"  quality  PSNR {r['psnr']:.3f} dB (RGB), {r['psnr_yuv']:.3f} dB (YUV 6:1:1), MS-SSIM "
               f"{r['ms_ssim']:.5f} (from the file; the network as trained "
               f"{r['psnr_float_model']:.2f} dB{training}{grid})")
    click.echo(f"  coded as {r['color']}")
    click.echo(f"  model    {r['model']}, {r['params']:,} decoder parameters, {_quantizer_words(r)}")
    if r.get("estimated_bytes") is not None:
        click.echo(f"  rate     trained for rate at lambda {r['lambda']:.4g}: the training estimated "
                   f"{r['estimated_bytes']:,} bytes, the file has {r['bytes']:,} "
                   f"({r['bytes'] / r['estimated_bytes'] - 1:+.2%})")
    # The first epoch of each segment holds any start-up (compiling, CUDA-graph capture, cuDNN's search): a
    # fixed cost, said apart, with the rate after it, which is what the device sustains.
    first = [curve[0] for curve in r.get("train_curves_seconds", []) if curve and curve[0] is not None]
    click.echo(f"  time     {r['encode_seconds']:.1f} s total, training {r['train_seconds']:.1f} s "
               f"({r['train_frames_per_second']:.1f} frames/s, {r['train_tflops']:.2f} TFLOP/s) on {r['device']}")
    if first and math.isfinite(r.get("train_steady_frames_per_second", math.nan)):
        startup = " (with torch.compile's start-up)" if r.get("compiled") else ""
        click.echo(f"           first epoch{'s' if len(first) > 1 else ''} {sum(first):.1f} s{startup}, then "
                   f"{r['train_steady_frames_per_second']:.1f} frames/s, {r['train_steady_tflops']:.2f} TFLOP/s")


def _quantizer_words(r: dict) -> str:
    """The quantizer, in words: rate control may trim (or raise) --quant-bits to a fractional depth."""
    bits, asked = r["effective_bits"], r["quant_bits"]
    if r.get("lambda") is not None:
        scale = r["segments"][0]["step_scale"]
        return f"learned quantization steps (x{scale:.3g} by rate control), the rest at {bits:.2f} bits"
    if abs(bits - asked) < 0.005:
        return f"{asked}-bit quantization"
    how = "trimmed" if bits < asked else "raised"
    return f"quantized at {bits:.2f} bits (2^{bits:.2f} levels; --quant-bits {asked} {how} toward the target size)"


@main.command()
@click.argument("input", type=click.Path())
@click.option("-o", "--output", type=click.Path(allow_dash=True), default=None,
              help="Frames to write: .mp4 (H.264), .mkv (FFV1 lossless), .y4m, a folder/ of PNGs, or - for a y4m "
                   "stream on standard output (the report then goes to standard error).")
@click.option("--ref", type=click.Path(), default=None, help="The original video, to report PSNR and MS-SSIM.")
@click.option("--ref-frames", default=None, help="Frames START:END of --ref that were encoded.")
@click.option("--frames", "frame_range", default=None,
              help="Decode only frames START:END (reads only the segments that hold them).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUTPUT (and the --json file) if it exists.")
@click.option("--device", default="auto", show_default=True, help="auto, cuda, cuda:N or cpu.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Frames per decoder call [default: 32 on a GPU; on a CPU up to 8, fewer for large frames; "
                   "lowered to what memory holds].")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="Arithmetic of the neural decoder (bf16: faster on GPUs, within a few 0.01 dB).")
@click.option("--fps-scale", type=int, default=1, show_default=True,
              help="Frame interpolation: K*(T-1)+1 frames at K x the frame rate (--ref then at that rate).")
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the report as JSON.")
def decode(input, output, ref, ref_frames, frame_range, overwrite, device, batch, precision, fps_scale, json_path):
    """Rebuild the frames of a .dnv file."""
    def go():
        outputs.check_output(json_path, overwrite=overwrite, sources=[input, ref], others=[("-o", output)],
                             option="--json")
        report = codec.decode(input, output, ref=ref, ref_range=_frames(ref_frames, "--ref-frames"), device=device,
                              batch=batch, precision=precision, frame_range=_frames(frame_range, "--frames"),
                              fps_scale=fps_scale, overwrite=overwrite)
        print_decode_report(report, err=output == "-")
        if json_path:
            _write_json(json_path, report)
    run_guarded(go)


def print_decode_report(r: dict, err: bool = False) -> None:
    """The decode summary; on standard error when standard output carries the frames."""
    def say(line):
        click.echo(line, err=err)
    target = "standard output" if r["output"] == "-" else r["output"]
    say(f"decoded {r['frames']} frames {r['width']}x{r['height']}"
        + (f" at {r['fps']:.3f} fps ({r['coded_frames']} coded, x{r['fps_scale']})" if r["fps_scale"] > 1 else "")
        + (f" -> {target}" if target else ""))
    say(f"  size     {r['bytes']:,} bytes, {r['bpp']:.5f} bpp")
    say(f"  time     {r['decode_seconds']:.3f} s, {r['decode_fps']:.1f} frames/s on {r['device']}: "
        f"loading {r['load_seconds']:.3f} s, network {r['neural_seconds']:.3f} s ({r['neural_fps']:.1f} frames/s"
        + (f", {r['neural_tflops']:.2f} TFLOP/s" if "neural_tflops" in r else "") + ")"
        + (f", writing {r['write_seconds']:.3f} s alongside" if r["output"] else ""))
    if r["psnr"] is not None:
        say(f"  quality  PSNR {r['psnr']:.3f} dB (RGB), {r['psnr_yuv']:.3f} dB (YUV 6:1:1), MS-SSIM {r['ms_ssim']:.5f}"
            + (f" (coded frames {r['psnr_coded']:.3f} dB, interpolated "
               f"{r['psnr_interpolated']:.3f} dB)" if r["psnr_interpolated"] is not None else "")
            + f"; reading and scoring --ref took {r['score_seconds']:.3f} s more")


@main.command()
@click.argument("input", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the full record as JSON, for programs.")
def info(input, as_json):
    """Describe a .dnv file: video, bit rate, decoder, and where its bytes go."""
    def go():
        r = codec.info(input)
        if as_json:
            click.echo(json.dumps(r, indent=2))
        else:
            print_info(r)
    run_guarded(go)


MODEL_NAMES = {name: spec.display for name, spec in SPECS.items()}
SECTION_NAMES = {"HEAD": "header", "DECODER": "decoder weights",
                 **{name: table.label for name, table in table_sections().items()},
                 "INDEX": "segment index", "SEGMENT": "segments", "COLOR": "sample format", "container": "file header"}


def _sig(x: float, digits: int = 4) -> str:
    """x to `digits` significant digits (whole numbers are kept whole), with thousands separators."""
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


def _duration(seconds: float) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:05.2f}"


def _rate(fps: str) -> str:
    rate = Fraction(fps)
    return f"{rate.numerator}" if rate.denominator == 1 else f"{_sig(float(rate))} ({fps})"


def print_info(r: dict) -> None:
    """`dnv info` as a person reads it: like ffprobe, rounded, in words."""
    segs = r.get("segment_index")
    click.echo(f"Input: {r['file']}, dnv format {r['format_version']}"
               + (f", {len(segs)} segments" if segs else ""))
    click.echo(f"  Duration: {_duration(r['duration_seconds'])}, {r['frames']:,} frames, "
               f"bitrate: {_sig(r['bitrate'] / 1000)} kb/s")
    model = "" if segs else f"{MODEL_NAMES.get(r['model'], r['model'])}, "
    color = (r["first_segment"] if segs else r)["color_description"]
    click.echo(f"  Video: {model}{color}, {r['width']}x{r['height']}, {_rate(r['fps'])} fps, {_sig(r['bpp'])} bpp, "
               f"{r['bytes']:,} bytes")
    if segs:
        click.echo("  Segments:")
        for i, seg in enumerate(segs):
            click.echo(f"    {i:<4} frames {seg['first_frame']}-{seg['first_frame'] + seg['frames'] - 1}: "
                       f"{MODEL_NAMES.get(seg['model'], seg['model'])}, {seg['decoder_params']:,} parameters, "
                       f"{seg['bytes']:,} bytes ({_share(seg['bytes'], r['bytes'])}), {_sig(seg['bpp'])} bpp")
    _print_decoder(r["first_segment"] if segs else r, "segment 0" if segs else "")
    click.echo("  Sections:" if not segs else "  File:")
    _print_sections(r["sections"], r["bytes"])
    if segs:
        click.echo("  Sections of segment 0:")
        first = r["first_segment"]
        _print_sections(first["sections"], first["bytes"])


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %"


def _print_sections(sections: dict, total: int) -> None:
    width = max(len(SECTION_NAMES.get(name, name.lower())) for name in sections)
    for name, size in sections.items():
        click.echo(f"    {SECTION_NAMES.get(name, name.lower()):<{width}} {size:>12,} bytes {_share(size, total):>8}")


def _print_decoder(r: dict, where: str) -> None:
    label = f" ({where})" if where else ""
    stages = " ".join(f"x{s}" for s in r["strides"])
    click.echo(f"  Decoder{label}: {r['decoder_params']:,} parameters, {r['decoder_bits_per_param']:.2f} bits each as "
               f"coded (--quant-bits {r['quant_bits']} before rate control); "
               f"{len(r['strides'])} upsampling stages {stages}, channels "
               + "-".join(map(str, r["widths"])) + ", kernels " + ",".join(map(str, r["kernels"])))
    if r.get("fuse_stage") is not None:
        other = SECTION_NAMES[list(r["tables"])[-1]]     # the last input is the branch that joins
        click.echo(f"           the {other} join after stage {r['fuse_stage'] + 1}"
                   + (f", through {r['attention_heads']} attention head{'s' if r['attention_heads'] > 1 else ''}"
                      if r.get("attention_heads") else ""))
    click.echo(f"  Decoder inputs{label}: " + ", ".join(
        f"{SECTION_NAMES.get(name, name.lower())} {'x'.join(map(str, shape))}"
        for name, shape in r["tables"].items()))
    if r.get("learned_tensors"):
        click.echo(f"  Entropy models{label}: {r['learned_tensors']} tensors coded with the learned steps and "
                   "per-row Laplace models of rate-aware training")


@main.command()
@click.option("--device", default="auto", show_default=True, help="auto, cuda, cuda:N or cpu.")
@click.option("-o", "--output-dir", type=click.Path(), default=None, help="Keep the demo's files here.")
def demo(device, output_dir):
    """Encode and decode a short Big Buck Bunny clip shipped with dnv (CC BY 3.0, Blender Foundation)."""
    from .demo import run_demo
    run_guarded(run_demo, device=device, output_dir=Path(output_dir) if output_dir else None)


if __name__ == "__main__":
    main()
